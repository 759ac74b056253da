"""``wa_sessions_delivery_latency_seconds{status}``: seconds from a message's send time to its
first delivered and first read receipt, as a Prometheus histogram of this process.

It is fed from ``status changed`` events when they carry the send time (``StatusChange.sent_at``,
epoch seconds) and some plugin listens to them anyway: the observer is registered at start-up
only then, so it never makes the receipt path build and queue an event per receipt. Otherwise
the histogram is exported with zero counts: the metric exists for dashboards and alert rules,
and no number is made up. A store that measures latency itself can feed it with
:meth:`LatencyHistogram.observe`.
"""

from __future__ import annotations

import bisect
import dataclasses
from typing import Any

from plugin.core.model import Status, StatusChange
from plugin.hooks.hookspecs import hookimpl

__all__ = ["BUCKETS", "LatencyHistogram", "LatencyObserver", "events_carry_send_time"]

#: Upper bounds (seconds) of the buckets: a second to a day, then +Inf.
BUCKETS: tuple[float, ...] = (
    1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 21600.0,
    43200.0, 86400.0,
)
STATUSES = ("delivered", "read")
_POSITIVE = (Status.DELIVERED, Status.READ, Status.PLAYED)


def events_carry_send_time() -> bool:
    """Whether ``StatusChange`` has a ``sent_at`` field to measure from."""
    return any(f.name == "sent_at" for f in dataclasses.fields(StatusChange))


class LatencyHistogram:
    """Cumulative-by-export bucket counts per status (monotonic, like a Prometheus counter)."""

    def __init__(self) -> None:
        self.counts = {status: [0] * (len(BUCKETS) + 1) for status in STATUSES}
        self.sums = dict.fromkeys(STATUSES, 0.0)

    def observe(self, status: str, seconds: float) -> None:
        seconds = max(0.0, seconds)  # Meta's timestamps are whole seconds
        self.counts[status][bisect.bisect_left(BUCKETS, seconds)] += 1
        self.sums[status] += seconds

    def buckets(self, status: str) -> list[tuple[str, float]]:
        """``(le, cumulative count)`` pairs, ``+Inf`` last, as Prometheus exports them."""
        total, pairs = 0, []
        for bound, count in zip((*BUCKETS, float("inf")), self.counts[status], strict=True):
            total += count
            pairs.append(("+Inf" if bound == float("inf") else f"{bound:g}", float(total)))
        return pairs

    def observe_change(self, change: StatusChange) -> None:
        """Measure one status change: the first delivered (a read with no delivered before it
        counts for both) and the first read of a tracked message."""
        sent_at: Any = getattr(change, "sent_at", None)
        old, new = change.old_status, change.new_status
        if sent_at is None or old is None or new not in _POSITIVE:
            return
        seconds = float(change.timestamp) - float(sent_at)
        if old not in _POSITIVE:
            self.observe("delivered", seconds)
        if new is not Status.DELIVERED and old in (Status.QUEUED, Status.SENT, Status.DELIVERED,
                                                   Status.FAILED):
            self.observe("read", seconds)


class LatencyObserver:
    """The plugin that feeds a :class:`LatencyHistogram` from ``status changed`` events."""

    def __init__(self, histogram: LatencyHistogram) -> None:
        self.histogram = histogram

    @hookimpl
    def whatsapp_status_changed(self, change: StatusChange) -> None:
        self.histogram.observe_change(change)
