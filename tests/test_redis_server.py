"""Two servers on one Redis (``store = "redis"``): receipts posted to either replica end in exact
counters, ``session completed`` fires once across the fleet, and Redis trouble answers 503 so the
provider retries instead of losing receipts."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from plugin.core.errors import StoreUnavailable
from plugin.core.model import SessionSummary
from plugin.hooks.hookspecs import hookimpl
from plugin.server.app import create_app
from plugin.server.runtime import CLIENT_KEY, MANAGER_KEY, PLUGIN_MANAGER_KEY, RUNTIME_KEY
from tests.providers import DEFAULT_TIMESTAMP, meta_status, meta_status_body, sign_meta
from tests.redis_support import RedisProxy, redis_prefix, redis_url
from tests.serving import (
    ACCESS_TOKEN,
    META_SECRET,
    PHONE_NUMBER_ID,
    Clock,
    FakeGraph,
    make_settings,
)

__all__ = ["redis_prefix", "redis_url"]  # fixtures used here

HOUR = 3600.0


class Completed:
    """A plugin recording ``whatsapp_session_completed``."""

    def __init__(self) -> None:
        self.summaries: list[SessionSummary] = []

    @hookimpl
    def whatsapp_session_completed(self, summary: SessionSummary) -> None:
        self.summaries.append(summary)


def redis_app(url: str, prefix: str, clock: Clock, **extra: Any) -> tuple[Any, Completed]:
    settings = make_settings(
        {
            "store": "redis",
            "redis_url": url,
            "redis_prefix": prefix,
            "ack_tracking_window": "1h",
            **extra,
        }
    )
    app = create_app(settings, clock=clock, entry_points=False)
    recorder = Completed()
    app[PLUGIN_MANAGER_KEY].register(recorder)
    return app, recorder


async def post_statuses(client: Any, statuses: list[dict[str, Any]]) -> int:
    body = meta_status_body(statuses)
    response = await client.post(
        "/webhooks/meta",
        data=body,
        headers={
            "X-Hub-Signature-256": sign_meta(body, META_SECRET),
            "Content-Type": "application/json",
        },
    )
    return int(response.status)


async def test_two_servers_on_one_redis_end_with_exact_counters(
    aiohttp_client, redis_url, redis_prefix
):
    clock = Clock()
    first_app, first_seen = redis_app(redis_url, redis_prefix, clock)
    second_app, second_seen = redis_app(redis_url, redis_prefix, clock)
    first, second = await aiohttp_client(first_app), await aiohttp_client(second_app)

    messages = [f"wamid.E2E{index:05d}" for index in range(400)]
    store = first_app[MANAGER_KEY]
    for message_id in messages:  # sent through the first replica
        assert await store.track_sent(message_id, "16505551234")

    # 1,600 receipts: sent, delivered, read and a duplicate delivered per message, shuffled,
    # posted as 160 signed webhooks from 160 tasks, alternating between the replicas
    statuses = [
        meta_status(m, s, timestamp=str(DEFAULT_TIMESTAMP))
        for m in messages
        for s in ("sent", "delivered", "read", "delivered")
    ]
    random.Random(3).shuffle(statuses)
    batches = [statuses[i : i + 10] for i in range(0, len(statuses), 10)]
    answers = await asyncio.gather(
        *(post_statuses((first, second)[index % 2], batch) for index, batch in enumerate(batches))
    )
    assert set(answers) == {200}

    stats = await (await second.get("/sessions/stats")).json()
    summary = stats["summary"]
    assert {
        k: summary[k]
        for k in (
            "sent",
            "delivered",
            "read",
            "pending",
            "failed",
            "expired",
            "evicted",
            "tracked_messages",
        )
    } == {
        "sent": 400,
        "delivered": 400,
        "read": 400,
        "pending": 0,
        "failed": 0,
        "expired": 0,
        "evicted": 0,
        "tracked_messages": 400,
    }
    receipts = summary["receipts"]
    assert sum(receipts.values()) == 1600
    assert receipts["unknown"] == receipts["late"] == receipts["adopted"] == 0
    first_stats = await (await first.get("/sessions/stats")).json()
    assert first_stats["summary"] == summary
    posted = first_stats["webhooks"]["meta"]["receipts"] + stats["webhooks"]["meta"]["receipts"]
    assert posted == 1600

    # the day ends; both replicas run their cleanup at once: one completes the session
    clock.now = DEFAULT_TIMESTAMP + 2 * 86400
    await asyncio.gather(*(app[MANAGER_KEY].cleanup() for app in (first_app, second_app)))
    for app in (first_app, second_app):
        await app[RUNTIME_KEY].events.flush()
    completed = first_seen.summaries + second_seen.summaries
    assert len(completed) == 1
    assert completed[0].counters["read"] == 400
    debug = await (await first.get("/sessions/debug")).json()
    assert debug["manager_stats"]["store"] == "redis"
    assert debug["manager_stats"]["history_size"] == 1
    metrics = await (await second.get("/metrics")).text()
    assert "wa_sessions_history_size 1.0" in metrics
    assert 'wa_sessions_session_messages{counter="sent"} 0.0' in metrics  # none active now


async def test_redis_lost_while_serving_answers_503_then_recovers(
    aiohttp_client, redis_url, redis_prefix
):
    proxy = RedisProxy(redis_url)
    await proxy.start()
    clock = Clock()
    app, _ = redis_app(f"redis://127.0.0.1:{proxy.port}/0", redis_prefix, clock)
    client = await aiohttp_client(app)
    await app[MANAGER_KEY].track_sent("wamid.X")
    await proxy.stop()
    assert await post_statuses(client, [meta_status("wamid.X", "delivered")]) == 503
    assert (await client.get("/sessions/stats")).status == 503
    await proxy.start()
    assert await post_statuses(client, [meta_status("wamid.X", "delivered")]) == 200
    stats = await (await client.get("/sessions/stats")).json()
    assert stats["summary"]["delivered"] == 1
    await proxy.stop()
    await proxy.start()  # so the app's shutdown cleanup finds Redis


async def test_unreachable_redis_stops_the_start_up_with_a_clear_error(aiohttp_client):
    app, _ = redis_app("redis://:pw@127.0.0.1:1/0", "nowhere", Clock())
    with pytest.raises(StoreUnavailable, match=r"127\.0\.0\.1:1\b"):
        await aiohttp_client(app)


async def test_a_message_sent_through_one_replica_is_delivered_through_the_other(
    aiohttp_client, aiohttp_server, redis_url, redis_prefix
):
    graph = FakeGraph()
    graph.url = str((await aiohttp_server(graph.app)).make_url("/v21.0"))
    sending = {
        "meta": {
            "access_token": ACCESS_TOKEN,
            "phone_number_id": PHONE_NUMBER_ID,
            "api_base_url": graph.url,
        }
    }
    clock = Clock()
    first_app, _ = redis_app(redis_url, redis_prefix, clock, **sending)
    second_app, _ = redis_app(redis_url, redis_prefix, clock, **sending)
    await aiohttp_client(first_app)
    second = await aiohttp_client(second_app)

    whatsapp = first_app[CLIENT_KEY]
    assert whatsapp is not None
    result = await whatsapp.send_text("+16505551234", "Your appointment is tomorrow at 9:00")
    stamp = str(int(clock.now))
    for status in ("sent", "delivered", "read"):
        assert await post_statuses(second, [meta_status(result.message_id, status, stamp)]) == 200
    summary = (await (await second.get("/sessions/stats")).json())["summary"]
    assert (summary["sent"], summary["delivered"], summary["read"], summary["pending"]) == (
        1,
        1,
        1,
        0,
    )
    assert summary["receipts"]["adopted"] == 0  # found, not adopted: the first replica tracked it
