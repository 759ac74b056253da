"""The real Redis server for tests: where it is, a fresh key prefix per test, cleanup after.

127.0.0.1:6379 unless ``WA_TEST_REDIS_URL`` says otherwise. Unreachable: the test fails under
``CI=true`` and is skipped with the reason elsewhere.

Every prefix comes from :func:`new_prefix`, which remembers it. Its keys are deleted when the
test is over, after every fixture's teardown (conftest's ``pytest_runtest_teardown``): an app
torn down after the ``redis_prefix`` fixture still runs a final cleanup that writes ``B:meta``.
At the end of the run, :func:`leftover_keys` must find no key under any prefix of this run.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import redis

__all__ = [
    "RedisProxy",
    "delete_pending",
    "delete_prefix",
    "leftover_keys",
    "new_prefix",
    "redis_prefix",
    "redis_url",
    "require_redis",
]

_checked: dict[str, str | None] = {}
#: Every (url, prefix) handed out in this run, and those whose test has not ended yet.
_issued: list[tuple[str, str]] = []
_pending: list[tuple[str, str]] = []


def _url() -> str:
    return os.environ.get("WA_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def require_redis() -> str:
    """The test Redis URL; fails (CI) or skips (elsewhere) when no server answers."""
    url = _url()
    if url not in _checked:
        try:
            client = redis.Redis.from_url(url, socket_connect_timeout=1.0, socket_timeout=2.0)
            client.ping()
            client.close()
            _checked[url] = None
        except (redis.RedisError, OSError) as exc:
            _checked[url] = f"{type(exc).__name__}: {exc}"
    problem = _checked[url]
    if problem is not None:
        message = f"Redis not reachable at {url}: {problem}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return url


def new_prefix(url: str) -> str:
    """A key prefix unique to this run; a store may also use ``{prefix}-N`` under it."""
    prefix = f"wa-test-{uuid.uuid4().hex[:12]}"
    _issued.append((url, prefix))
    _pending.append((url, prefix))
    return prefix


def _keys(client: redis.Redis, prefix: str) -> list[bytes]:
    # "{prefix*": the store's own "{prefix}:…" keys and those of "{prefix-N}" sub-prefixes.
    return list(client.scan_iter(match="{" + prefix + "*", count=1000))


def delete_prefix(url: str, prefix: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        keys = _keys(client, prefix)
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])
    finally:
        client.close()


def delete_pending() -> None:
    """Delete the keys of the prefixes of the test that just ended (all its fixtures gone)."""
    while _pending:
        url, prefix = _pending.pop()
        delete_prefix(url, prefix)


def leftover_keys() -> list[str]:
    """Keys still under a prefix this run handed out (there should be none)."""
    left: list[str] = []
    for url, prefix in _issued:
        client = redis.Redis.from_url(url)
        try:
            left += [key.decode() for key in _keys(client, prefix)]
        finally:
            client.close()
    return left


@pytest.fixture
def redis_url() -> str:
    return require_redis()


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of this test alone; its keys are deleted afterwards."""
    prefix = new_prefix(redis_url)
    yield prefix
    delete_prefix(redis_url, prefix)


class RedisProxy:
    """A TCP relay to the real Redis that the test can cut and restore: Redis "goes away"."""

    def __init__(self, target: str) -> None:
        parts = urlsplit(target)
        self.host, self.target_port = parts.hostname or "127.0.0.1", parts.port or 6379
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        self._writers.clear()
        await self._server.wait_closed()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(self.host, self.target_port)
        self._writers += [writer, up_writer]

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
