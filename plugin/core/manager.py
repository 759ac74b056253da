"""The bounded message-session manager: pure, synchronous, clock injected.

Memory layout (the hot path is built around it):

* Each active :class:`MessageSession` owns a ``dict`` from message id to one packed ``int``:
  bits 0-2 the status, bits 3-19 the send time in seconds since the session's start, bits 20+
  the recipient (a 40-bit keyed hash when recipients are redacted, so the int stays within 60
  bits; otherwise its digits). One record costs its id string, one dict slot, one int and one
  reference in the session's send-order ``deque``: no per-record object.
* Expiry and eviction read the send-order deque from its front: O(1) per record, where reading
  a dict from its front would skip over every hole its deletions left.
* Released ids leave a tombstone: a 60-bit digest in one ``set``, with the digests also kept in
  release-time buckets so they age out after one more window. Both are capped.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from datetime import timedelta
from typing import Any, Protocol

from plugin.core.failures import sum_failures
from plugin.core.memory_bound import MAX_MESSAGE_ID_LENGTH, RECIPIENT_CACHE_SIZE, memory_bound_bytes
from plugin.core.model import (
    COUNTER_KEYS,
    OUTCOME_KEYS,
    CleanupReport,
    MessageExpired,
    Outcome,
    Receipt,
    SessionSummary,
    Status,
    StatusChange,
)
from plugin.core.options import ManagerOptions, resolve_options
from plugin.core.periods import PeriodCalendar
from plugin.core.session import MessageSession
from plugin.core.tombstones import Tombstones
from plugin.core.views import manager_stats

__all__ = [
    "MAX_MESSAGE_ID_LENGTH",
    "EventEmitter",
    "EventSink",
    "MessageSession",
    "MessageSessionManager",
]

log = logging.getLogger("plugin.core.manager")


_STATUS_BITS = 3
_OFFSET_BITS = 17  # seconds since session start; a period is at most 25 h = 90,000 s
_OFFSET_SHIFT = _STATUS_BITS
_OFFSET_MASK = (1 << _OFFSET_BITS) - 1
_RECIPIENT_SHIFT = _STATUS_BITS + _OFFSET_BITS
_HASHED_FLAG = 1  # without redaction: lowest bit of the recipient field, set for a hash
_RECIPIENT_HASH_BITS = 40
_MAX_DIGITS = 15  # E.164: at most 15 digits, below 2**50

# Counter and outcome indices (order of COUNTER_KEYS / OUTCOME_KEYS).
SENT, DELIVERED, READ, PLAYED, FAILED, PENDING, EXPIRED, EVICTED = range(8)
O_APPLIED, O_DUPLICATE, O_STALE, O_LATE, O_UNKNOWN, O_ADOPTED = range(6)
_OUTCOMES = tuple(Outcome)
_STATUSES = tuple(Status)

_Q, _S, _D, _R, _P, _F = (int(s) for s in Status)
_POSITIVE = frozenset({_D, _R, _P})
_OPEN = frozenset({_Q, _S})


def _transition(current: int, new: int) -> tuple[int, int, tuple[tuple[int, int], ...]]:
    """(outcome, resulting status, counter deltas) for a receipt ``new`` on a message at
    ``current``. The rules of DESIGN.md: never down the ladder; READ/PLAYED imply DELIVERED; a
    positive delivery beats FAILED; FAILED after DELIVERED is stale."""
    if new == current:
        return O_DUPLICATE, current, ()
    if new == _F:
        if current in _POSITIVE:
            return O_STALE, current, ()
    elif current == _F:
        if new in _OPEN:
            return O_STALE, current, ()
    elif new < current:
        return O_STALE, current, ()
    deltas: dict[int, int] = {}

    def add(counter: int, delta: int) -> None:
        deltas[counter] = deltas.get(counter, 0) + delta

    if current in _OPEN and new not in _OPEN:
        add(PENDING, -1)
    if current == _F:
        add(FAILED, -1)
    if new == _F:
        add(FAILED, +1)
    if new in _POSITIVE and current not in _POSITIVE:
        add(DELIVERED, +1)
    if new in (_R, _P) and current not in (_R, _P):
        add(READ, +1)
    if new == _P:
        add(PLAYED, +1)
    return O_APPLIED, new, tuple((k, v) for k, v in deltas.items() if v)


#: _TRANSITIONS[current * 6 + new]
_TRANSITIONS = tuple(_transition(c, n) for c in range(6) for n in range(6))


def _seconds(value: float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


class EventSink(Protocol):
    """Where the manager sends its events. The hook system implements it; the manager never
    imports pluggy."""

    def status_changed(self, change: StatusChange) -> None: ...

    def message_expired(self, expired: MessageExpired) -> None: ...

    def session_completed(self, summary: SessionSummary) -> None: ...

    def cleanup_completed(self, report: CleanupReport) -> None: ...


class EventEmitter:
    """What the stores share about events: the sink, the per-message callbacks (None when
    nobody listens, so the receipt path skips building them) and the hook-error count."""

    def __init__(self) -> None:
        self.hook_errors = 0
        self._events: EventSink | None = None
        self._on_status: Callable[[StatusChange], None] | None = None
        self._on_expired: Callable[[MessageExpired], None] | None = None

    def attach_events(
        self, sink: EventSink | None, *, status_changed: bool = True, message_expired: bool = True
    ) -> None:
        """Send events to ``sink``. Per-message events cost time on the receipt path, so the
        caller says whether anyone listens to them."""
        self._events = sink
        self._on_status = sink.status_changed if sink is not None and status_changed else None
        self._on_expired = sink.message_expired if sink is not None and message_expired else None

    def record_hook_error(self) -> None:
        self.hook_errors += 1


class MessageSessionManager(EventEmitter):
    """Tracks sent messages and their receipts in bounded memory.

    ``MessageSessionManager(**options, clock=time.time)``: the options are the settings keys
    (durations as ``"12h"``, integer milliseconds or ``timedelta``).
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        events: EventSink | None = None,
        options: ManagerOptions | None = None,
        **settings: Any,
    ) -> None:
        if options is not None and settings:
            raise TypeError("pass either options= or individual settings, not both")
        self.options = options if options is not None else resolve_options(settings)
        opts = self.options
        self._clock = clock
        self._window = opts.ack_tracking_window
        self._cap = opts.max_tracked_messages
        self._calendar = PeriodCalendar(opts.session_period, opts.timezone)
        self._redaction_key = (opts.redaction_key.encode() or os.urandom(16))[:64]
        self._recipient_cache: dict[str, int] = {}
        self._sessions: list[MessageSession] = []  # oldest first
        self._newest_first: list[MessageSession] = []
        self._history: deque[SessionSummary] = deque(maxlen=max(opts.history_limit, 1))
        self._receipts = [0] * len(OUTCOME_KEYS)
        self._tracked = 0
        self._evicted_total = 0
        self._expired_total = 0
        self._history_trimmed = 0
        self._peak_sessions = 0
        self._peak_tracked = 0
        self._tombstones = Tombstones(self._window, self._cap)
        self._next_due = -math.inf  # when lazy expiry must next run
        self._next_expiry = math.inf  # when the earliest front record's window ends
        self._slack = min(60.0, max(1.0, self._window / 1440))
        self._last_cleanup: float | None = None
        EventEmitter.__init__(self)
        if events is not None:
            self.attach_events(events)

    @classmethod
    def from_settings(cls, settings: Any, **kwargs: Any) -> MessageSessionManager:
        """Build from a loaded ``Settings``, a ``ManagerOptions`` or a mapping of settings keys."""
        if isinstance(settings, ManagerOptions):
            return cls(options=settings, **kwargs)
        manager_options = getattr(settings, "manager", None)
        if isinstance(manager_options, ManagerOptions):
            return cls(options=manager_options, **kwargs)
        if isinstance(settings, Mapping):
            return cls(options=resolve_options(dict(settings)), **kwargs)
        raise TypeError(f"cannot build a manager from {type(settings).__name__}")

    # -- events ---------------------------------------------------------------------------------

    # -- recipients -----------------------------------------------------------------------------

    def _keyed_hash(self, text: str) -> int:
        digest = hashlib.blake2b(text.encode(), digest_size=8, key=self._redaction_key).digest()
        return int.from_bytes(digest) >> (64 - _RECIPIENT_HASH_BITS)

    def _encode_recipient(self, recipient: str | None) -> int:
        if not recipient:
            return 0
        if self.options.redact_recipients:
            # Bots write to the same people again and again: remember recent hashes (bounded).
            cached = self._recipient_cache.get(recipient)
            if cached is None:
                if len(self._recipient_cache) >= RECIPIENT_CACHE_SIZE:
                    self._recipient_cache.clear()
                cached = self._recipient_cache[recipient] = self._keyed_hash(recipient) or 1
            return cached
        if recipient.isdigit() and len(recipient) <= _MAX_DIGITS and recipient[0] != "0":
            return int(recipient) << 1
        return (self._keyed_hash(recipient) << 1) | _HASHED_FLAG

    def _decode_recipient(self, packed: int) -> str | None:
        field = packed >> _RECIPIENT_SHIFT
        if field == 0:
            return None
        if self.options.redact_recipients:
            return f"~{field:010x}"
        if field & _HASHED_FLAG:
            return f"~{field >> 1:010x}"
        return str(field >> 1)

    def redact(self, recipient: str | None) -> str | None:
        """The keyed hash that logs, summaries and events carry instead of a phone number."""
        if not recipient:
            return None
        return f"~{self._keyed_hash(recipient):010x}"

    # -- sessions -------------------------------------------------------------------------------

    def _complete_at(self, start: float, end: float) -> float:
        return min(end + self._window, start + self.options.max_session_age)

    def _session_for(self, moment: float, now: float) -> MessageSession | None:
        """The active session of ``moment``'s period, created if needed; None if that session
        has completed (or would have by ``now``)."""
        for session in self._newest_first:
            if session.start <= moment < session.end:
                return session
        period = self._calendar.period_of(moment)
        complete_at = self._complete_at(period.start, period.end)
        if complete_at <= now:
            return None
        self._complete_due(now)
        session = MessageSession(period.session_id, period.start, period.end, complete_at)
        self._sessions.append(session)
        self._sessions.sort(key=lambda s: s.start)
        self._newest_first = self._sessions[::-1]
        self._next_due = min(self._next_due, complete_at)
        self._peak_sessions = max(self._peak_sessions, len(self._sessions))
        return session

    def _complete_due(self, now: float) -> list[str]:
        done = [s for s in self._sessions if s.complete_at <= now]
        for session in done:
            self._complete(session, now)
        return [s.session_id for s in done]

    def _complete(self, session: MessageSession, now: float) -> None:
        cleared = len(session.records)
        for message_id, packed in list(session.records.items()):
            self._release(session, message_id, packed, now, "session")
        self._sessions.remove(session)
        self._newest_first = self._sessions[::-1]
        summary = session.summary(now)
        if self.options.history_limit > 0:
            if len(self._history) == self._history.maxlen:
                self._history_trimmed += 1
            self._history.append(summary)
        log.info("MessageSession cleaned up (cleared_messages=%d)", cleared)
        log.info("Session completed and moved to history (date=%s)", session.session_id)
        if self._events is not None:
            self._events.session_completed(summary)

    # -- records --------------------------------------------------------------------------------

    def _release(
        self, session: MessageSession, message_id: str, packed: int, now: float, reason: str
    ) -> None:
        """Drop one record; a still-pending one counts as expired and is announced."""
        del session.records[message_id]
        self._tracked -= 1
        status = packed & 7
        if status in _OPEN:
            counters = session.counters
            counters[PENDING] -= 1
            counters[EXPIRED] += 1
            self._expired_total += 1
            if self._on_expired is not None:
                self._on_expired(MessageExpired(
                    message_id=message_id,
                    session_id=session.session_id,
                    status=_STATUSES[status],
                    recipient=self._decode_recipient(packed),
                    sent_at=session.start + ((packed >> _OFFSET_SHIFT) & _OFFSET_MASK),
                    reason=reason,
                ))
        self._tombstones.add(message_id, now)

    def _expire_records(self, now: float) -> int:
        """Release every record whose window is over, reading each session in send order;
        records adopted out of order are caught on lookup or at completion. Sets the time of
        the next expiry (the earliest front record's). In a session due to complete, only the
        records whose window ended before its completion expire by window."""
        released = 0
        next_expiry = math.inf
        for session in self._sessions:
            order, records, start = session.order, session.records, session.start
            cutoff = min(now, session.complete_at) - self._window
            while order:
                message_id = order[0]
                packed = records.get(message_id)
                if packed is not None:
                    sent_at = start + ((packed >> _OFFSET_SHIFT) & _OFFSET_MASK)
                    if sent_at > cutoff:
                        next_expiry = min(next_expiry, sent_at + self._window)
                        break
                    self._release(session, message_id, packed, now, "window")
                    released += 1
                order.popleft()
        self._next_expiry = next_expiry
        return released

    def _schedule(self) -> None:
        # Expiry on the receipt path runs in batches (at most ``_slack`` late): a receipt for a
        # record past its window is still answered ``late`` at once, and the views and
        # cleanup() settle expiry exactly before they report.
        self._next_due = self._next_expiry + self._slack
        for session in self._sessions:
            if session.complete_at < self._next_due:
                self._next_due = session.complete_at

    def _run_due(self, now: float) -> tuple[int, list[str]]:
        # Windows that ended before a completion are released first, so that they count as
        # expired by "window", as they would have with a timely call.
        released = self._expire_records(now)
        completed = self._complete_due(now)
        self._tombstones.expire(now)
        self._schedule()
        return released, completed

    def _evict_one(self) -> None:
        """Drop the oldest record (the front of the oldest session's send order)."""
        for session in self._sessions:
            order, records = session.order, session.records
            while order:
                message_id = order.popleft()
                packed = records.pop(message_id, None)
                if packed is None:
                    continue
                self._tracked -= 1
                self._evicted_total += 1
                if self._evicted_total == 1 or self._evicted_total % 10_000 == 0:
                    log.warning(
                        "max_tracked_messages (%d) reached: evicting the oldest records "
                        "(%d so far; pending ones count as evicted)",
                        self._cap, self._evicted_total,
                    )
                if packed & 7 in _OPEN:
                    session.counters[PENDING] -= 1
                    session.counters[EVICTED] += 1
                self._tombstones.add(message_id, self._clock())
                return

    def _insert(self, session: MessageSession, message_id: str, packed: int) -> None:
        if self._tracked >= self._cap:
            self._evict_one()
        offset = (packed >> _OFFSET_SHIFT) & _OFFSET_MASK
        expiry = session.start + offset + self._window
        if expiry + self._slack < self._next_due:
            self._next_expiry = expiry
            self._next_due = expiry + self._slack
        order = session.order
        last = session.records.get(order[-1]) if order else None
        if last is not None and (last >> _OFFSET_SHIFT) & _OFFSET_MASK > offset:
            self._place(session, message_id, offset)
        else:
            order.append(message_id)
        session.records[message_id] = packed
        self._tracked += 1
        if self._tracked > self._peak_tracked:
            self._peak_tracked = self._tracked
        counters = session.counters
        counters[SENT] += 1
        counters[PENDING] += 1

    @staticmethod
    def _place(session: MessageSession, message_id: str, offset: int) -> None:
        """Insert an out-of-order record (an adopted receipt's timestamp, a back-dated
        ``track_sent``) where its send time belongs, so that expiry and eviction, which read
        the send order from its front, still reach it in time. Binary search: O(log n) probes."""
        order, records = session.order, session.records
        size = len(order)

        def key(index: int) -> int:  # send offset of the first live entry at or after index
            while index < size:
                packed = records.get(order[index])
                if packed is not None:
                    return (packed >> _OFFSET_SHIFT) & _OFFSET_MASK
                index += 1
            return _OFFSET_MASK + 1

        low, high = 0, size
        while low < high:
            middle = (low + high) // 2
            if key(middle) <= offset:
                low = middle + 1
            else:
                high = middle
        order.insert(low, message_id)

    @staticmethod
    def _check_id(message_id: object) -> str:
        if (
            not isinstance(message_id, str)
            or not message_id
            or len(message_id) > MAX_MESSAGE_ID_LENGTH
            or not message_id.isascii()
        ):
            raise ValueError(
                f"message id must be 1 to {MAX_MESSAGE_ID_LENGTH} ASCII characters: "
                f"{message_id!r:.80}"
            )
        return message_id

    # -- public API -----------------------------------------------------------------------------

    def track_sent(
        self, message_id: str, recipient: str | None = None, sent_at: float | None = None
    ) -> bool:
        """Start tracking a message this process sent. False if it was already tracked, or its
        session has already completed."""
        now = self._clock()
        if now >= self._next_due:
            self._run_due(now)
        moment = now if sent_at is None else min(_seconds(sent_at), now)
        if message_id.__class__ is not str or not 0 < len(message_id) <= MAX_MESSAGE_ID_LENGTH:
            self._check_id(message_id)
        for session in self._newest_first:
            if message_id in session.records:
                return False
        for session in self._newest_first:
            if session.start <= moment < session.end:
                break
        else:
            found = self._session_for(moment, now)
            if found is None:
                return False
            session = found
        if not message_id.isascii():
            self._check_id(message_id)
        offset = min(int(moment - session.start), _OFFSET_MASK)
        self._insert(
            session,
            message_id,
            (self._encode_recipient(recipient) << _RECIPIENT_SHIFT) | (offset << _OFFSET_SHIFT),
        )
        return True

    def apply_receipt(self, receipt: Receipt) -> Outcome:
        """Apply one receipt; return its one outcome."""
        now = self._clock()
        if now >= self._next_due:
            self._run_due(now)
        message_id = receipt.message_id
        for session in self._newest_first:
            packed = session.records.get(message_id)
            if packed is not None:
                break
        else:
            return self._apply_untracked(receipt, now)
        cutoff = now - self._window
        timestamp = receipt.timestamp
        if session.start + ((packed >> _OFFSET_SHIFT) & _OFFSET_MASK) <= cutoff:
            # Its window is over but lazy expiry has not reached it yet.
            self._release(session, message_id, packed, now, "window")
            return self._late(session)
        if timestamp is not None and timestamp <= cutoff:
            return self._late(session)
        current = packed & 7
        outcome, new, deltas = _TRANSITIONS[current * 6 + receipt.status]
        self._receipts[outcome] += 1
        session.receipts[outcome] += 1
        if outcome != O_APPLIED:
            return _OUTCOMES[outcome]
        session.records[message_id] = packed - current + new
        counters = session.counters
        for index, delta in deltas:
            counters[index] += delta
        if new == _F:
            session.count_error(receipt.error.code if receipt.error is not None else None)
        if self._on_status is not None:
            self._announce(session, receipt, packed, current, new, Outcome.APPLIED, now)
        return Outcome.APPLIED

    def _late(self, session: MessageSession) -> Outcome:
        self._receipts[O_LATE] += 1
        session.receipts[O_LATE] += 1
        return Outcome.LATE

    def _apply_untracked(self, receipt: Receipt, now: float) -> Outcome:
        timestamp = now if receipt.timestamp is None else min(receipt.timestamp, now)
        late = timestamp + self._window <= now
        if not late:
            late = receipt.message_id in self._tombstones
        if late or not self.options.track_unknown_receipts:
            outcome = O_LATE if late else O_UNKNOWN
            self._receipts[outcome] += 1
            for session in self._newest_first:
                if session.start <= timestamp < session.end:
                    session.receipts[outcome] += 1
                    break
            return _OUTCOMES[outcome]
        try:
            self._check_id(receipt.message_id)
        except ValueError:
            self._receipts[O_UNKNOWN] += 1
            return Outcome.UNKNOWN
        target = self._session_for(timestamp, now)
        if target is None:
            self._receipts[O_LATE] += 1
            return Outcome.LATE
        offset = min(int(timestamp - target.start), _OFFSET_MASK)
        packed = (self._encode_recipient(receipt.recipient) << _RECIPIENT_SHIFT) | (
            offset << _OFFSET_SHIFT
        )
        self._insert(target, receipt.message_id, packed)
        _, new, deltas = _TRANSITIONS[_Q * 6 + receipt.status]
        target.records[receipt.message_id] = packed | new
        counters = target.counters
        for index, delta in deltas:
            counters[index] += delta
        if new == _F:
            target.count_error(receipt.error.code if receipt.error is not None else None)
        self._receipts[O_ADOPTED] += 1
        target.receipts[O_ADOPTED] += 1
        if self._on_status is not None:
            self._announce(target, receipt, packed, None, new, Outcome.ADOPTED, now)
        return Outcome.ADOPTED

    def _announce(
        self,
        session: MessageSession,
        receipt: Receipt,
        packed: int,
        old: int | None,
        new: int,
        outcome: Outcome,
        now: float,
    ) -> None:
        assert self._on_status is not None
        self._on_status(StatusChange(  # positional: this runs once per applied receipt
            receipt.message_id,
            session.session_id,
            None if old is None else _STATUSES[old],
            _STATUSES[new],
            outcome,
            self._decode_recipient(packed),
            receipt.provider,
            now if receipt.timestamp is None else receipt.timestamp,
            receipt.error,
        ))

    def cleanup(self, now: float | None = None) -> CleanupReport:
        """Complete due sessions, release expired records and tombstones, trim history."""
        now = self._clock() if now is None else now
        trimmed_before = self._history_trimmed
        expired_before = self._expired_total
        self._expire_records(now)
        completed = self._complete_due(now)
        dropped = self._tombstones.expire(now)
        self._schedule()
        self._last_cleanup = now
        report = CleanupReport(
            at=now,
            expired_messages=self._expired_total - expired_before,
            completed_sessions=tuple(completed),
            history_trimmed=self._history_trimmed - trimmed_before,
            remaining_history=self.history_size,
            tombstones_dropped=dropped,
        )
        log.info(
            "Periodic cleanup completed (history_trimmed=%d, remaining_history=%d)",
            report.history_trimmed, report.remaining_history,
        )
        if self._events is not None:
            self._events.cleanup_completed(report)
        return report

    # -- views ----------------------------------------------------------------------------------

    @property
    def history_size(self) -> int:
        return len(self._history) if self.options.history_limit > 0 else 0

    @property
    def tracked_messages(self) -> int:
        return self._tracked

    @property
    def sessions(self) -> list[MessageSession]:
        """Active sessions, oldest first (a copy)."""
        return list(self._sessions)

    @property
    def history(self) -> list[SessionSummary]:
        return list(self._history) if self.options.history_limit > 0 else []

    @property
    def tombstone_count(self) -> int:
        return len(self._tombstones)

    def records(self) -> Iterator[tuple[str, str, Status, float, str | None]]:
        """Every tracked record as (message id, session id, status, sent_at, recipient as the
        events show it): for debugging and snapshots, not for the hot path."""
        for session in self._sessions:
            for message_id, packed in session.records.items():
                yield (
                    message_id,
                    session.session_id,
                    _STATUSES[packed & 7],
                    session.start + ((packed >> _OFFSET_SHIFT) & _OFFSET_MASK),
                    self._decode_recipient(packed),
                )

    def max_active_sessions(self) -> int:
        """Most sessions that can be active at once with these options.

        A session is active from its start until ``min(end + window, start + max_session_age)``,
        and periods start ``session_period`` apart, so at most ``ceil(lifetime / period)`` starts
        fall in one lifetime; one more where daylight saving can shorten a period.
        """
        opts = self.options
        lifetime = min(opts.session_period + opts.ack_tracking_window, opts.max_session_age)
        return math.ceil(lifetime / opts.session_period) + (0 if self._calendar.fixed_offset else 1)

    def memory_bound_bytes(self) -> int:
        """An upper bound of the heap this manager can hold, computed from its options."""
        return memory_bound_bytes(self.options, self.max_active_sessions())

    def peaks(self) -> dict[str, int]:
        """High-water marks since start: what the bounds are checked against."""
        return {
            "active_sessions": self._peak_sessions,
            "tracked_messages": self._peak_tracked,
            "history_size": self.history_size,  # history never shrinks
        }

    def settle(self, now: float | None = None) -> None:
        """Apply every completion and expiry due by ``now``, exactly (the views call it)."""
        self._run_due(self._clock() if now is None else now)

    def get_all_stats(self) -> dict[str, Any]:
        self.settle()
        totals = [0] * len(COUNTER_KEYS)
        for session in self._sessions:
            for index, value in enumerate(session.counters):
                totals[index] += value
        summary: dict[str, Any] = {
            "active_sessions": len(self._sessions),
            "historical_sessions": self.history_size,
            "tracked_messages": self._tracked,
            **dict(zip(COUNTER_KEYS, totals, strict=True)),
            "receipts": dict(zip(OUTCOME_KEYS, self._receipts, strict=True)),
        }
        sessions = [s.stats() for s in self._sessions]
        summary["failures"] = sum_failures(s["failures"] for s in sessions)
        return {
            "summary": summary,
            "sessions": sessions,
            "history": [h.as_dict() for h in self.history],
        }

    def get_debug_info(self) -> dict[str, Any]:
        self.settle()
        return {
            "manager_stats": manager_stats(
                self.options,
                active_sessions=[s.session_id for s in self._sessions],
                history_size=self.history_size,
                tracked_messages=self._tracked,
                memory_bound_bytes=self.memory_bound_bytes(),
                hook_errors=self.hook_errors,
                tombstones=len(self._tombstones),
                evicted_total=self._evicted_total,
                max_active_sessions=self.max_active_sessions(),
                last_cleanup_at=self._last_cleanup,
                peaks=self.peaks(),
            )
        }
