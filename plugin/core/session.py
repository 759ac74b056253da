"""One session: the messages sent in one period, their funnel and the receipts attributed to
them."""

from __future__ import annotations

from collections import deque
from typing import Any

from plugin.core.latency import MAX_BUCKET, latency_view, nonzero
from plugin.core.model import COUNTER_KEYS, OUTCOME_KEYS, SessionSummary
from plugin.core.records import MAX_ERROR_CODES, OTHER_TAG
from plugin.core.views import session_stats

__all__ = ["MAX_ERROR_CODES", "MessageSession"]


class MessageSession:
    """The messages sent in one period, their funnel and the receipts attributed to them."""

    __slots__ = (
        "complete_at",
        "counters",
        "delivered_latency",
        "end",
        "errors",
        "latency_sums",
        "order",
        "read_latency",
        "receipts",
        "records",
        "session_id",
        "start",
        "tag_counters",
        "tag_index",
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
        self.tag_index: dict[str, int] = {}  # tag -> its index in packed records (from 1)
        self.tag_counters: dict[int, list[int]] = {}  # tag index -> its funnel
        # Messages per latency bucket (a list: the receipt path only adds one), seconds in all.
        self.delivered_latency = [0] * (MAX_BUCKET + 1)
        self.read_latency = [0] * (MAX_BUCKET + 1)
        self.latency_sums = [0.0, 0.0]

    def tag_of(self, tag: str, limit: int) -> int:
        """The index of ``tag`` in this session: a new one while fewer than ``limit`` tags are
        named, else the "other" index."""
        index = self.tag_index.get(tag)
        if index is None:
            if len(self.tag_index) >= limit:
                index = OTHER_TAG
            else:
                index = self.tag_index[tag] = len(self.tag_index) + 1
        if index not in self.tag_counters:
            self.tag_counters[index] = [0] * len(COUNTER_KEYS)
        return index

    def tags(self) -> dict[str, dict[str, int]]:
        """Each tag's funnel (``"other"`` for the tags past the limit)."""
        names = {index: tag for tag, index in self.tag_index.items()}
        names[OTHER_TAG] = "other"
        return {
            names[index]: dict(zip(COUNTER_KEYS, counters, strict=True))
            for index, counters in sorted(self.tag_counters.items())
        }

    def histograms(self) -> tuple[dict[int, int], dict[int, int]]:
        """The delivered and read histograms: bucket -> messages, empty buckets left out."""
        return nonzero(self.delivered_latency), nonzero(self.read_latency)

    def latency(self) -> dict[str, object]:
        return latency_view(*self.histograms())

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
            tags=self.tags(),
            latency=self.latency(),
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
            tags=self.tags(),
            latency=self.latency(),
        )
