"""The manager's state and lifecycle: sessions, records in send order, expiry, eviction and
completion. The memory layout is described in :mod:`plugin.core.manager`; the public API lives
there too. Split out so that each module owns one part of the manager."""

from __future__ import annotations

import logging
import math
import os
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from plugin.core.emitter import EventEmitter, EventSink
from plugin.core.ladder import EVICTED, EXPIRED, OPEN, PENDING, SENT, STATUSES
from plugin.core.latency import LatencyTotals
from plugin.core.model import OUTCOME_KEYS, MessageExpired, SessionSummary
from plugin.core.options import ManagerOptions, resolve_options
from plugin.core.periods import PeriodCalendar, completion_time
from plugin.core.records import (
    OFFSET_MASK,
    OFFSET_SHIFT,
    RECIPIENT_MASK,
    RECIPIENT_SHIFT,
    STATUS_MASK,
    TAG_SHIFT,
    RecipientCodec,
)
from plugin.core.session import MessageSession
from plugin.core.tombstones import Tombstones

__all__ = ["EXPIRY_SLICE", "SessionBook"]

log = logging.getLogger("plugin.core.manager")

#: Due records a receipt, send or view call releases at most (expiries and completions
#: together); the rest is left to the next call or the server's background drain.
EXPIRY_SLICE = 256


class SessionBook(EventEmitter):
    """The manager's state and its lifecycle: sessions, records, expiry, eviction, completion.
    :class:`~plugin.core.manager.MessageSessionManager` adds the public API on top."""

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
        self._codec = RecipientCodec(
            opts.redaction_key.encode() or os.urandom(16), opts.redact_recipients
        )
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
        self._backlog = False  # due work left over by a bounded _run_due
        #: Set by a server that drains the backlog from a background task (settle_slice):
        #: then calls leave the backlog to it instead of each taking one more slice.
        self.background_drain = False
        self._clearing: dict[str, int] = {}  # completing session -> records it held
        # The latency histograms of completed sessions, added up (for the Prometheus histogram).
        self._latency_completed = LatencyTotals()
        EventEmitter.__init__(self)
        if events is not None:
            self.attach_events(events)

    # -- sessions -------------------------------------------------------------------------------

    def _session_for(self, moment: float, now: float) -> MessageSession | None:
        """The active session of ``moment``'s period, created if needed; None if that session
        has completed (or would have by ``now``)."""
        for session in self._newest_first:
            if session.start <= moment < session.end:
                return session if session.complete_at > now else None  # completing: late
        period = self._calendar.period_of(moment)
        complete_at = completion_time(period, self._window, self.options.max_session_age)
        if complete_at <= now:
            return None
        if self._complete_due(now, EXPIRY_SLICE)[1]:
            self._backlog, self._next_due = True, -math.inf
        session = MessageSession(period.session_id, period.start, period.end, complete_at)
        self._sessions.append(session)
        self._sessions.sort(key=lambda s: s.start)
        self._newest_first = self._sessions[::-1]
        self._next_due = min(self._next_due, complete_at)
        self._peak_sessions = max(self._peak_sessions, len(self._sessions))
        return session

    def _complete_due(self, now: float, budget: float = math.inf) -> tuple[list[str], bool]:
        """Complete the sessions due by ``now``, releasing at most ``budget`` records; the
        ids completed, and whether some due session is still being completed."""
        completed: list[str] = []
        for session in [s for s in self._sessions if s.complete_at <= now]:
            budget -= self._clear(session, now, budget)
            if session.records:
                return completed, True
            self._complete(session, now)
            completed.append(session.session_id)
        return completed, False

    def _clear(self, session: MessageSession, now: float, budget: float) -> int:
        """Release up to ``budget`` records of a completing session, in send order."""
        records, order = session.records, session.order
        self._clearing.setdefault(session.session_id, len(records))
        released = 0
        while records and released < budget:
            if order:
                message_id = order.popleft()
                packed = records.get(message_id)
                if packed is None:
                    continue
            else:  # a record the send order lacks
                message_id, packed = next(iter(records.items()))
            self._release(session, message_id, packed, now, "session")
            released += 1
        return released

    def _complete(self, session: MessageSession, now: float) -> None:
        cleared = self._clearing.pop(session.session_id, 0)
        self._sessions.remove(session)
        self._newest_first = self._sessions[::-1]
        self._latency_completed.add(
            (session.delivered_latency, session.read_latency), session.latency_sums
        )
        summary = session.summary(now)
        if self.options.history_limit > 0:
            if len(self._history) == self._history.maxlen:
                self._history_trimmed += 1
            self._history.append(summary)
        self.announce_completion(summary, cleared)

    # -- records --------------------------------------------------------------------------------

    def _release(
        self, session: MessageSession, message_id: str, packed: int, now: float, reason: str
    ) -> None:
        """Drop one record; a still-pending one counts as expired and is announced."""
        del session.records[message_id]
        self._tracked -= 1
        if packed & STATUS_MASK in OPEN:
            self._expired_total += 1
            self._drop_pending(session, message_id, packed, EXPIRED, reason)
        self._tombstones.add(message_id, now)

    def _drop_pending(
        self, session: MessageSession, message_id: str, packed: int, counter: int, reason: str
    ) -> None:
        """A pending record leaves: ``counter`` (expired or evicted) instead of pending, in its
        session's funnel and its tag's, announced as ``whatsapp_message_expired``."""
        counters = session.counters
        counters[PENDING] -= 1
        counters[counter] += 1
        tag = packed >> TAG_SHIFT
        if tag:
            tag_counters = session.tag_counters[tag]
            tag_counters[PENDING] -= 1
            tag_counters[counter] += 1
        if self._on_expired is not None:
            self._on_expired(
                MessageExpired(
                    message_id=message_id,
                    session_id=session.session_id,
                    status=STATUSES[packed & STATUS_MASK],
                    recipient=self._codec.text((packed >> RECIPIENT_SHIFT) & RECIPIENT_MASK),
                    sent_at=session.start + ((packed >> OFFSET_SHIFT) & OFFSET_MASK),
                    reason=reason,
                )
            )

    def _expire_records(self, now: float, budget: float = math.inf) -> tuple[int, bool]:
        """Release the records whose window is over (at most ``budget``), reading each session
        in send order; records adopted out of order are caught on lookup or at completion.
        Sets the time of the next expiry (the earliest front record's). In a session due to
        complete, only the records whose window ended before its completion expire by window.
        Returns how many were released and whether the budget ran out first."""
        released = 0
        next_expiry = math.inf
        for session in self._sessions:
            order, records, start = session.order, session.records, session.start
            cutoff = min(now, session.complete_at) - self._window
            while order:
                message_id = order[0]
                packed = records.get(message_id)
                if packed is not None:
                    sent_at = start + ((packed >> OFFSET_SHIFT) & OFFSET_MASK)
                    if sent_at > cutoff:
                        next_expiry = min(next_expiry, sent_at + self._window)
                        break
                    if released >= budget:
                        return released, True
                    self._release(session, message_id, packed, now, "window")
                    released += 1
                order.popleft()
        self._next_expiry = next_expiry
        return released, False

    def _schedule(self) -> None:
        # Expiry on the receipt path runs in batches (at most ``_slack`` late): a receipt for a
        # record past its window is still answered ``late`` at once, and the views and
        # cleanup() settle expiry exactly before they report.
        self._next_due = self._next_expiry + self._slack
        for session in self._sessions:
            if session.complete_at < self._next_due:
                self._next_due = session.complete_at

    def _run_due(self, now: float, budget: float = math.inf) -> tuple[int, list[str]]:
        """Release what is due by ``now``: at most ``budget`` records (expiries first, then
        completions). What is left stays due: the next call (or the server's background
        drain) goes on with it, and answers stay exact meanwhile (a record past its window,
        or in a session past its completion, is late when a receipt reaches it)."""
        # Windows that ended before a completion are released first, so that they count as
        # expired by "window", as they would have with a timely call.
        released, more = self._expire_records(now, budget)
        completed: list[str] = []
        if not more:
            completed, more = self._complete_due(now, budget - released)
        self._tombstones.expire(now)
        self._backlog = more
        if more:  # the next call goes on with it, or the background drain does
            self._next_due = math.inf if self.background_drain else -math.inf
        else:
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
                        self._cap,
                        self._evicted_total,
                    )
                if packed & STATUS_MASK in OPEN:
                    self._drop_pending(session, message_id, packed, EVICTED, "evicted")
                self._tombstones.add(message_id, self._clock())
                return

    def _insert(self, session: MessageSession, message_id: str, packed: int) -> None:
        if self._tracked >= self._cap:
            self._evict_one()
        offset = (packed >> OFFSET_SHIFT) & OFFSET_MASK
        expiry = session.start + offset + self._window
        if expiry + self._slack < self._next_due:
            self._next_expiry = expiry
            self._next_due = expiry + self._slack
        order = session.order
        last = session.records.get(order[-1]) if order else None
        if last is not None and (last >> OFFSET_SHIFT) & OFFSET_MASK > offset:
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
        tag = packed >> TAG_SHIFT
        if tag:
            tag_counters = session.tag_counters[tag]
            tag_counters[SENT] += 1
            tag_counters[PENDING] += 1

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
                    return (packed >> OFFSET_SHIFT) & OFFSET_MASK
                index += 1
            return OFFSET_MASK + 1

        low, high = 0, size
        while low < high:
            middle = (low + high) // 2
            if key(middle) <= offset:
                low = middle + 1
            else:
                high = middle
        order.insert(low, message_id)
