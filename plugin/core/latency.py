"""Delivery latency: seconds from a message's send time to its first delivered and first read
receipt, kept as bounded histograms (no per-record memory: the send time is already in the
packed record).

Buckets: ``[0, 1 s)``, then log-spaced ones ``[1.1**(i-1), 1.1**i)``. A percentile is reported as
``2·lo·hi/(lo+hi)`` of its bucket, within ``(r-1)/(r+1)`` = 4.8 % of the true value for any value
of at least one second (the ``[0, 1 s)`` bucket reports 0: Meta's timestamps are whole seconds).
The last bucket holds everything past 30 days, the longest ack window.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "INVERSE_LOG_RATIO",
    "LATENCY_KINDS",
    "MAX_BUCKET",
    "PERCENTILES",
    "PROMETHEUS_BUCKETS",
    "PROMETHEUS_BUCKET_INDEXES",
    "RATIO",
    "LatencyTotals",
    "bucket_of",
    "bucket_value",
    "latency_view",
    "merge",
    "nonzero",
    "percentile",
]

RATIO = 1.1
_LOG_RATIO = math.log(RATIO)
#: The last bucket's index: 1.1**MAX_BUCKET is past 30 days (2,592,000 s).
MAX_BUCKET = 157
#: What is measured: send to first delivered, send to first read.
LATENCY_KINDS = ("delivered", "read")
PERCENTILES = (("p50", 0.50), ("p90", 0.90), ("p99", 0.99))
INVERSE_LOG_RATIO = 1 / _LOG_RATIO
#: The fine buckets whose upper bounds are the Prometheus histogram's ``le`` boundaries: the
#: bounds nearest 1 s, 5 s, 15 s, 30 s, 1 min, 2 min, 5 min, 10 min, 30 min, 1 h, 2 h, 6 h, 12 h,
#: 1 d (a count per ``le`` is then exact).
PROMETHEUS_BUCKET_INDEXES = tuple(
    round(math.log(seconds) / _LOG_RATIO) if seconds > 1 else 0
    for seconds in (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 43200, 86400)
)
#: The ``le`` boundaries (seconds): the upper bounds of those buckets.
PROMETHEUS_BUCKETS = tuple(
    1.0 if index == 0 else round(RATIO**index, 3) for index in PROMETHEUS_BUCKET_INDEXES
)


class LatencyTotals:
    """Every latency observed since start, cumulative (the Prometheus histogram): counts per
    bucket and the sum of seconds, per kind. The manager adds a session's histograms when the
    session completes; the active sessions' are added at scrape time."""

    __slots__ = ("buckets", "sums")

    def __init__(self) -> None:
        self.buckets = [[0] * (MAX_BUCKET + 1) for _ in LATENCY_KINDS]
        self.sums = [0.0 for _ in LATENCY_KINDS]

    def add(self, histograms: Sequence[Sequence[int]], sums: Sequence[float]) -> None:
        for kind, counts in enumerate(histograms):
            mine = self.buckets[kind]
            for index, count in enumerate(counts):
                if count:
                    mine[index] += count
            self.sums[kind] += sums[kind]

    def as_dict(self) -> dict[str, Any]:
        """Per kind: the Prometheus ``buckets`` (cumulative count per ``le``, last +Inf), sum and
        count."""
        out: dict[str, Any] = {}
        for index, kind in enumerate(LATENCY_KINDS):
            counts = self.buckets[index]
            cumulative = [sum(counts[: top + 1]) for top in PROMETHEUS_BUCKET_INDEXES]
            out[kind] = {
                "le": list(PROMETHEUS_BUCKETS),
                "buckets": [*cumulative, sum(counts)],
                "sum": self.sums[index],
                "count": sum(counts),
            }
        return out


def nonzero(counts: Sequence[int]) -> dict[int, int]:
    """A histogram as bucket -> count, empty buckets left out."""
    return {index: count for index, count in enumerate(counts) if count}


def bucket_of(seconds: float) -> int:
    """The bucket of a latency (negative ones clamp to 0)."""
    if seconds < 1.0:
        return 0
    return min(1 + int(math.log(seconds) / _LOG_RATIO), MAX_BUCKET)


def bucket_value(index: int) -> float:
    """What a bucket reports: 0 for ``[0, 1 s)``, else the harmonic middle of its bounds."""
    if index <= 0:
        return 0.0
    low, high = RATIO ** (index - 1), RATIO**index
    return 2 * low * high / (low + high)


def merge(histograms: Iterable[Mapping[int, int]]) -> dict[int, int]:
    """One histogram adding up several."""
    total: dict[int, int] = {}
    for histogram in histograms:
        for index, count in histogram.items():
            total[index] = total.get(index, 0) + count
    return total


def percentile(histogram: Mapping[int, int], fraction: float) -> float | None:
    """The nearest-rank percentile (None for an empty histogram)."""
    count = sum(histogram.values())
    if count == 0:
        return None
    rank = max(1, math.ceil(fraction * count))
    seen = 0
    for index in sorted(histogram):
        seen += histogram[index]
        if seen >= rank:
            return round(bucket_value(index), 3)
    return round(bucket_value(max(histogram)), 3)  # pragma: no cover - the loop always returns


def latency_view(delivered: Mapping[int, int], read: Mapping[int, int]) -> dict[str, Any]:
    """``"latency"`` of a session, summary or history entry: count and percentiles per kind."""
    view: dict[str, Any] = {}
    for kind, histogram in (("delivered", delivered), ("read", read)):
        entry: dict[str, Any] = {"count": sum(histogram.values())}
        for name, fraction in PERCENTILES:
            entry[name] = percentile(histogram, fraction)
        view[kind] = entry
    return view
