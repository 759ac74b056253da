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

import logging
from collections.abc import Mapping
from datetime import timedelta
from math import log as _log
from typing import Any

from plugin.core.emitter import EventEmitter, EventSink
from plugin.core.ladder import (
    LATENCY_MARKS,
    MAKES_DELIVERED,
    MAKES_READ,
    O_ADOPTED,
    O_APPLIED,
    O_LATE,
    O_UNKNOWN,
    OUTCOMES,
    STATUSES,
    TRANSITIONS,
)
from plugin.core.latency import INVERSE_LOG_RATIO, MAX_BUCKET
from plugin.core.lifecycle import EXPIRY_SLICE
from plugin.core.model import (
    CleanupReport,
    Outcome,
    Receipt,
    Status,
    StatusChange,
)
from plugin.core.options import ManagerOptions, resolve_options
from plugin.core.records import (
    MAX_MESSAGE_ID_LENGTH,
    NO_SEND_TIME,
    OFFSET_MASK,
    OFFSET_SHIFT,
    RECIPIENT_MASK,
    RECIPIENT_SHIFT,
    STATUS_MASK,
    TAG_SHIFT,
    check_message_id,
    normalize_tag,
)
from plugin.core.reports import ManagerReports
from plugin.core.session import MessageSession

__all__ = [
    "MAX_MESSAGE_ID_LENGTH",
    "EventEmitter",
    "EventSink",
    "MessageSession",
    "MessageSessionManager",
]

log = logging.getLogger("plugin.core.manager")

_Q, _S, _F = int(Status.QUEUED), int(Status.SENT), int(Status.FAILED)
_TAGGED = 1 << TAG_SHIFT


def _seconds(value: float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


class MessageSessionManager(ManagerReports):
    """Tracks sent messages and their receipts in bounded memory.

    ``MessageSessionManager(**options, clock=time.time)``: the options are the settings keys
    (durations as ``"12h"``, integer milliseconds or ``timedelta``).
    """

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

    def redact(self, recipient: str | None) -> str | None:
        """The keyed hash that logs, summaries and events carry instead of a phone number."""
        return self._codec.redact(recipient)

    # -- public API -----------------------------------------------------------------------------

    def track_sent(
        self,
        message_id: str,
        recipient: str | None = None,
        sent_at: float | None = None,
        *,
        tag: str | None = None,
    ) -> bool:
        """Start tracking a message this process sent (``tag``: what it is, e.g. the template's
        name, for the per-tag funnels). False if it was already tracked, or its session has
        already completed."""
        now = self._clock()
        if now >= self._next_due:
            self._run_due(now, EXPIRY_SLICE)
        moment = now if sent_at is None else min(_seconds(sent_at), now)
        if message_id.__class__ is not str or not 0 < len(message_id) <= MAX_MESSAGE_ID_LENGTH:
            check_message_id(message_id)
        for session in self._newest_first:
            if message_id in session.records:
                return False
        for session in self._newest_first:
            if session.start <= moment < session.end:
                if session.complete_at <= now:
                    return False  # its session is completing (a slice at a time)
                break
        else:
            found = self._session_for(moment, now)
            if found is None:
                return False
            session = found
        if not (message_id.isascii() and message_id.isprintable()):
            check_message_id(message_id)
        offset = min(int(moment - session.start), OFFSET_MASK)
        packed = (self._codec.field(recipient) << RECIPIENT_SHIFT) | (offset << OFFSET_SHIFT)
        if tag is not None:
            name = normalize_tag(tag)
            if name is not None:
                packed |= session.tag_of(name, self.options.max_tags_per_session) << TAG_SHIFT
        self._insert(session, message_id, packed)
        return True

    def apply_receipt(self, receipt: Receipt) -> Outcome:
        """Apply one receipt; return its one outcome."""
        now = self._clock()
        if now >= self._next_due:
            self._run_due(now, EXPIRY_SLICE)
        message_id = receipt.message_id
        for session in self._newest_first:
            packed = session.records.get(message_id)
            if packed is not None:
                break
        else:
            return self._apply_untracked(receipt, now)
        cutoff = now - self._window
        timestamp = receipt.timestamp
        if session.start + ((packed >> OFFSET_SHIFT) & OFFSET_MASK) <= cutoff:
            # Its window is over but lazy expiry has not reached it yet.
            self._release(session, message_id, packed, now, "window")
            return self._late(session)
        if session.complete_at <= now:  # its session is completing, a slice at a time
            self._release(session, message_id, packed, now, "session")
            return self._late(session)
        if timestamp is not None and timestamp <= cutoff:
            return self._late(session)
        current = packed & STATUS_MASK
        transition = current * 6 + receipt.status
        outcome, new, deltas = TRANSITIONS[transition]
        self._receipts[outcome] += 1
        session.receipts[outcome] += 1
        if outcome != O_APPLIED:
            return OUTCOMES[outcome]
        session.records[message_id] = packed - current + new
        counters = session.counters
        for index, delta in deltas:
            counters[index] += delta
        if packed >= _TAGGED:
            tag_counters = session.tag_counters[packed >> TAG_SHIFT]
            for index, delta in deltas:
                tag_counters[index] += delta
        marks = LATENCY_MARKS[transition]
        if marks and not packed & NO_SEND_TIME:  # inline: once per delivered or read message
            seconds = (
                (now if timestamp is None else timestamp)
                - session.start
                - ((packed >> OFFSET_SHIFT) & OFFSET_MASK)
            )
            bucket = 1 + int(_log(seconds) * INVERSE_LOG_RATIO) if seconds >= 1.0 else 0
            if bucket > MAX_BUCKET:
                bucket = MAX_BUCKET
            if marks & MAKES_DELIVERED:
                session.delivered_latency[bucket] += 1
                session.latency_sums[0] += seconds if seconds > 0.0 else 0.0
            if marks & MAKES_READ:
                session.read_latency[bucket] += 1
                session.latency_sums[1] += seconds if seconds > 0.0 else 0.0
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
            return OUTCOMES[outcome]
        try:
            check_message_id(receipt.message_id)
        except ValueError:
            self._receipts[O_UNKNOWN] += 1
            return Outcome.UNKNOWN
        target = self._session_for(timestamp, now)
        if target is None:
            self._receipts[O_LATE] += 1
            return Outcome.LATE
        offset = min(int(timestamp - target.start), OFFSET_MASK)
        packed = (self._codec.field(receipt.recipient) << RECIPIENT_SHIFT) | (
            offset << OFFSET_SHIFT
        )
        if receipt.status > _S:  # adopted past "sent": its send time is not known
            packed |= NO_SEND_TIME
        self._insert(target, receipt.message_id, packed)
        _, new, deltas = TRANSITIONS[_Q * 6 + receipt.status]
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
        self._on_status(
            StatusChange(  # positional: this runs once per applied receipt
                receipt.message_id,
                session.session_id,
                None if old is None else STATUSES[old],
                STATUSES[new],
                outcome,
                self._codec.text((packed >> RECIPIENT_SHIFT) & RECIPIENT_MASK),
                receipt.provider,
                now if receipt.timestamp is None else receipt.timestamp,
                receipt.error,
            )
        )

    def cleanup(self, now: float | None = None) -> CleanupReport:
        """Complete due sessions, release expired records and tombstones, trim history."""
        now = self._clock() if now is None else now
        trimmed_before = self._history_trimmed
        expired_before = self._expired_total
        self._expire_records(now)
        completed, _ = self._complete_due(now)
        dropped = self._tombstones.expire(now)
        self._backlog = False
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
        return self.announce_cleanup(report)
