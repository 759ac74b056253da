"""The Redis store (``store = "redis"``): the manager's semantics, shared by every replica.

Same public methods as :class:`~plugin.core.manager.MessageSessionManager`, but coroutines. Periods
and session ids are computed here (:class:`~plugin.core.periods.PeriodCalendar`); every receipt and
every send is one Lua script (:mod:`plugin.stores.redis.scripts`), so it is applied atomically in
one round trip and no race between replicas can double-count, lose a status or move a message down
the ladder. Script arguments are built by :mod:`plugin.stores.redis.args`, the views by
:mod:`plugin.stores.redis.views`, the lease is :mod:`plugin.stores.redis.lease`.

Key layout (``B`` = ``{redis_prefix}``, a hash tag, so a cluster keeps every key in one slot),
and how each structure is bounded:

* ``B:m:<id>`` hash (session id, status, sent_at, recipient as events show it): one per tracked
  message (with ``redact_recipients``, a jid's number inside ``<id>`` is its keyed hash), at
  most ``max_tracked_messages`` (over the cap the oldest is evicted in the same script). TTL
  ``sent_at + 2 * window``: the window, plus one window of grace for the expiry index to count
  it before Redis drops it.
* ``B:o:<sid>`` sorted set: the session's record ids by send time (score ``offset * 2**32 + seq``:
  send order within a second), the index that makes expiry *counted* (pending → expired, a
  ``message expired`` event) and eviction oldest-first. Same TTL as its session.
* ``B:s:<sid>`` hash: start, end, complete_at, the funnel counters, receipt outcomes
  (``o:…``) and error tallies (``x:<code>``, at most 32 codes + ``other``). TTL
  ``end + 2 * window``. ``B:sessions`` (by start) and ``B:due`` (by completion time) sorted
  sets list the active sessions: at most ``max_active_sessions()`` plus those due.
* ``B:tombs`` sorted set: digests of released ids (16 hex digits) by release time, dropped
  after one window, at most ``max_tracked_messages`` (oldest first), the key itself expiring
  two windows after the last release.
* ``B:history`` list of summary JSON, newest first, ``LTRIM``-ed to ``max_history_size``.
* ``B:events`` Stream of completed sessions, read by the consumer group ``wa-sessions``
  (:mod:`plugin.stores.redis.stream`): at most ``event_stream_maxlen`` entries, the oldest
  trimmed first (those not yet acknowledged are counted in ``B:meta`` ``events_lost``).
* ``B:meta`` hash: record count, receipt outcomes since start, peaks, eviction total, last
  cleanup, Stream entries lost to the cap. The key of recipient hashes is never stored in
  Redis: it is ``redaction_key`` (required in production), or a random key of each process in
  development.
  ``B:lease``: the cleanup lease. ``B:format``: the layout version, also the data-loss marker
  (:mod:`plugin.stores.redis.layout`).

Expiry runs in three places: a few records per script (lazily, so counts advance without a
timer), in batches by ``cleanup()``, and by the TTLs as a safety net (an index entry whose record
Redis dropped first is counted as ``lost_records`` in the debug view). Session completion and
cleanup run under a lease (``SET NX PX`` + a token checked on release), so one replica at a time
completes a session; the last step of a completion is itself atomic (summary to history and
to the Stream of completed sessions), so even a lease that expired mid-way cannot complete a
session twice. ``session completed`` is then delivered from the Stream through a consumer group:
at least once across the fleet, even when a replica dies before its hooks ran.

Size: over 400 lines because this class is the flow of one store, read top to bottom:
connection, script calls and their replies, the public API, then the lease, completion and
expiry that keep the caps. Everything that is not that flow already lives beside it (args,
scripts, lua, views, lease, connection, layout, idempotency); splitting the flow itself would
scatter one sequence of Redis calls over mixins.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import secrets
import socket
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import redis.asyncio as aioredis

from plugin.core.emitter import EventEmitter, EventSink
from plugin.core.errors import StoreUnavailable
from plugin.core.memory_bound import max_active_sessions
from plugin.core.model import (
    CleanupReport,
    MessageExpired,
    Outcome,
    Receipt,
    SessionSummary,
    Status,
    StatusChange,
)
from plugin.core.options import ManagerOptions, resolve_options
from plugin.core.records import MAX_MESSAGE_ID_LENGTH
from plugin.stores.redis import scripts as redis_scripts
from plugin.stores.redis.args import ScriptArgs, valid_id
from plugin.stores.redis.batcher import ReceiptBatcher
from plugin.stores.redis.connection import open_client, redact_url, unavailable
from plugin.stores.redis.idempotency import RedisSendLedger
from plugin.stores.redis.layout import check_layout
from plugin.stores.redis.lease import Lease
from plugin.stores.redis.stream import CompletionStream
from plugin.stores.redis.views import (
    PROCESS_BOUND_BYTES,
    all_stats,
    debug_info,
    parse_views,
)

__all__ = ["RedisStore"]

log = logging.getLogger("plugin.stores.redis.store")

_OUTCOMES = tuple(Outcome)
_STATUSES = tuple(Status)
#: The upkeep task: longest sleep between checks, shortest pause between runs, and the pause
#: after Redis refused (seconds).
UPKEEP_POLL = 1.0
UPKEEP_PAUSE = 0.05
UPKEEP_RETRY = 1.0


class RedisStore(EventEmitter):
    """Tracks sent messages and their receipts in Redis, shared by every replica.

    ``RedisStore(url, prefix, **options, clock=time.time)``; ``await store.connect()`` before use
    and ``await store.close()`` after. ``timeout`` bounds every Redis command (and the wait for
    a pooled connection): past it the call raises ``StoreUnavailable``.

    ``event_stream_maxlen`` caps the Stream of completed sessions; ``claim_idle`` is how long
    (seconds) a completed session read by a replica may stay unacknowledged before another
    replica claims it and delivers it again (a replica that died before its hooks ran).
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        prefix: str = "wa-sessions",
        *,
        clock: Callable[[], float] = time.time,
        events: EventSink | None = None,
        options: ManagerOptions | None = None,
        lease_ttl: float = 30.0,
        batch_size: int = 1000,
        lazy_budget: int = 32,
        max_connections: int = 64,
        timeout: float = 10.0,
        batching: bool = True,
        event_stream_maxlen: int = 100_000,
        claim_idle: float = 60.0,
        **settings: Any,
    ) -> None:
        if options is not None and settings:
            raise TypeError("pass either options= or individual settings, not both")
        self.options = options if options is not None else resolve_options(settings)
        self.url = url
        self.prefix = prefix
        self.lease_ttl = lease_ttl
        self.max_connections = max_connections
        self.timeout = timeout
        self._base = "{" + prefix + "}"
        self._keys = [self._base + suffix for suffix in redis_scripts.KEY_SUFFIXES]
        self._clock = clock
        self._window = self.options.ack_tracking_window
        # Without redaction_key, a random key of this process (hashes change at each restart and
        # differ between replicas: development only; production requires the key).
        key = self.options.redaction_key.encode() or secrets.token_bytes(16)
        self._args = ScriptArgs(self.options, key[:64])
        self._batch = batch_size
        self._budget = lazy_budget
        self._redis: aioredis.Redis | None = None
        self._due = -math.inf  # when a session may next be due for completion
        self._due_retry = -math.inf
        self._wake: asyncio.Event | None = None  # set while the upkeep task runs
        self._lease_lock = asyncio.Lock()  # this process's users of the lease take turns
        self._lease_token = secrets.token_hex(16)  # this store's token for the lease
        self._send_ledger: RedisSendLedger | None = None
        # Concurrent apply_receipts calls share script calls (plugin.stores.redis.batcher).
        self.batcher = ReceiptBatcher(self._apply_now, batch_size) if batching else None
        if event_stream_maxlen < 1 or claim_idle <= 0:
            raise ValueError("event_stream_maxlen must be at least 1 and claim_idle positive")
        self.event_stream_maxlen = event_stream_maxlen
        self.claim_idle = claim_idle
        #: This store's name in the consumer group: unique per process and store.
        self.consumer = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"
        self._stream: CompletionStream | None = None
        self._consuming: asyncio.Task[Any] | None = None  # the background delivery, running
        #: How many times a script found the layout marker gone: Redis lost its data.
        self.data_lost = 0
        EventEmitter.__init__(self)
        if events is not None:
            self.attach_events(events)

    @classmethod
    def from_settings(cls, settings: Any, **kwargs: Any) -> RedisStore:
        """Build from a loaded ``Settings`` (its options, ``redis_url``, ``redis_prefix`` and
        ``event_stream_maxlen``)."""
        options = getattr(settings, "manager", None)
        if not isinstance(options, ManagerOptions):
            raise TypeError(f"cannot build a Redis store from {type(settings).__name__}")
        kwargs.setdefault("event_stream_maxlen", getattr(settings, "event_stream_maxlen", 100_000))
        return cls(settings.redis_url, settings.redis_prefix, options=options, **kwargs)

    # -- connection -----------------------------------------------------------------------------

    def _unavailable(self) -> contextlib.AbstractContextManager[None]:
        return unavailable(self.url)

    @property
    def redis(self) -> aioredis.Redis:
        if self._redis is None:
            raise RuntimeError("RedisStore is not connected: await store.connect() first")
        return self._redis

    async def connect(self) -> None:
        """Connect, check Redis answers and the key layout is this version's (migrating an
        older one); StoreUnavailable (naming the URL without its password) when not."""
        client = open_client(self.url, max_connections=self.max_connections, timeout=self.timeout)
        try:
            with self._unavailable():
                await client.ping()
                # The key of recipient hashes is never stored beside them (older versions kept
                # one at ``{prefix}:redaction-key`` when redaction_key was not set: removed).
                await client.delete(self._base + ":redaction-key")
                await check_layout(client, self._base, self._args.stored_id)
            stream = CompletionStream(
                client,
                self._base + ":events",
                consumer=self.consumer,
                claim_idle=self.claim_idle,
                announce=self._announce_completed,
                url=self.url,
                timeout=self.timeout,
            )
            await stream.create_group()
        except BaseException:
            await client.aclose()
            await client.connection_pool.disconnect()
            raise
        self._redis = client
        self._stream = stream
        self._track = client.register_script(redis_scripts.TRACK)
        self._receipt = client.register_script(redis_scripts.RECEIPT)
        self._expire = client.register_script(redis_scripts.EXPIRE)
        self._complete = client.register_script(redis_scripts.COMPLETE)
        self._views = client.register_script(redis_scripts.VIEWS)
        self.lease = Lease(client, self._base + ":lease", self.lease_ttl)

    async def start(self) -> None:
        """The Store protocol's start: :meth:`connect`."""
        await self.connect()

    def background(self) -> list[Coroutine[Any, Any, None]]:
        """In a server: the upkeep task (:meth:`_upkeep`), which keeps the lease, session
        completion and expiry off the request path, and the delivery of completed sessions
        from the Stream (both run until cancelled)."""
        return [self._upkeep(), self._consume()]

    async def _upkeep(self) -> None:
        """Complete the sessions due and release what expired with them, under the lease, as
        soon as they are due; receipts and sends only wake this task (the scripts already
        treat a due session as completed, so their answers stay exact meanwhile)."""
        wake = self._wake = asyncio.Event()
        task = asyncio.current_task()
        try:
            while True:
                # redis-py can swallow a cancellation that arrives with a reply (see
                # plugin.stores.redis.stream): honour it here, so stopping never hangs
                if task is not None and task.cancelling():
                    raise asyncio.CancelledError
                now = self._clock()
                if now >= self._due and now >= self._due_retry:
                    try:
                        await self._run_due(now)
                    except StoreUnavailable as exc:
                        log.warning("session completion postponed: %s", exc)
                        self._due_retry = now + UPKEEP_RETRY
                wake.clear()
                delay = min(max(self._due, self._due_retry) - self._clock(), UPKEEP_POLL)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(delay, UPKEEP_PAUSE)):
                        await wake.wait()
        finally:
            self._wake = None

    async def _due_work(self, now: float) -> None:
        """Before a receipt or a send: wake the upkeep task when a session is due, or (no task:
        a script, the CLI) complete it here first, as the manager does."""
        if now < self._due or now < self._due_retry:
            return
        if self._wake is not None:
            self._wake.set()
        else:
            await self._run_due(now)

    async def _consume(self) -> None:
        self._consuming = asyncio.current_task()
        try:
            await self.stream.run()
        finally:
            self._consuming = None

    @property
    def stream(self) -> CompletionStream:
        """The Stream of completed sessions, as this store consumes it."""
        if self._stream is None:
            raise RuntimeError("RedisStore is not connected: await store.connect() first")
        return self._stream

    async def deliver_events(self) -> int:
        """One delivery step from the Stream of completed sessions without waiting: acknowledge
        what the hooks finished, deliver our own pending entries and those a stopped replica
        left for over ``claim_idle``, then new ones. Returns how many were announced."""
        return await self.stream.step()

    def _announce_completed(
        self, summary: SessionSummary, cleared: int, on_delivered: Callable[[], None]
    ) -> None:
        self.announce_completion(summary, cleared, on_delivered=on_delivered)

    async def ready(self) -> bool:
        """True when Redis answers a PING."""
        if self._redis is None:
            return False
        try:
            with self._unavailable():
                await self._redis.ping()
        except StoreUnavailable:
            return False
        return True

    def memory_bound_bytes(self) -> int:
        """What this process holds for the store; the state's own bound is Redis-side."""
        return PROCESS_BOUND_BYTES

    async def close(self) -> None:
        """Stop the background delivery, acknowledge what the hooks finished (bounded by
        ``timeout``), then release the connections."""
        task = self._consuming
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            await asyncio.wait({task}, timeout=self.timeout)
        if self._stream is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.timeout):
                    await self._stream.close()
            self._stream = None
        if self._redis is not None:
            await self._redis.aclose()
            await self._redis.connection_pool.disconnect()
            self._redis = None

    def send_ledger(self) -> RedisSendLedger:
        """The idempotency ledger of sends, shared by every replica
        (:mod:`plugin.stores.redis.idempotency`). Keyed with ``redaction_key`` when set."""
        if self._send_ledger is None:
            secret = self.options.redaction_key or f"wa-sessions idempotency {self.prefix}"
            self._send_ledger = RedisSendLedger(
                lambda: self.redis, self._base, self._window, secret.encode()
            )
        return self._send_ledger

    async def _call(self, script: Any, args: list[Any]) -> list[Any]:
        """Run one of the store's scripts; a reply whose first field says the layout marker was
        gone is logged and counted (Redis lost its data)."""
        with self._unavailable():
            reply: list[Any] = await script(keys=self._keys, args=args)
        if reply[0] == 1:
            self.data_lost += 1
            log.error(
                "Redis at %s lost its data (the marker %s:format was gone; restarted without "
                "persistence?): records, counters and sessions written before are gone; "
                "marker written again",
                redact_url(self.url),
                self._base,
            )
        return reply

    # -- events and recipients ------------------------------------------------------------------

    def redact(self, recipient: str | None) -> str | None:
        """The keyed hash that logs, summaries and events carry instead of a phone number."""
        return self._args.redact(recipient)

    def fault_counters(self) -> dict[str, int]:
        """Store faults seen by this process, for the metrics: ``data_lost``."""
        return {"data_lost": self.data_lost}

    # -- replies --------------------------------------------------------------------------------

    def _note_due(self, value: Any) -> None:
        self._due = float(value) if value not in ("", None) else math.inf

    def _announce_released(self, flat: Sequence[Any]) -> None:
        if self._on_expired is None:
            return
        for i in range(0, len(flat), 6):
            message_id, session_id, status, recipient, sent_at, reason = flat[i : i + 6]
            self._on_expired(
                MessageExpired(
                    message_id=message_id,
                    session_id=session_id,
                    status=_STATUSES[int(status)],
                    recipient=recipient or None,
                    sent_at=float(sent_at),
                    reason=reason,
                )
            )

    def _receipt_done(self, receipt: Receipt, fields: Sequence[Any], now: float) -> Outcome:
        code, session_id, old, new, _sent_at, recipient = fields
        outcome = _OUTCOMES[int(code)]
        if self._on_status is not None and outcome in (Outcome.APPLIED, Outcome.ADOPTED):
            self._on_status(
                StatusChange(
                    message_id=receipt.message_id,
                    session_id=session_id,
                    old_status=None if old == "" else _STATUSES[int(old)],
                    new_status=_STATUSES[int(new)],
                    outcome=outcome,
                    recipient=recipient or None,
                    provider=receipt.provider,
                    timestamp=now if receipt.timestamp is None else receipt.timestamp,
                    error=receipt.error,
                )
            )
        return outcome

    # -- public API -----------------------------------------------------------------------------

    async def track_sent(
        self,
        message_id: str,
        recipient: str | None = None,
        sent_at: float | None = None,
        *,
        tag: str | None = None,
    ) -> bool:
        """Start tracking a message this replica sent (``tag``: for the per-tag funnels). False
        if it was already tracked, or its session has already completed."""
        if not valid_id(message_id):
            raise ValueError(
                f"message id must be 1 to {MAX_MESSAGE_ID_LENGTH} ASCII characters: "
                f"{message_id!r:.80}"
            )
        now = self._clock()
        await self._due_work(now)
        moment = now if sent_at is None else min(float(sent_at), now)
        args = self._args.track(message_id, recipient, moment, now, self._budget, tag)
        reply = await self._call(self._track, args)
        self._note_due(reply[1])
        self._announce_released(reply[3:])
        return bool(int(reply[2]))

    async def apply_receipt(self, receipt: Receipt) -> Outcome:
        """Apply one receipt atomically; return its one outcome."""
        return (await self.apply_receipts([receipt]))[0]

    async def apply_receipts(self, receipts: Sequence[Receipt]) -> list[Outcome]:
        """Apply a batch in one script call per ``batch_size`` receipts: each receipt gets the
        outcome it would get alone. Concurrent calls share script calls (the batcher). A call
        Redis refuses (NOSCRIPT is retried once the script is loaded: a refused call ran
        nothing) raises ``StoreUnavailable``."""
        if not receipts:
            return []
        if self.batcher is not None:
            return await self.batcher.apply(receipts)
        return await self._apply_now(receipts)

    async def _apply_now(self, receipts: Sequence[Receipt]) -> list[Outcome]:
        now = self._clock()
        await self._due_work(now)
        outcomes: list[Outcome] = []
        for start in range(0, len(receipts), self._batch):
            outcomes += await self._apply_batch(receipts[start : start + self._batch], now)
        return outcomes

    async def _apply_batch(self, receipts: Sequence[Receipt], now: float) -> list[Outcome]:
        args = self._args.receipts_header(now, self._budget, len(receipts))
        receipt_arg = self._args.receipt
        args += [receipt_arg(receipt, now) for receipt in receipts]
        reply = await self._call(self._receipt, args)
        self._note_due(reply[1])
        end = 2 + 6 * len(receipts)
        self._announce_released(reply[end:])
        done = self._receipt_done
        return [
            done(receipt, reply[2 + 6 * i : 8 + 6 * i], now) for i, receipt in enumerate(receipts)
        ]

    async def cleanup(self, now: float | None = None) -> CleanupReport | None:
        """Complete due sessions, release expired records and tombstones, trim history. None
        when another replica holds the lease (it is doing this work)."""
        now = self._clock() if now is None else now
        token = await self._acquire_lease()
        if token is None:
            return None
        try:
            # Windows that ended before a completion first, so they count as expired by window.
            expired, dropped = await self._expire_all(now, token, mark_cleanup=True)
            completed, trimmed, at_completion = await self._complete_due(now, token)
            with self._unavailable():
                remaining = await self.redis.llen(self._base + ":history")
        finally:
            await self._release_lease(token)
        report = CleanupReport(
            at=now,
            expired_messages=expired + at_completion,
            completed_sessions=tuple(completed),
            history_trimmed=trimmed,
            remaining_history=remaining if self.options.history_limit > 0 else 0,
            tombstones_dropped=dropped,
        )
        return self.announce_cleanup(report)

    # -- lease, completion, expiry --------------------------------------------------------------

    async def _acquire_lease(self) -> str | None:
        """The cleanup lease, or None when another replica holds it. Within this process the
        lease's users take turns (a view waits for the upkeep task's run, then settles), each
        waiting at most ``timeout``, as for a Redis command: past it StoreUnavailable."""
        try:
            async with asyncio.timeout(self.timeout):
                await self._lease_lock.acquire()
        except TimeoutError:
            raise StoreUnavailable(
                f"Redis at {redact_url(self.url)} timed out: the cleanup lease is still busy "
                f"after {self.timeout:g}s",
                retry_after=2,
            ) from None
        try:
            with self._unavailable():
                # this store's own token: a lease whose acquisition or release was interrupted
                # (a cancelled task, a lost reply) is still ours, and renewing takes it back
                token = self._lease_token
                held = await self.lease.renew(token) or await self.lease.acquire(token)
        except BaseException:
            self._lease_lock.release()
            raise
        if not held:
            self._lease_lock.release()
            return None
        return token

    async def _renew_lease(self, token: str) -> bool:
        with self._unavailable():
            return await self.lease.renew(token)

    async def _release_lease(self, token: str) -> None:
        try:
            with contextlib.suppress(StoreUnavailable), self._unavailable():
                await self.lease.release(token)
        finally:
            self._lease_lock.release()

    async def _run_due(self, now: float) -> None:
        """Complete sessions due by ``now`` before serving (as the manager does), when this
        replica gets the lease; otherwise the scripts still treat due sessions as completed."""
        if now < self._due or now < self._due_retry:
            return
        token = await self._acquire_lease()
        if token is None:
            self._due_retry = now + 1.0
            return
        try:
            await self._expire_all(now, token)
            await self._complete_due(now, token)
        finally:
            await self._release_lease(token)

    async def _settle(self, now: float) -> None:
        """Completion and expiry due by ``now``, exactly, before a view reports (best effort:
        skipped while another replica holds the lease)."""
        token = await self._acquire_lease()
        if token is None:
            return
        try:
            await self._expire_all(now, token)
            await self._complete_due(now, token)
        finally:
            await self._release_lease(token)

    async def _complete_due(self, now: float, token: str) -> tuple[list[str], int, int]:
        """Complete every session due by ``now``: (their ids, history trimmed, pending records
        that expired with them)."""
        opts = self.options
        completed: list[str] = []
        trimmed = expired = 0
        with self._unavailable():
            due = await self.redis.zrangebyscore(self._base + ":due", "-inf", now)
        for session_id in due:
            cleared = 0
            while True:
                await self.room_for_background()
                args = [*self._args.header(now, self._batch), session_id, opts.history_limit]
                args += [cleared, self.event_stream_maxlen]
                reply = await self._call(self._complete, args)
                state, released, trim, _summary, lost = reply[1:6]
                cleared += int(released)
                expired += (len(reply) - 6) // 6
                self._announce_released(reply[6:])
                if state != "more" or not await self._renew_lease(token):
                    break
            if state == "done":
                trimmed += int(trim)
                completed.append(str(session_id))
                self._stream_trimmed(int(lost))
        with self._unavailable():
            first = await self.redis.zrange(self._base + ":due", 0, 0, withscores=True)
        self._due = float(first[0][1]) if first else math.inf
        self._due_retry = -math.inf
        # every time, not only when this call completed one: an entry whose completion was
        # interrupted before its delivery (a cancelled task, a lost reply) is delivered now
        await self._deliver_completed()
        return completed, trimmed, expired

    def _stream_trimmed(self, lost: int) -> None:
        if lost:
            log.warning(
                "event_stream_maxlen (%d) reached: %d completed-session event(s) trimmed from "
                "the Stream before they were delivered (counted in events_lost)",
                self.event_stream_maxlen,
                lost,
            )

    async def _deliver_completed(self) -> None:
        """Deliver what was just completed (in process, nothing else would); while Redis is
        away the entries stay in the Stream for a later step."""
        try:
            await self.stream.step(own=True)
        except StoreUnavailable as exc:
            log.warning("completed sessions stay in the Stream, delivered later: %s", exc)

    async def _expire_all(
        self, now: float, token: str, *, mark_cleanup: bool = False
    ) -> tuple[int, int]:
        """Release every record whose window is over: (pending ones that expired, tombstones
        dropped)."""
        expired = dropped = 0
        mark = 1 if mark_cleanup else 0
        while True:
            await self.room_for_background()
            reply = await self._call(self._expire, [*self._args.header(now, self._batch), mark])
            mark = 0
            expired += (len(reply) - 3) // 6
            dropped += int(reply[2])
            self._announce_released(reply[3:])
            if int(reply[1]) < self._batch or not await self._renew_lease(token):
                return expired, dropped

    # -- views ----------------------------------------------------------------------------------

    async def _read_views(self) -> dict[str, Any]:
        await self._settle(self._clock())
        with self._unavailable():
            return parse_views(await self._views(keys=self._keys, args=[]))

    async def get_all_stats(self) -> dict[str, Any]:
        return all_stats(await self._read_views(), self.options)

    async def get_debug_info(self) -> dict[str, Any]:
        return debug_info(
            await self._read_views(),
            self.options,
            hook_errors=self.hook_errors,
            max_sessions=self.max_active_sessions(),
            prefix=self.prefix,
            stream_maxlen=self.event_stream_maxlen,
        )

    def max_active_sessions(self) -> int:
        """Most sessions that can be active at once with these options (as the manager)."""
        return max_active_sessions(self.options, self._args.calendar.fixed_offset)
