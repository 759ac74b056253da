"""The Redis store's connection, and what every Redis error becomes: ``StoreUnavailable`` with a
``retry_after`` hint, never a bare redis-py exception (so the server answers 503 with
``Retry-After`` instead of 500, whatever went wrong on the Redis side).

| redis-py error | cause | retry after (s) |
|---|---|---|
| ``ConnectionError``, ``OSError`` | Redis down, restarting, network | 5 |
| ``TimeoutError`` | Redis blocked (``CLIENT PAUSE``, ``DEBUG SLEEP``, a slow script) | 2 |
| ``OutOfMemoryError`` | over ``maxmemory`` with ``noeviction`` | 30 |
| ``ReadOnlyError`` | connected to a replica (after a failover) | 5 |
| ``BusyLoadingError``, ``BUSY`` | Redis loading its data, or running a long script | 5 |
| any other ``RedisError`` | ``NOSCRIPT`` that a reload did not cure, ``MISCONF``, … | 5 |
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import (
    BusyLoadingError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from plugin.core.errors import StoreUnavailable
from plugin.core.redaction import redact_url

__all__ = ["open_client", "redact_url", "retry_after_of", "unavailable"]

log = logging.getLogger("plugin.stores.redis.store")


def retry_after_of(exc: BaseException) -> tuple[str, int]:
    """(what happened, seconds a client should wait) for a redis-py error."""
    if isinstance(exc, RedisTimeoutError):
        return "timed out", 2
    if isinstance(exc, RedisConnectionError | OSError):
        return "unreachable", 5
    if isinstance(exc, OutOfMemoryError):
        return "out of memory (maxmemory reached)", 30
    if isinstance(exc, ReadOnlyError):
        return "read-only (a replica, after a failover?)", 5
    if isinstance(exc, BusyLoadingError):
        return "loading its data", 5
    if str(exc).startswith("BUSY"):
        return "busy running a script", 5
    return "refused the command", 5


@contextlib.contextmanager
def unavailable(url: str) -> Iterator[None]:
    """Turn every redis-py error (and socket error) raised inside into ``StoreUnavailable``."""
    try:
        yield
    except (RedisError, OSError) as exc:
        what, seconds = retry_after_of(exc)
        raise StoreUnavailable(
            f"Redis at {redact_url(url)} {what}: {type(exc).__name__}: {exc}",
            retry_after=seconds,
        ) from exc


def open_client(url: str, *, max_connections: int, timeout: float) -> aioredis.Redis:
    """A client over a blocking pool: a burst of requests waits for one of ``max_connections``
    (at most ``timeout``) instead of failing. Every command times out after ``timeout``
    seconds. A command that failed to reach Redis (a connection Redis closed, as after a
    restart) is tried once more on a fresh connection; a timed-out one never is, since a
    script that timed out may have run, and running it again would count its receipts twice.
    """
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout,
        decode_responses=True,
        socket_connect_timeout=min(2.0, timeout),
        socket_timeout=timeout,
        health_check_interval=30,
        retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        retry_on_timeout=False,
    )
    return aioredis.Redis(connection_pool=pool)
