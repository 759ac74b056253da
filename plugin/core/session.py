"""One session: the messages sent in one period, their funnel and the receipts attributed to
them."""

from __future__ import annotations

from collections import deque
from typing import Any

from plugin.core.model import COUNTER_KEYS, OUTCOME_KEYS, SessionSummary
from plugin.core.records import MAX_ERROR_CODES
from plugin.core.views import session_stats

__all__ = ["MAX_ERROR_CODES", "MessageSession"]


class MessageSession:
    """The messages sent in one period, their funnel and the receipts attributed to them."""

    __slots__ = (
        "complete_at",
        "counters",
        "end",
        "errors",
        "order",
        "receipts",
        "records",
        "session_id",
        "start",
    )

    def __init__(self, session_id: str, start: float, end: float, complete_at: float) -> None:
        self.session_id = session_id
        self.start = start
        self.end = end
        self.complete_at = complete_at
        self.records: dict[str, int] = {}
        self.order: deque[str] = deque()  # ids in send order; may hold ids already released
        self.counters = [0] * len(COUNTER_KEYS)
        self.receipts = [0] * len(OUTCOME_KEYS)
        self.errors: dict[str, int] = {}

    def count_error(self, code: str | None) -> None:
        key = code or "unknown"
        if key not in self.errors and len(self.errors) >= MAX_ERROR_CODES:
            key = "other"
        self.errors[key] = self.errors.get(key, 0) + 1

    def stats(self) -> dict[str, Any]:
        return session_stats(
            self.session_id,
            self.start,
            self.end,
            self.complete_at,
            len(self.records),
            dict(zip(COUNTER_KEYS, self.counters, strict=True)),
            dict(zip(OUTCOME_KEYS, self.receipts, strict=True)),
            self.errors,
        )

    def summary(self, completed_at: float) -> SessionSummary:
        return SessionSummary(
            session_id=self.session_id,
            started_at=self.start,
            ended_at=self.end,
            completed_at=completed_at,
            counters=dict(zip(COUNTER_KEYS, self.counters, strict=True)),
            receipts=dict(zip(OUTCOME_KEYS, self.receipts, strict=True)),
            errors=dict(self.errors),
        )


