"""Prometheus metrics of one application, read at scrape time.

Each application gets its own ``CollectorRegistry`` holding one collector over its runtime: the
receipt path only bumps plain integers it keeps anyway, and a scrape turns them into metric
families. Two applications in one process (or one test after another) never share a metric.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, ProcessCollector, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from plugin.core.failures import FAILURE_KINDS
from plugin.core.latency import LATENCY_KINDS
from plugin.core.model import COUNTER_KEYS
from plugin.server.runtime import Runtime
from plugin.stores.deferred import deferred_writes

__all__ = ["CONTENT_TYPE", "RuntimeCollector", "make_registry", "render"]

CONTENT_TYPE = CONTENT_TYPE_LATEST
PREFIX = "wa_sessions"

_WEBHOOK_COUNTERS = (
    ("requests", "Webhook requests received, refused ones included"),
    ("receipts", "Receipts parsed from authentic webhook requests"),
    ("inbound", "Inbound user messages parsed from authentic webhook requests"),
    ("rejected", "Malformed webhook items, and bodies refused with 400 or 413"),
    ("ignored", "Well-formed webhook items that are not tracked (other statuses or events)"),
    ("unauthorized", "Webhook requests refused with 401 or 403"),
    ("stopped", "Parsed receipts a receive middleware handled without passing them on"),
    ("errors", "Parsed receipts whose processing raised (logged): no outcome"),
)


class RuntimeCollector(Collector):
    """The metrics of one :class:`~plugin.server.runtime.Runtime`."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def collect(self) -> Iterator[Metric]:
        runtime = self.runtime
        if runtime.views is None:  # the store's views are read by the /metrics route first
            return
        debug, all_stats = runtime.views
        stats = debug["manager_stats"]
        summary = all_stats["summary"]

        yield from _webhook_metrics(runtime)
        yield from _store_metrics(runtime, stats, summary)
        yield from _insights(runtime, stats, summary)
        yield from _send_metrics(runtime)


def _webhook_metrics(runtime: Runtime) -> Iterator[Metric]:
    """Per provider: receipts by outcome, and the webhook counters."""
    receipts = CounterMetricFamily(
        f"{PREFIX}_receipts",
        "Receipts applied to the manager, by provider and outcome",
        labels=["provider", "outcome"],
    )
    for provider, counters in runtime.webhooks.items():
        for outcome, count in counters.outcome_counts().items():
            receipts.add_metric([provider, outcome], count)
    yield receipts

    for name, text in _WEBHOOK_COUNTERS:
        family = CounterMetricFamily(f"{PREFIX}_webhook_{name}", text, labels=["provider"])
        for provider, counters in runtime.webhooks.items():
            family.add_metric([provider], getattr(counters, name))
        yield family


def _store_metrics(
    runtime: Runtime, stats: dict[str, Any], summary: dict[str, Any]
) -> Iterator[Metric]:
    """The store's state against its bounds, errors and event delivery."""
    yield GaugeMetricFamily(
        f"{PREFIX}_active_sessions",
        "Sessions currently tracked",
        value=summary["active_sessions"],
    )
    yield GaugeMetricFamily(
        f"{PREFIX}_tracked_messages",
        "Message records in memory",
        value=summary["tracked_messages"],
    )
    yield GaugeMetricFamily(
        f"{PREFIX}_max_tracked_messages",
        "Hard cap on message records",
        value=stats["max_tracked_messages"],
    )
    yield GaugeMetricFamily(
        f"{PREFIX}_history_size",
        "Completed-session summaries kept",
        value=stats["history_size"],
    )
    yield GaugeMetricFamily(
        f"{PREFIX}_memory_bound_bytes",
        "Upper bound of the manager's heap, from its options",
        value=stats["memory_bound_bytes"],
    )
    funnel = GaugeMetricFamily(
        f"{PREFIX}_session_messages",
        "Funnel counters summed over the active sessions",
        labels=["counter"],
    )
    for key in COUNTER_KEYS:
        funnel.add_metric([key], summary[key])
    yield funnel
    yield from _fault_metrics(runtime, stats)


def _fault_metrics(runtime: Runtime, stats: dict[str, Any]) -> Iterator[Metric]:
    """Hook errors, evictions, data the store lost, and event delivery."""
    yield CounterMetricFamily(
        f"{PREFIX}_hook_errors",
        "Hook or middleware implementations that raised",
        value=stats["hook_errors"],
    )
    yield CounterMetricFamily(
        f"{PREFIX}_evictions",
        "Records evicted over max_tracked_messages",
        value=stats["evicted_total"],
    )
    lost = runtime.manager.fault_counters()["data_lost"]
    yield CounterMetricFamily(
        f"{PREFIX}_store_data_lost",
        "Times the store found its data gone (Redis restarted without persistence)",
        value=lost,
    )
    yield CounterMetricFamily(
        f"{PREFIX}_events_lost",
        "Hook events never delivered: still queued at shutdown past shutdown_timeout (this "
        "process), and Redis Stream entries trimmed by event_stream_maxlen before they were "
        "acknowledged (fleet-wide)",
        value=runtime.events.lost + stats.get("events_lost", 0),
    )
    yield GaugeMetricFamily(
        f"{PREFIX}_events_queued",
        "Hook events waiting for delivery",
        value=runtime.events.backlog,
    )


def _insights(runtime: Runtime, stats: dict[str, Any], summary: dict[str, Any]) -> Iterator[Metric]:
    """Failures by kind, delivery latency, store errors and the Redis-side memory bound."""
    failures = GaugeMetricFamily(
        f"{PREFIX}_session_failures",
        "Failed messages by failure kind, summed over the active "
        "sessions (each message once, when it failed)",
        labels=["kind"],
    )
    counts = summary.get("failures", {})
    for kind in FAILURE_KINDS:
        failures.add_metric([kind], counts.get(kind, 0))
    yield failures
    yield _latency(stats["latency"])
    yield CounterMetricFamily(
        f"{PREFIX}_store_errors",
        "Requests answered 503 because the store was unavailable",
        value=runtime.store_errors,
    )
    if "redis_memory_bound_bytes" in stats:
        yield GaugeMetricFamily(
            f"{PREFIX}_redis_memory_bound_bytes",
            "Estimate of the most memory the store's keys can take in Redis at the caps",
            value=stats["redis_memory_bound_bytes"],
        )


def _latency(totals: dict[str, Any]) -> Metric:
    """The store's latency totals (every delivered and read message since start) as a
    Prometheus histogram."""
    family = HistogramMetricFamily(
        f"{PREFIX}_delivery_latency_seconds",
        "Seconds from send to the first delivered and the first read receipt",
        labels=["status"],
    )
    for status in LATENCY_KINDS:
        data = totals[status]
        bounds = [f"{bound:g}" for bound in data["le"]] + ["+Inf"]
        buckets = [(le, float(count)) for le, count in zip(bounds, data["buckets"], strict=True)]
        family.add_metric([status], buckets, data["sum"])
    return family


_DEFERRED_COUNTERS = (
    ("deferred", "Writes of accepted sends deferred because the store was unavailable, by kind"),
    ("recovered", "Deferred writes done once the store answered again, by kind"),
    ("dropped", "Deferred writes given up (queue full, refused, or pending at shutdown), by kind"),
)


def _send_metrics(runtime: Runtime) -> Iterator[Metric]:
    """The send path: tracking deferred while the store is away, idempotent replays."""
    writes = deferred_writes(runtime.store)
    for name, text in _DEFERRED_COUNTERS:
        family = CounterMetricFamily(f"{PREFIX}_tracking_{name}", text, labels=["kind"])
        counts = getattr(writes, name)
        for kind in sorted({"track", "idempotency", *counts}):
            family.add_metric([kind], counts[kind])
        yield family
    yield GaugeMetricFamily(
        f"{PREFIX}_tracking_pending",
        "Deferred writes waiting for the store",
        value=writes.pending,
    )
    yield CounterMetricFamily(
        f"{PREFIX}_sends_replayed",
        "Idempotent sends answered from an earlier send with the same key (no provider call)",
        value=runtime.client.replayed if runtime.client is not None else 0,
    )


def make_registry(runtime: Runtime) -> CollectorRegistry:
    """A fresh registry holding only ``runtime``'s collector."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RuntimeCollector(runtime))
    ProcessCollector(registry=registry)  # process_resident_memory_bytes, beside the bound
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """The Prometheus text exposition of ``registry``."""
    return generate_latest(registry)
