"""What a user would otherwise write: two receipt trackers doing the manager's job, simply.

Both keep one ``@dataclass(slots=True)`` record per message (status, sent_at, recipient) and apply
the same ladder rules as the manager (DESIGN.md): never down the ladder, READ/PLAYED imply
DELIVERED, a positive delivery beats FAILED, FAILED after DELIVERED is stale; a receipt for a
message whose window is over (or older than the window) is late; an unknown id is adopted.

* :class:`DictTracker`: a plain ``dict`` of records (no expiry, no cap).
* :class:`TTLCacheTracker`: a ``cachetools.TTLCache`` (cap and per-item expiry).

Subscribers are plain callables receiving a :class:`plugin.core.model.StatusChange`.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from dataclasses import dataclass

from cachetools import TTLCache

from plugin.core.model import Outcome, Receipt, Status, StatusChange

__all__ = ["DictTracker", "Record", "TTLCacheTracker", "ladder"]

_POSITIVE = (Status.DELIVERED, Status.READ, Status.PLAYED)
_OPEN = (Status.QUEUED, Status.SENT)


@dataclass(slots=True)
class Record:
    status: Status
    sent_at: float
    recipient: str | None


def ladder(current: Status, new: Status) -> Outcome:
    """The outcome of receipt status ``new`` on a message at ``current``."""
    if new == current:
        return Outcome.DUPLICATE
    if new == Status.FAILED:
        return Outcome.STALE if current in _POSITIVE else Outcome.APPLIED
    if current == Status.FAILED:
        return Outcome.STALE if new in _OPEN else Outcome.APPLIED
    return Outcome.APPLIED if new > current else Outcome.STALE


class _Tracker:
    def __init__(self, window: float, clock: Callable[[], float]) -> None:
        self.window = window
        self.clock = clock
        self.records: MutableMapping[str, Record] = {}
        self.outcomes: dict[Outcome, int] = dict.fromkeys(Outcome, 0)
        self.subscribers: list[Callable[[StatusChange], object]] = []

    def track_sent(self, message_id: str, recipient: str | None, sent_at: float) -> None:
        self.records[message_id] = Record(Status.QUEUED, sent_at, recipient)

    def apply_receipt(self, receipt: Receipt) -> Outcome:
        now = self.clock()
        timestamp = now if receipt.timestamp is None else receipt.timestamp
        record = self.records.get(receipt.message_id)
        old: Status | None = None
        if record is None:
            if timestamp + self.window <= now:
                outcome = Outcome.LATE
            else:
                record = Record(receipt.status, timestamp, receipt.recipient)
                self.records[receipt.message_id] = record
                outcome = Outcome.ADOPTED
        elif record.sent_at + self.window <= now or timestamp + self.window <= now:
            outcome = Outcome.LATE
        else:
            outcome = ladder(record.status, receipt.status)
            if outcome is Outcome.APPLIED:
                old = record.status
                record.status = receipt.status
        self.outcomes[outcome] += 1
        if (
            self.subscribers
            and record is not None
            and (outcome is Outcome.APPLIED or outcome is Outcome.ADOPTED)
        ):
            change = StatusChange(
                receipt.message_id,
                "",
                old,
                receipt.status,
                outcome,
                record.recipient,
                receipt.provider,
                timestamp,
                receipt.error,
            )
            for subscriber in self.subscribers:
                subscriber(change)
        return outcome


class DictTracker(_Tracker):
    """A plain dict of slotted dataclass records."""


class TTLCacheTracker(_Tracker):
    """A ``cachetools.TTLCache`` of slotted dataclass records: capped, items expire after the
    window."""

    def __init__(self, window: float, clock: Callable[[], float], maxsize: int) -> None:
        super().__init__(window, clock)
        self.records = TTLCache(maxsize=maxsize, ttl=window, timer=clock)
