"""The monitoring examples (examples/monitoring/) query only metrics that exist: every metric
name in the Grafana dashboard and the Prometheus alert rules is in ``/metrics`` of a running app,
on the in-memory store and on the Redis store; the latency histogram counts what the store
measured."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

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
    expressions += [
        re.sub(r"^label_values\((\w+), \w+\)$", r"\1", v["definition"])
        for v in document["templating"]["list"]
        if "definition" in v
    ]
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
    body = meta_status_body(
        [
            meta_status("wamid.A", "sent"),
            meta_status("wamid.A", "read"),
            meta_failed_status("wamid.B", code=131026),
        ]
    )
    assert (await post_meta(client, body)).status == 200


def test_the_examples_cover_what_the_issue_asks_for():
    titles = " ".join(
        json.loads((MONITORING / "grafana-dashboard.json").read_text())["panels"][i][
            "title"
        ].lower()
        for i in range(18)
    )
    for topic in (
        "funnel",
        "delivery rate",
        "time to deliver",
        "by kind",
        "webhook errors",
        "hook errors",
        "memory vs bound",
    ):
        assert topic in titles, topic
    alerts = {
        rule["alert"]
        for group in yaml.safe_load((MONITORING / "alerts.yml").read_text())["groups"]
        for rule in group["rules"]
    }
    assert {
        "WhatsAppDeliveryRateLow",
        "WhatsAppExpiredSpike",
        "WhatsAppNoReceipts",
        "WhatsAppStoreUnavailable",
        "WhatsAppMemoryNearBound",
        "WhatsAppHookErrors",
    } <= alerts
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


async def test_the_latency_histogram_counts_what_the_store_measured(aiohttp_client):
    clock = Clock()
    app, manager = make_app({"server": {"admin_token": ADMIN_TOKEN}}, clock=clock)
    client = await aiohttp_client(app)
    sent_at = clock.now - 100
    for index, (delivered_after, read_after) in enumerate([(3, 40), (20, 90), (70, None)]):
        manager.track_sent(f"wamid.L{index}", sent_at=sent_at)
        message_id = f"wamid.L{index}"
        statuses = [meta_status(message_id, "delivered", timestamp=sent_at + delivered_after)]
        if read_after is not None:
            statuses.append(meta_status(f"wamid.L{index}", "read", timestamp=sent_at + read_after))
        assert (await post_meta(client, meta_status_body(statuses))).status == 200
    text = await (await client.get("/metrics", headers=BEARER)).text()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    samples = families["wa_sessions_delivery_latency_seconds"].samples
    buckets = {
        (s.labels["status"], s.labels["le"]): s.value for s in samples if s.name.endswith("_bucket")
    }
    assert buckets[("delivered", "+Inf")] == 3 and buckets[("read", "+Inf")] == 2
    assert buckets[("delivered", "5.054")] == 1  # 3 s
    assert buckets[("delivered", "30.913")] == 2  # and 20 s
    assert buckets[("read", "30.913")] == 0 and buckets[("read", "117.391")] == 2
    sums = {s.labels["status"]: s.value for s in samples if s.name.endswith("_sum")}
    assert sums == {"delivered": 93.0, "read": 130.0}


def test_metric_names_come_from_the_syntax_tree():
    assert metric_names(
        "histogram_quantile(0.9, sum by (le) (rate(wa_sessions_delivery_latency_seconds_bucket"
        '{job=~"$job",status="read"}[$__rate_interval])))'
    ) == {"wa_sessions_delivery_latency_seconds_bucket"}
    assert metric_names('sum(increase(wa_sessions_x_total[5m])) > 0 or up{job="j"} == 0') == {
        "wa_sessions_x_total",
        "up",
    }
    with pytest.raises(Exception):  # noqa: B017 (the parser's own error type)
        metric_names("sum(rate(wa_sessions_x_total[5m])")
