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
from bisect import bisect_left
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "LATENCY_KINDS",
    "MAX_BUCKET",
    "PERCENTILES",
    "PROMETHEUS_BUCKETS",
    "RATIO",
    "LatencyTotals",
    "bucket_of",
    "bucket_value",
    "latency_view",
    "merge",
    "percentile",
]

RATIO = 1.1
_LOG_RATIO = math.log(RATIO)
#: The last bucket's index: 1.1**MAX_BUCKET is past 30 days (2,592,000 s).
MAX_BUCKET = 157
#: What is measured: send to first delivered, send to first read.
LATENCY_KINDS = ("delivered", "read")
PERCENTILES = (("p50", 0.50), ("p90", 0.90), ("p99", 0.99))
#: The ``le`` boundaries of the Prometheus histogram (seconds).
PROMETHEUS_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
                      7200.0, 21600.0, 43200.0, 86400.0)


class LatencyTotals:
    """Every latency observed since start, cumulative (the Prometheus histogram): counts per
    ``le`` boundary of :data:`PROMETHEUS_BUCKETS` (last: +Inf), sums and counts per kind."""

    __slots__ = ("buckets", "counts", "sums")

    def __init__(self) -> None:
        self.buckets = [[0] * (len(PROMETHEUS_BUCKETS) + 1) for _ in LATENCY_KINDS]
        self.sums = [0.0 for _ in LATENCY_KINDS]
        self.counts = [0 for _ in LATENCY_KINDS]

    def observe(self, kind: int, seconds: float) -> None:
        seconds = max(seconds, 0.0)
        self.buckets[kind][bisect_left(PROMETHEUS_BUCKETS, seconds)] += 1
        self.sums[kind] += seconds
        self.counts[kind] += 1

    def as_dict(self) -> dict[str, Any]:
        """Per kind: ``buckets`` (non-cumulative counts per boundary, then +Inf), sum, count."""
        return {
            kind: {"buckets": list(self.buckets[i]), "sum": self.sums[i], "count": self.counts[i]}
            for i, kind in enumerate(LATENCY_KINDS)
        }


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
