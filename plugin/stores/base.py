"""The two stores behind one interface: the in-memory manager (synchronous) and the Redis store
(coroutines, shared by replicas). Callers that accept either await what is awaitable."""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias, TypeVar

from plugin.core.manager import MessageSessionManager
from plugin.core.model import CleanupReport
from plugin.stores.redis.store import RedisStore

__all__ = ["Store", "await_me_maybe", "build_store", "cleanup_store"]

#: What ``settings.store`` selects: ``"memory"`` or ``"redis"``.
Store: TypeAlias = MessageSessionManager | RedisStore

T = TypeVar("T")


async def await_me_maybe(value: Awaitable[T] | T) -> T:
    """``value``, awaited first if it is awaitable (a store method may be either)."""
    if inspect.isawaitable(value):
        return await value
    return value


def build_store(settings: Any, clock: Callable[[], float] | None = None) -> Store:
    """The store ``settings.store`` names, built from the settings (not yet connected)."""
    if getattr(settings, "store", "memory") == "redis":
        return RedisStore.from_settings(settings, clock=clock or time.time)
    return MessageSessionManager.from_settings(settings, clock=clock or time.time)


async def cleanup_store(store: Store) -> CleanupReport | None:
    """Run ``store.cleanup()`` (None: another replica holds the Redis store's lease)."""
    result: CleanupReport | Awaitable[CleanupReport | None] | None = store.cleanup()
    return await await_me_maybe(result)
