"""Receipts of concurrent requests share one script call (the Redis store's receive path).

Most of a receipt's cost with the Redis store is the script call itself: a round trip, the
client's encoding, and Redis running the script's fixed part (the layout marker, lazy expiry).
:class:`ReceiptBatcher` makes concurrent ``apply_receipts`` calls share it. A call adds its
receipts to the open batch and waits; the batch is sent on the next turn of the event loop, so
every request handled in the same turn joins it, and while ``max_in_flight`` batches are at
Redis the next one keeps filling. Each call gets back exactly its own outcomes, in order, with the
outcome each receipt would get alone (the script applies a batch in order, atomically). A batch
that fails (Redis away) fails every call in it with the same error, so each request answers 503
and the provider retries it: nothing is applied twice or lost.

A batch holds at most ``max_batch`` receipts, save one request that alone has more (it is sent
whole: the store splits it into script calls of its own).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from plugin.core.model import Outcome, Receipt

__all__ = ["ReceiptBatcher"]

Apply = Callable[[Sequence[Receipt]], Awaitable[list[Outcome]]]


class ReceiptBatcher:
    """Coalesces concurrent receipt batches into shared calls of ``apply``."""

    def __init__(self, apply: Apply, max_batch: int = 1000, max_in_flight: int = 2) -> None:
        self._apply = apply
        self.max_batch = max(1, max_batch)
        self.max_in_flight = max(1, max_in_flight)
        self._receipts: list[Receipt] = []
        self._waiters: list[tuple[int, int, asyncio.Future[list[Outcome]]]] = []
        self._in_flight = 0
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()
        #: Script batches sent, and receipts in them (for the debug view and the benchmarks).
        self.batches = 0
        self.batched_receipts = 0

    async def apply(self, receipts: Sequence[Receipt]) -> list[Outcome]:
        """``receipts``' outcomes, applied in a batch shared with concurrent callers."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Outcome]] = loop.create_future()
        start = len(self._receipts)
        self._receipts += receipts
        self._waiters.append((start, len(self._receipts), future))
        self._schedule(loop)
        return await future

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        if not self._scheduled and self._in_flight < self.max_in_flight and self._waiters:
            self._scheduled = True
            loop.call_soon(self._send)

    def _take(self) -> tuple[list[Receipt], list[tuple[int, int, asyncio.Future[list[Outcome]]]]]:
        """The next batch: whole calls, oldest first, up to ``max_batch`` receipts (at least
        one call)."""
        count = taken = 0
        for start, end, _ in self._waiters:
            if taken and count + end - start > self.max_batch:
                break
            taken += 1
            count += end - start
        waiters = self._waiters[:taken]
        first, last = waiters[0][0], waiters[-1][1]
        receipts = self._receipts[first:last]
        rest = self._waiters[taken:]
        self._receipts = self._receipts[last:]
        self._waiters = [(s - last, e - last, f) for s, e, f in rest]
        return receipts, [(s - first, e - first, f) for s, e, f in waiters]

    def _send(self) -> None:
        self._scheduled = False
        if not self._waiters or self._in_flight >= self.max_in_flight:
            return
        receipts, waiters = self._take()
        self._in_flight += 1
        task = asyncio.get_running_loop().create_task(self._run(receipts, waiters))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(
        self,
        receipts: list[Receipt],
        waiters: list[tuple[int, int, asyncio.Future[list[Outcome]]]],
    ) -> None:
        try:
            outcomes = await self._apply(receipts)
        except asyncio.CancelledError:
            for _, _, future in waiters:
                future.cancel()
            raise
        except Exception as exc:  # every caller of this batch gets the error
            for _, _, future in waiters:
                if not future.done():
                    future.set_exception(exc)
        else:
            self.batches += 1
            self.batched_receipts += len(receipts)
            for start, end, future in waiters:
                if not future.done():
                    future.set_result(outcomes[start:end])
        finally:
            self._in_flight -= 1
            self._schedule(asyncio.get_running_loop())
