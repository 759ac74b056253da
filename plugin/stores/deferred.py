"""Writes deferred while the store is away: retried in the background, with backoff, bounded.

A message the provider accepted must be tracked, but the store (Redis) may be unreachable at
that moment. The send path then hands the write to the store's :class:`DeferredWrites` (one per
store object, :func:`deferred_writes`) and returns: a background task retries the oldest write
first, waiting ``first_delay`` seconds after a failure and doubling up to ``max_delay`` (with
jitter), until the store answers again. The queue holds at most ``capacity`` writes; over it the
oldest is dropped. Every write deferred, recovered and dropped is logged and counted (the server
exports the counts in ``/metrics``). A write that fails for another reason than the store being
away is not retried: it is logged and counted as dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import weakref
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from plugin.core.errors import StoreUnavailable

__all__ = ["DEFAULT_CAPACITY", "DeferredWrites", "deferred_writes"]

log = logging.getLogger("plugin.stores.deferred")

DEFAULT_CAPACITY = 10_000


@dataclass(slots=True)
class _Write:
    kind: str  # what the write is: "track", "idempotency"
    label: str  # what the log says about it (never a phone number)
    run: Callable[[], Awaitable[object]]


class DeferredWrites:
    """A bounded queue of writes waiting for the store, and the task that retries them."""

    def __init__(
        self,
        *,
        capacity: int = DEFAULT_CAPACITY,
        first_delay: float = 0.5,
        max_delay: float = 30.0,
    ) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.first_delay = first_delay
        self.max_delay = max_delay
        self.deferred: Counter[str] = Counter()  # by kind, since start
        self.recovered: Counter[str] = Counter()  # deferred writes done later
        self.dropped: Counter[str] = Counter()  # overflow, refused on retry, or lost at close
        self._queue: deque[_Write] = deque()
        self._trying = 0  # writes taken off the queue for an attempt, not yet settled
        self._task: asyncio.Task[None] | None = None

    @property
    def pending(self) -> int:
        """Writes waiting for the store (an attempt under way included)."""
        return len(self._queue) + self._trying

    def defer(self, kind: str, label: str, run: Callable[[], Awaitable[object]]) -> None:
        """Queue ``run`` (a write that just failed with StoreUnavailable) for the background
        retry. Call from a running event loop."""
        self.deferred[kind] += 1
        if len(self._queue) >= self.capacity:
            self._drop(self._queue.popleft(), "the deferred-write queue is full")
        self._queue.append(_Write(kind, label, run))
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._retry(), name="whatsapp-deferred-writes"
            )

    def _drop(self, write: _Write, reason: str) -> None:
        self.dropped[write.kind] += 1
        log.error("deferred %s of %s dropped: %s", write.kind, write.label, reason)

    async def _attempt(self, write: _Write) -> bool:
        """Run one write: True when done (or given up), False when the store is still away."""
        self._trying += 1
        try:
            await write.run()
        except StoreUnavailable:
            return False
        except Exception as exc:
            self._drop(write, f"{type(exc).__name__}: {exc}")
            return True
        finally:
            self._trying -= 1
        self.recovered[write.kind] += 1
        log.info("deferred %s of %s done", write.kind, write.label)
        return True

    async def _retry(self) -> None:
        delay = self.first_delay
        while self._queue:
            write = self._queue.popleft()
            try:
                done = await self._attempt(write)
            except asyncio.CancelledError:  # close(): the write goes back for its last try
                self._queue.appendleft(write)
                raise
            if done:
                delay = self.first_delay
                continue
            if len(self._queue) >= self.capacity:  # it is the oldest: it goes first
                self._drop(write, "the deferred-write queue is full")
            else:
                self._queue.appendleft(write)
            log.warning(
                "store still unavailable: %d deferred write(s) waiting, next try in %.1fs",
                len(self._queue),
                delay,
            )
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, self.max_delay)

    async def flush(self) -> int:
        """Try every waiting write once now, oldest first, stopping at the first the store
        refuses; returns how many are still waiting."""
        while self._queue:
            write = self._queue.popleft()
            if not await self._attempt(write):
                self._queue.appendleft(write)
                break
        return len(self._queue)

    async def close(self) -> None:
        """Stop the background retry after one last try; what still waits is logged and
        counted as dropped (lost with the process)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if await self.flush():
            while self._queue:
                self._drop(self._queue.popleft(), "the store was still unavailable at shutdown")


_registry: weakref.WeakKeyDictionary[object, DeferredWrites] = weakref.WeakKeyDictionary()


def deferred_writes(store: object) -> DeferredWrites:
    """The one :class:`DeferredWrites` of ``store`` (created on first use), shared by the
    tracking plugin, the client and the metrics of everything built on that store."""
    writes = _registry.get(store)
    if writes is None:
        writes = _registry[store] = DeferredWrites()
    return writes
