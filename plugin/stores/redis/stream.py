"""The Stream of completed sessions (``{prefix}:events``), read through a consumer group, so
``session_completed`` is delivered at least once across replicas, even across a crash.

The COMPLETE script XADDs a session's summary in the same run that completes it
(:mod:`plugin.stores.redis.scripts`). Every store is one consumer of the group
:data:`~plugin.stores.redis.scripts.EVENT_GROUP`, named ``host-pid-random``, and
:class:`CompletionStream` delivers from it:

* **new entries** (``XREADGROUP … >``): each is announced (``announce_completion``) with an
  ``on_delivered`` callback that the hook dispatch calls once the hooks ran; only then is the
  entry acknowledged (``XACK``, batched). At most :data:`MAX_HELD` entries are held
  (announced, not yet acknowledged) at once: a replica whose hooks are slow leaves the rest to
  the others.
* **its own pending entries** (``XREADGROUP … 0``), every third of ``claim_idle``: what it read
  without seeing the reply is delivered, and reading them resets their idle time, so entries
  a live replica holds are never claimed by another.
* **entries a dead replica held** (``XAUTOCLAIM``): pending for longer than ``claim_idle``, they
  are claimed and delivered again (same summary, same ``event_id``). Entries the cap trimmed
  while pending come back as deleted ids: they were counted as lost when trimmed.

The server runs :meth:`CompletionStream.run` in the background (short blocking reads, backoff
while Redis is away); in process, the store delivers at the end of each completion step.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from plugin.core.errors import StoreUnavailable
from plugin.core.model import SessionSummary
from plugin.stores.redis.connection import unavailable
from plugin.stores.redis.scripts import EVENT_GROUP, PRUNE_CONSUMERS
from plugin.stores.redis.views import summary_of

__all__ = ["MAX_HELD", "Announce", "CompletionStream"]

log = logging.getLogger("plugin.stores.redis.store")

#: Entries read at most per call.
READ_COUNT = 100
#: Entries a consumer holds at most (announced, not yet acknowledged).
MAX_HELD = 256
#: Entries acknowledged at most per XACK.
ACK_BATCH = 1000
#: Longest blocking read of the background loop (milliseconds): cancelling it is prompt.
BLOCK_MS = 500
#: Backoff of the background loop while Redis is away (seconds).
FIRST_DELAY, MAX_DELAY = 0.5, 30.0
#: How often a consumer removes the group's idle consumers with nothing pending (seconds), and
#: how long one must have been idle.
PRUNE_EVERY, PRUNE_IDLE = 600.0, 3600.0

#: ``announce(summary, cleared, on_delivered)``: hand one completed session to the hooks.
Announce = Callable[[SessionSummary, int, Callable[[], None]], None]


def _entry(fields: dict[str, str]) -> tuple[SessionSummary, int]:
    """The summary and released-record count of a Stream entry."""
    return summary_of(json.loads(fields["summary"])), int(fields.get("cleared", 0))


class CompletionStream:
    """One consumer of the Stream of completed sessions."""

    def __init__(
        self,
        client: aioredis.Redis,
        key: str,
        *,
        consumer: str,
        claim_idle: float,
        announce: Announce,
        url: str,
        timeout: float,
    ) -> None:
        self.client = client
        self.key = key
        self.consumer = consumer
        self.claim_idle = claim_idle
        self._announce = announce
        self._url = url
        self._block_ms = max(1, min(BLOCK_MS, int(timeout * 500)))  # half the command timeout
        self._held: set[str] = set()  # announced, not yet acknowledged
        self._acks: list[str] = []  # delivered (or gone), to acknowledge
        self._touch_at = 0.0  # monotonic time of the next read of our own pending entries
        self._claim_at = 0.0  # of the next XAUTOCLAIM
        self._claim_cursor = "0-0"
        self._prune_at = time.monotonic() + PRUNE_EVERY
        self._joined = False  # this consumer exists in the group (it has read)
        #: Entries announced by this consumer, claimed from others, and malformed (acknowledged
        #: without delivery), since start.
        self.delivered = 0
        self.claimed = 0
        self.malformed = 0

    # -- Redis calls ----------------------------------------------------------------------------

    async def create_group(self) -> None:
        """The group, from the start of the Stream (created with it when missing)."""
        with unavailable(self._url):
            try:
                await self.client.xgroup_create(self.key, EVENT_GROUP, id="0", mkstream=True)
            except ResponseError as exc:
                if not str(exc).startswith("BUSYGROUP"):
                    raise

    async def _redis(self, call: Callable[[], Any]) -> Any:
        """Run ``call()``; when Redis lost the group (NOGROUP), create it and run it again."""
        with unavailable(self._url):
            try:
                return await call()
            except ResponseError as exc:
                if not str(exc).startswith("NOGROUP"):
                    raise
        await self.create_group()
        with unavailable(self._url):
            return await call()

    async def _read(self, start: str, count: int, block: int | None = None) -> list[Any]:
        def call() -> Any:
            streams: dict[Any, Any] = {self.key: start}
            return self.client.xreadgroup(
                EVENT_GROUP, self.consumer, streams, count=count, block=block
            )

        reply = await self._redis(call)
        self._joined = True
        return list(reply[0][1]) if reply else []

    # -- one delivery step ----------------------------------------------------------------------

    async def step(self, block: bool = False, own: bool = False) -> int:
        """Acknowledge what was delivered, read our own pending entries (when due, or ``own``:
        after a completion, in case a cancelled step had read one without announcing it) and
        claim idle ones (when due), read new entries (waiting up to half a second when
        ``block``), acknowledge again. Returns how many entries were announced.
        StoreUnavailable when Redis is away (nothing is lost: unacknowledged entries stay
        pending)."""
        await self.ack()
        announced = 0
        now = time.monotonic()
        if own or now >= self._touch_at:
            self._touch_at = now + self.claim_idle / 3
            announced += await self._read_own()
        if now >= self._claim_at:
            self._claim_at = now + max(0.05, min(self.claim_idle / 4, 5.0))
            announced += await self._claim()
        announced += await self._read_new(self._block_ms if block else None)
        await self.ack()
        if now >= self._prune_at:
            self._prune_at = now + PRUNE_EVERY
            await self.prune(max(PRUNE_IDLE, 4 * self.claim_idle))
        return announced

    async def _read_own(self) -> int:
        """Our own pending entries, page by page: those not held are announced again."""
        announced, start = 0, "0"
        while True:
            entries = await self._read(start, READ_COUNT)
            announced += self._take(entries)
            if len(entries) < READ_COUNT:
                return announced
            start = entries[-1][0]

    async def _read_new(self, block: int | None) -> int:
        room = min(READ_COUNT, MAX_HELD - len(self._held))
        if room <= 0:  # hooks are behind: leave new entries to the other replicas
            if block:
                await asyncio.sleep(block / 1000)
            return 0
        return self._take(await self._read(">", room, block))

    async def _claim(self) -> int:
        """Entries pending longer than ``claim_idle`` for another consumer (one that died)."""
        idle_ms = max(1, int(self.claim_idle * 1000))

        def call() -> Any:
            return self.client.xautoclaim(
                self.key, EVENT_GROUP, self.consumer, idle_ms, self._claim_cursor, READ_COUNT
            )

        cursor, entries, deleted = await self._redis(call)
        self._claim_cursor = cursor
        if cursor != "0-0":
            self._claim_at = 0.0  # more to scan: go on at the next step
        if deleted:
            log.warning(
                "%d completed-session event(s) a stopped replica held were trimmed from the "
                "Stream before delivery (counted in events_lost)",
                len(deleted),
            )
        fresh = [entry for entry in entries if entry[0] not in self._held]
        if fresh:
            self.claimed += len(fresh)
            log.warning(
                "claimed %d completed-session event(s) pending for over %gs (a replica "
                "stopped before its hooks ran): delivering them again",
                len(fresh),
                self.claim_idle,
            )
        return self._take(fresh)

    def _take(self, entries: Sequence[Any]) -> int:
        """Announce each entry not held yet; acknowledge those that are gone or malformed."""
        announced = 0
        for entry_id, fields in entries:
            if entry_id in self._held:
                continue
            if not fields:  # trimmed while pending: counted as lost when trimmed
                self._acks.append(entry_id)
                continue
            try:
                summary, cleared = _entry(fields)
            except (ValueError, KeyError, TypeError):
                self.malformed += 1
                log.error(
                    "malformed entry %s in %s acknowledged without delivery", entry_id, self.key
                )
                self._acks.append(entry_id)
                continue
            self._held.add(entry_id)
            try:
                self._announce(summary, cleared, partial(self._done, entry_id))
            except Exception:
                log.exception("announcing completed session %s failed", summary.session_id)
                self._held.discard(entry_id)  # read again with our pending entries
                continue
            announced += 1
        self.delivered += announced
        return announced

    def _done(self, entry_id: str) -> None:
        """The hooks ran for ``entry_id``: acknowledge it at the next step (or close)."""
        self._acks.append(entry_id)

    async def ack(self) -> int:
        """XACK what was delivered, in batches; StoreUnavailable keeps them for later."""
        acked = 0
        while self._acks:
            ids, self._acks = self._acks[:ACK_BATCH], self._acks[ACK_BATCH:]
            try:
                with unavailable(self._url):
                    try:
                        await self.client.xack(self.key, EVENT_GROUP, *ids)
                    except ResponseError as exc:  # NOGROUP: Redis lost the Stream, nothing
                        if not str(exc).startswith("NOGROUP"):  # is left to acknowledge
                            raise
            except BaseException:
                self._acks[:0] = ids
                raise
            self._held.difference_update(ids)
            acked += len(ids)
        return acked

    async def prune(self, idle: float) -> int:
        """Remove the consumers idle for ``idle`` seconds with nothing pending."""
        script = self.client.register_script(PRUNE_CONSUMERS)
        with unavailable(self._url):
            removed = int(await script(keys=[self.key], args=[int(idle * 1000), self.consumer]))
        if removed:
            log.info("removed %d idle consumer(s) from %s", removed, self.key)
        return removed

    # -- background and close -------------------------------------------------------------------

    async def run(self) -> None:
        """Deliver until cancelled: blocking reads of at most half a second; while Redis is
        away (or anything else fails), log and retry with backoff."""
        delay = FIRST_DELAY
        task = asyncio.current_task()
        while True:
            # A cancellation can be swallowed inside redis-py (Python 3.11's wait_for returns
            # a result that arrived with the cancellation): honour it here, so that stopping
            # this loop never hangs.
            if task is not None and task.cancelling():
                raise asyncio.CancelledError
            try:
                await self.step(block=True)
            except StoreUnavailable as exc:
                log.warning("completed-session events: %s; retrying in %.1fs", exc, delay)
            except Exception:
                log.exception("completed-session events: delivery failed; retrying in %.1fs", delay)
            else:
                delay = FIRST_DELAY
                continue
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_DELAY)

    async def close(self) -> None:
        """Acknowledge what was delivered; leave the group when nothing is pending for us
        (what is still pending is claimed by another replica after ``claim_idle``)."""
        try:
            await self.ack()
        except StoreUnavailable as exc:
            log.warning(
                "could not acknowledge %d delivered completed-session event(s): %s (they are "
                "delivered again after claim_idle)",
                len(self._acks),
                exc,
            )
            return
        if not self._joined:
            return
        try:  # best effort: a consumer left behind is pruned later
            with unavailable(self._url):
                mine = await self.client.xpending_range(
                    self.key, EVENT_GROUP, "-", "+", 1, consumername=self.consumer
                )
                if not mine:
                    await self.client.xgroup_delconsumer(self.key, EVENT_GROUP, self.consumer)
        except StoreUnavailable as exc:
            log.debug("consumer %s left in %s: %s", self.consumer, self.key, exc)
