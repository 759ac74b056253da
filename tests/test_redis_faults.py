"""Redis faults through the real application, on a private ``redis-server`` per test: every
Redis error answers 503 with ``Retry-After`` (never 500), on webhooks and admin routes alike;
what was answered 200 is applied once; the service recovers by itself; a Redis that lost its
data is noticed and counted; ``maxmemory`` bounds the store."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from plugin.server.app import create_app
from plugin.stores.redis.store import RedisStore
from tests.providers import meta_status, meta_status_body, sign_meta
from tests.redis_private import PrivateRedis, private_redis
from tests.serving import META_SECRET, Clock, make_settings

__all__ = ["private_redis"]  # fixture used here

ADMIN_ROUTES = ("/sessions/stats", "/sessions/debug", "/metrics")


def fault_app(
    server: PrivateRedis, clock: Clock, timeout: float = 2.0, **extra: Any
) -> tuple[Any, RedisStore]:
    """The real app on ``server``, every Redis command bounded by ``timeout`` seconds."""
    settings = make_settings(
        {
            "store": "redis",
            "redis_url": server.url,
            "redis_prefix": "faults",
            "ack_tracking_window": "1h",
            "redaction_key": "fault-key",
            **extra,
        }
    )
    store = RedisStore.from_settings(settings, clock=clock, timeout=timeout)
    return create_app(settings, manager=store, clock=clock, entry_points=False), store


async def idle(store: RedisStore) -> None:
    """Wait until the app's start-up run of the upkeep task (completing what was due) is over,
    so that a fault hits an idle server: otherwise an admin route first waits for that run."""
    async with asyncio.timeout(5):
        while store._lease_lock.locked():
            await asyncio.sleep(0.01)


async def post(client: Any, statuses: list[dict[str, Any]]) -> Any:
    body = meta_status_body(statuses)
    return await client.post(
        "/webhooks/meta",
        data=body,
        headers={
            "X-Hub-Signature-256": sign_meta(body, META_SECRET),
            "Content-Type": "application/json",
        },
    )


def delivered(ids: list[str], clock: Clock) -> list[dict[str, Any]]:
    return [meta_status(m, "delivered", timestamp=str(int(clock.now))) for m in ids]


async def assert_unavailable(response: Any, retry_after: str | None = None) -> None:
    assert response.status == 503, await response.text()
    assert response.headers["Retry-After"].isdigit()
    if retry_after is not None:
        assert response.headers["Retry-After"] == retry_after
    assert (await response.json())["error"] == "store unavailable, retry later"


async def summary_of(client: Any) -> dict[str, Any]:
    response = await client.get("/sessions/stats")
    assert response.status == 200
    return dict((await response.json())["summary"])


async def test_killed_and_restarted_redis_answers_503_then_recovers_and_counts_the_loss(
    aiohttp_client, private_redis
):
    clock = Clock()
    app, store = fault_app(private_redis, clock)
    client = await aiohttp_client(app)
    ids = [f"wamid.K{index:03d}" for index in range(60)]
    for message_id in ids:
        assert await store.track_sent(message_id, "16505551234")

    # traffic while Redis is killed: each webhook is either applied (200) or refused (503)
    async def traffic(batch: list[str]) -> int:
        return int((await post(client, delivered(batch, clock))).status)

    running = [asyncio.ensure_future(traffic(ids[i : i + 2])) for i in range(0, 20, 2)]
    await asyncio.sleep(0)
    private_redis.kill()
    answers = await asyncio.gather(*running)
    assert set(answers) <= {200, 503}
    await assert_unavailable(await post(client, delivered(ids[20:22], clock)), "5")
    for path in ADMIN_ROUTES:
        await assert_unavailable(await client.get(path), "5")

    private_redis.start()  # empty: it was not persisted
    for index in range(22, 60, 2):
        assert (await post(client, delivered(ids[index : index + 2], clock))).status == 200
    summary = await summary_of(client)
    # the records were lost with Redis: the 38 receipts adopt their messages, counted once each
    assert summary["receipts"] == {
        "applied": 0,
        "duplicate": 0,
        "stale": 0,
        "late": 0,
        "unknown": 0,
        "adopted": 38,
    }
    assert (summary["sent"], summary["delivered"], summary["pending"]) == (38, 38, 0)
    assert store.data_lost == 1
    metrics = await (await client.get("/metrics")).text()
    assert "wa_sessions_store_data_lost_total 1.0" in metrics
    assert private_redis.client().get("{faults}:format") == "2"  # the marker is back


async def test_a_paused_redis_times_out_as_503_and_a_retry_counts_the_funnel_once(
    aiohttp_client, private_redis
):
    clock = Clock()
    app, store = fault_app(private_redis, clock, timeout=0.5)
    client = await aiohttp_client(app)
    await store.track_sent("wamid.P1", "16505551234")
    await idle(store)
    private_redis.client().execute_command("CLIENT", "PAUSE", 1200, "ALL")
    await assert_unavailable(await post(client, delivered(["wamid.P1"], clock)), "2")
    await assert_unavailable(await client.get("/sessions/stats"), "2")
    await asyncio.sleep(1.3)
    # the provider retries; the refused script may have run once the pause ended
    assert (await post(client, delivered(["wamid.P1"], clock))).status == 200
    summary = await summary_of(client)
    assert (summary["sent"], summary["delivered"], summary["pending"]) == (1, 1, 0)
    assert summary["receipts"]["applied"] == 1


async def test_debug_sleep_times_out_as_503_on_webhooks_and_admin_routes(
    aiohttp_client, private_redis
):
    clock = Clock()
    app, store = fault_app(private_redis, clock, timeout=0.5)
    client = await aiohttp_client(app)
    await store.track_sent("wamid.S1")
    await idle(store)
    sleeper = threading.Thread(
        target=lambda: private_redis.client().execute_command("DEBUG", "SLEEP", "1.2")
    )
    sleeper.start()
    await asyncio.sleep(0.1)
    await assert_unavailable(await post(client, delivered(["wamid.S1"], clock)), "2")
    await assert_unavailable(await client.get("/metrics"), "2")
    await asyncio.to_thread(sleeper.join)
    assert (await post(client, delivered(["wamid.S1"], clock))).status == 200
    assert (await summary_of(client))["delivered"] == 1


async def test_a_busy_redis_answers_503(aiohttp_client, private_redis):
    clock = Clock()
    app, store = fault_app(private_redis, clock)
    client = await aiohttp_client(app)
    await store.track_sent("wamid.B1")
    private_redis.client().config_set("busy-reply-threshold", 100)
    spin = "local t = redis.call('TIME')[1] while redis.call('TIME')[1] - t < 2 do end return 1"
    busy = threading.Thread(target=lambda: private_redis.client().eval(spin, 0))
    busy.start()
    await asyncio.sleep(0.3)
    await assert_unavailable(await post(client, delivered(["wamid.B1"], clock)), "5")
    await assert_unavailable(await client.get("/sessions/debug"), "5")
    await asyncio.to_thread(busy.join)
    assert (await post(client, delivered(["wamid.B1"], clock))).status == 200


async def test_a_read_only_replica_answers_503_until_it_is_promoted(aiohttp_client, private_redis):
    clock = Clock()
    app, store = fault_app(private_redis, clock)
    client = await aiohttp_client(app)
    await store.track_sent("wamid.R1")
    admin = private_redis.client()
    admin.execute_command("REPLICAOF", "127.0.0.1", "1")  # a failover made it a replica
    try:
        await assert_unavailable(await post(client, delivered(["wamid.R1"], clock)), "5")
    finally:
        admin.execute_command("REPLICAOF", "NO", "ONE")
    assert (await post(client, delivered(["wamid.R1"], clock))).status == 200
    assert (await summary_of(client))["receipts"]["applied"] == 1


async def test_scripts_flushed_mid_traffic_apply_each_receipt_once(aiohttp_client, private_redis):
    clock = Clock()
    app, store = fault_app(private_redis, clock)
    client = await aiohttp_client(app)
    ids = [f"wamid.N{index:03d}" for index in range(100)]
    for message_id in ids:
        await store.track_sent(message_id)
    admin = private_redis.client()
    for index in range(0, 100, 10):
        admin.script_flush()  # NOSCRIPT for the next call: it ran nothing, so it runs again
        assert (await post(client, delivered(ids[index : index + 10], clock))).status == 200
    summary = await summary_of(client)
    assert summary["receipts"]["applied"] == 100
    assert summary["receipts"]["duplicate"] == 0
    assert summary["delivered"] == 100


async def test_maxmemory_refuses_receipts_before_they_write_and_admin_routes_still_answer(
    aiohttp_client, private_redis
):
    clock = Clock()
    app, _ = fault_app(private_redis, clock)
    client = await aiohttp_client(app)
    admin = private_redis.client()
    assert (await post(client, delivered(["wamid.M0"], clock))).status == 200
    limit = int(admin.info("memory")["used_memory"]) + 400_000
    admin.config_set("maxmemory-policy", "noeviction")
    admin.config_set("maxmemory", limit)
    answers = []
    for batch in range(400):  # unknown ids are adopted: every receipt writes a record
        ids = [f"wamid.M{batch:03d}{index:02d}" for index in range(50)]
        response = await post(client, delivered(ids, clock))
        answers.append(response.status)
        if response.status == 503:
            await assert_unavailable(response, "30")
            break
    assert answers[-1] == 503 and set(answers[:-1]) == {200}, answers

    def store_memory() -> int:
        # Redis also counts the connections' query and reply buffers in used_memory; those move
        # with the test's own traffic, not with the store.
        memory = admin.info("memory")
        return int(memory["used_memory"]) - int(memory["mem_clients_normal"])

    # the refusal came before the store outgrew maxmemory by more than one batch of 50 records
    assert store_memory() <= limit + 64 * 1024
    for path in ADMIN_ROUTES:  # reads (and cleanup, which only frees) still work
        assert (await client.get(path)).status == 200
    # (the admin routes may run the allow-oom expiry and lease scripts: measured after them)
    keys, used = admin.dbsize(), store_memory()
    for batch in range(20):  # ordinary receipts stop writing
        ids = [f"wamid.X{batch:03d}{index:02d}" for index in range(50)]
        await assert_unavailable(await post(client, delivered(ids, clock)), "30")
    assert admin.dbsize() == keys
    assert store_memory() <= used + 16 * 1024
    admin.config_set("maxmemory", 0)
    assert (await post(client, delivered(["wamid.after"], clock))).status == 200
