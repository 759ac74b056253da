"""The monitoring examples (examples/monitoring/) query only metrics that exist: every metric
name in the Grafana dashboard and the Prometheus alert rules is in ``/metrics`` of a running app,
on the in-memory store and on the Redis store; the latency histogram is fed from status changes
that carry the send time."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from plugin.core.model import Outcome, Status, StatusChange
from plugin.server import app as app_module
from plugin.server.latency import BUCKETS, LatencyHistogram
from plugin.server.runtime import PLUGIN_MANAGER_KEY
from tests.providers import meta_failed_status, meta_status, meta_status_body
from tests.redis_support import redis_prefix, redis_url
from tests.serving import ADMIN_TOKEN, Clock, make_app
from tests.test_redis_server import redis_app
from tests.test_server import post_meta

__all__ = ["redis_prefix", "redis_url"]  # fixtures used here

MONITORING = Path(__file__).resolve().parent.parent / "examples" / "monitoring"
BEARER = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
#: Metrics of Prometheus itself, not of the app.
PROMETHEUS_OWN = {"up"}
#: Metrics only the Redis store has.
REDIS_ONLY = {"wa_sessions_redis_memory_bound_bytes"}
#: What Grafana substitutes before a query reaches Prometheus.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$job": ".*"}


def dashboard_expressions() -> list[str]:
    document = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    expressions = [t["expr"] for p in document["panels"] for t in p.get("targets", [])]
    expressions += [re.sub(r"^label_values\((\w+), \w+\)$", r"\1", v["definition"])
                    for v in document["templating"]["list"] if "definition" in v]
    return expressions


def rule_expressions() -> list[str]:
    document = yaml.safe_load((MONITORING / "alerts.yml").read_text())
    return [rule["expr"] for group in document["groups"] for rule in group["rules"]]


def metric_names(expression: str) -> set[str]:
    """The metric names an expression selects, from PromQL's own syntax tree (the expression
    must parse)."""
    for variable, value in GRAFANA_VARIABLES.items():
        expression = expression.replace(variable, value)
    names: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            names.add(node.name)

    promql_parser.walk(promql_parser.parse(expression), pre_visit=visit)
    return names


def queried_metrics() -> set[str]:
    names: set[str] = set()
    for expression in dashboard_expressions() + rule_expressions():
        found = metric_names(expression)
        assert found, expression
        names |= found
    return names


async def exported(client: Any) -> set[str]:
    """Every sample name (``…_total``, ``…_bucket`` included) and family name of /metrics."""
    response = await client.get("/metrics", headers=BEARER)
    assert response.status == 200
    names: set[str] = set()
    for family in text_string_to_metric_families(await response.text()):
        names.add(family.name)
        names |= {sample.name for sample in family.samples}
    return names


async def some_traffic(client: Any) -> None:
    body = meta_status_body([meta_status("wamid.A", "sent"), meta_status("wamid.A", "read"),
                             meta_failed_status("wamid.B", code=131026)])
    assert (await post_meta(client, body)).status == 200


def test_the_examples_cover_what_the_issue_asks_for():
    titles = " ".join(json.loads((MONITORING / "grafana-dashboard.json").read_text())["panels"]
                      [i]["title"].lower() for i in range(18))
    for topic in ("funnel", "delivery rate", "time to deliver", "by kind", "webhook errors",
                  "hook errors", "memory vs bound"):
        assert topic in titles, topic
    alerts = {rule["alert"] for group in yaml.safe_load((MONITORING / "alerts.yml").read_text())
              ["groups"] for rule in group["rules"]}
    assert {"WhatsAppDeliveryRateLow", "WhatsAppExpiredSpike", "WhatsAppNoReceipts",
            "WhatsAppStoreUnavailable", "WhatsAppMemoryNearBound", "WhatsAppHookErrors"} <= alerts
    assert "wa_sessions_delivery_latency_seconds_bucket" in queried_metrics()


async def test_every_queried_metric_exists_on_the_memory_store(aiohttp_client):
    app, _ = make_app({"server": {"admin_token": ADMIN_TOKEN}}, clock=Clock())
    client = await aiohttp_client(app)
    await some_traffic(client)
    names = await exported(client)
    missing = queried_metrics() - PROMETHEUS_OWN - REDIS_ONLY - names
    assert not missing, sorted(missing)
    assert not REDIS_ONLY & names


async def test_every_queried_metric_exists_on_the_redis_store(
    aiohttp_client, redis_url, redis_prefix
):
    app, _ = redis_app(redis_url, redis_prefix, Clock(), server={"admin_token": ADMIN_TOKEN})
    client = await aiohttp_client(app)
    await some_traffic(client)
    names = await exported(client)
    missing = queried_metrics() - PROMETHEUS_OWN - names
    assert not missing, sorted(missing)


async def test_failures_by_kind_are_exported(aiohttp_client):
    app, _ = make_app({"server": {"admin_token": ADMIN_TOKEN}}, clock=Clock())
    client = await aiohttp_client(app)
    await some_traffic(client)
    text = await (await client.get("/metrics", headers=BEARER)).text()
    assert 'wa_sessions_session_failures{kind="recipient"} 1.0' in text
    assert 'wa_sessions_session_failures{kind="window"} 0.0' in text
    assert 'wa_sessions_delivery_latency_seconds_bucket{le="+Inf",status="delivered"}' in text
    assert "wa_sessions_store_errors_total 0.0" in text


def _change(old: Status | None, new: Status, at: float, sent_at: float | None) -> Any:
    change = StatusChange("m", "2026-12-02", old, new, Outcome.APPLIED, None, "meta", at, None)
    if sent_at is None:
        return change

    class WithSendTime:  # what a StatusChange with a ``sent_at`` field looks like
        def __init__(self) -> None:
            self.__dict__.update({name: getattr(change, name) for name in change.__slots__})
            self.sent_at = sent_at

    return WithSendTime()


@pytest.mark.parametrize(("old", "new", "delivered", "read"), [
    (Status.SENT, Status.DELIVERED, 1, 0),
    (Status.SENT, Status.READ, 1, 1),  # a read with no delivered before it counts for both
    (Status.DELIVERED, Status.READ, 0, 1),
    (Status.DELIVERED, Status.PLAYED, 0, 1),
    (Status.READ, Status.PLAYED, 0, 0),
    (Status.SENT, Status.FAILED, 0, 0),
    (None, Status.DELIVERED, 0, 0),  # adopted: no send time of ours
])
def test_the_latency_histogram_counts_first_deliveries_and_reads(old, new, delivered, read):
    histogram = LatencyHistogram()
    histogram.observe_change(_change(old, new, 1000.0, 1000.0 - 42.0))
    assert histogram.buckets("delivered")[-1] == ("+Inf", float(delivered))
    assert histogram.buckets("read")[-1] == ("+Inf", float(read))
    if delivered:
        assert dict(histogram.buckets("delivered"))["30"] == 0.0
        assert dict(histogram.buckets("delivered"))["60"] == 1.0
        assert histogram.sums["delivered"] == 42.0


def test_the_latency_histogram_needs_the_send_time_and_clamps_at_zero():
    histogram = LatencyHistogram()
    histogram.observe_change(_change(Status.SENT, Status.DELIVERED, 1000.0, None))
    assert histogram.buckets("delivered")[-1] == ("+Inf", 0.0)
    histogram.observe_change(_change(Status.SENT, Status.DELIVERED, 1000.0, 1003.0))
    assert histogram.buckets("delivered")[0] == (f"{BUCKETS[0]:g}", 1.0)
    assert histogram.sums["delivered"] == 0.0


@pytest.mark.parametrize(("carries", "listener", "registered"), [
    (False, True, False),  # today: StatusChange has no send time
    (True, False, False),  # the observer alone must not turn per-receipt events on
    (True, True, True),
])
async def test_the_latency_observer_joins_only_events_that_flow_anyway(
    aiohttp_client, monkeypatch, carries, listener, registered
):
    monkeypatch.setattr(app_module, "events_carry_send_time", lambda: carries)
    plugins = ["examples.failure_triage.plugin"] if listener else []
    app, _ = make_app({"plugins": plugins}, clock=Clock())
    await aiohttp_client(app)  # starts the application
    pm = app[PLUGIN_MANAGER_KEY]
    assert (pm.get_plugin("wa-sessions-latency") is not None) is registered


def test_metric_names_come_from_the_syntax_tree():
    assert metric_names(
        'histogram_quantile(0.9, sum by (le) (rate(wa_sessions_delivery_latency_seconds_bucket'
        '{job=~"$job",status="read"}[$__rate_interval])))'
    ) == {"wa_sessions_delivery_latency_seconds_bucket"}
    assert metric_names('sum(increase(wa_sessions_x_total[5m])) > 0 or up{job="j"} == 0') == {
        "wa_sessions_x_total", "up"}
    with pytest.raises(Exception):  # noqa: B017 (the parser's own error type)
        metric_names("sum(rate(wa_sessions_x_total[5m])")
