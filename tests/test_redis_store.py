"""What only the Redis store promises: replicas sharing one Redis stay exact, one replica at a
time completes a session, every key is bounded, and Redis trouble is a clear error that heals.

Against the real Redis server (see tests/redis_support.py); time is the injected clock except
for the lease, whose expiry is Redis's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis

from plugin.core.errors import StoreUnavailable
from plugin.core.model import Outcome, Receipt, Status
from plugin.stores.redis.scripts import RECEIPT
from plugin.stores.redis.store import RedisStore
from tests.clock import Clock, at
from tests.redis_support import RedisProxy, redis_prefix, redis_url
from tests.test_manager import Events

__all__ = ["redis_prefix", "redis_url"]  # fixtures used here

HOUR = 3600.0
DAY = 86400.0
MONDAY = at("2026-11-30T00:00")
D, R = Status.DELIVERED, Status.READ


@pytest.fixture
def clock() -> Clock:
    return Clock(MONDAY + 10 * HOUR)


Replicas = Callable[..., Any]


@pytest.fixture
async def replica(redis_url: str, redis_prefix: str, clock: Clock) -> AsyncIterator[Replicas]:
    """``await replica(**options)``: one more store on the shared prefix, with its own pool."""
    made: list[RedisStore] = []

    async def make(events: Events | None = None, **options: Any) -> RedisStore:
        options.setdefault("redaction_key", "test-key")
        store = RedisStore(redis_url, redis_prefix, clock=clock, events=events, **options)
        await store.connect()
        made.append(store)
        return store

    yield make
    for store in made:
        await store.close()


async def stats_of(store: RedisStore) -> dict[str, Any]:
    return dict((await store.get_all_stats())["summary"])


# -- replicas -----------------------------------------------------------------------------------


async def test_replicas_applying_receipts_concurrently_end_with_exact_counters(replica, clock):
    first, second = await replica(), await replica()
    messages = [f"wamid.{index}" for index in range(300)]
    for message_id in messages:
        assert await first.track_sent(message_id, "16505551234")

    # five copies of each delivered, from 40 tasks over both replicas: exactly one applies
    copies = [Receipt(m, D, clock()) for m in messages for _ in range(5)]
    random.Random(1).shuffle(copies)

    async def worker(index: int) -> list[Outcome]:
        store = (first, second)[index % 2]
        chunk = copies[index::40]
        if index % 4 < 2:
            return [await store.apply_receipt(r) for r in chunk]
        return await store.apply_receipts(chunk)

    outcomes = [o for chunk in await asyncio.gather(*map(worker, range(40))) for o in chunk]
    assert outcomes.count(Outcome.APPLIED) == 300
    assert outcomes.count(Outcome.DUPLICATE) == 1200

    # then reads and late-arriving delivered receipts, mixed: nothing moves down the ladder
    mixed = [Receipt(m, s, clock()) for m in messages for s in (R, D, R)]
    random.Random(2).shuffle(mixed)
    await asyncio.gather(*((first, second)[i % 2].apply_receipts(mixed[i::20]) for i in range(20)))
    summary = await stats_of(second)
    assert {k: summary[k] for k in ("sent", "delivered", "read", "pending", "failed")} == {
        "sent": 300,
        "delivered": 300,
        "read": 300,
        "pending": 0,
        "failed": 0,
    }
    receipts = summary["receipts"]
    assert receipts["applied"] == 600  # one delivered and one read per message
    assert receipts["applied"] + receipts["duplicate"] + receipts["stale"] == 1500 + 900
    assert summary == await stats_of(first)


async def test_session_completed_fires_once_with_two_replicas(replica, clock):
    seen_first, seen_second = Events(), Events()
    first = await replica(events=seen_first, ack_tracking_window="1h")
    second = await replica(events=seen_second, ack_tracking_window="1h")
    for index in range(10):
        await first.track_sent(f"m{index}")
    # more records than one completion batch releases
    await first.apply_receipts([Receipt(f"n{i}", D, clock()) for i in range(2500)])
    clock.set(MONDAY + DAY + 2 * HOUR)

    for _ in range(3):
        await asyncio.gather(first.cleanup(), second.cleanup(), first.cleanup(), second.cleanup())
    completed = seen_first.completed + seen_second.completed
    assert [s.session_id for s in completed] == ["2026-11-30"]
    assert completed[0].counters["sent"] == 2510
    assert completed[0].counters["expired"] == 10
    history = (await second.get_all_stats())["history"]
    assert [h["session_id"] for h in history] == ["2026-11-30"]


async def test_replicas_hash_alike_with_one_redaction_key_and_redis_never_holds_a_key(
    replica, redis_url, redis_prefix
):
    # Issue 9: the key of recipient hashes is never stored beside them. Replicas hash a number
    # alike through the redaction_key they share (production requires it), not through Redis.
    first, second = await replica(redaction_key="k1"), await replica(redaction_key="k1")
    assert first.redact("16505551234") == second.redact("16505551234")
    keyless = await replica(redaction_key="")
    await keyless.track_sent("m-keyless", recipient="16505551234")
    client = redis.Redis.from_url(redis_url)
    try:
        names = [key.decode() for key in client.scan_iter(match="{" + redis_prefix + "}*")]
    finally:
        client.close()
    assert names and not any(name.endswith(":redaction-key") for name in names)


# -- the lease ----------------------------------------------------------------------------------


async def test_a_lease_held_by_a_dead_replica_expires_and_another_takes_over(replica, clock):
    dead = await replica(lease_ttl=0.2)
    alive = await replica(lease_ttl=0.2)
    await alive.track_sent("m1")
    assert await dead._acquire_lease() is not None  # and it never releases it
    assert await alive.cleanup() is None
    await asyncio.sleep(0.25)
    report = await alive.cleanup()
    assert report is not None


async def test_a_lease_is_released_only_by_its_holder(replica, redis_prefix):
    first, second = await replica(), await replica()
    token = await first.lease.acquire()
    assert token is not None
    await second.lease.release("not-the-token")
    assert await second.lease.acquire() is None
    assert await second._acquire_lease() is None  # the store's own turn: refused too
    await first.lease.release(token)
    token = await second._acquire_lease()
    assert token is not None
    await second._release_lease(token)
    assert await first.lease.acquire() is not None


# -- bounds in Redis ----------------------------------------------------------------------------


async def test_records_sessions_and_tombstones_carry_ttls(replica, redis_prefix):
    store = await replica(ack_tracking_window="1h")
    await store.track_sent("m1")
    await store.track_sent("m2")
    await store.apply_receipt(Receipt("m2", D, None))
    client = store.redis
    base = "{" + redis_prefix + "}"
    record_ttl = await client.pttl(f"{base}:m:m1")
    assert 0 < record_ttl <= 2 * HOUR * 1000
    for key in (f"{base}:s:2026-11-30", f"{base}:o:2026-11-30"):
        assert 0 < await client.pttl(key) <= (14 * HOUR + 2 * HOUR) * 1000 + 1000
    store._clock.advance(hours=1)  # type: ignore[attr-defined]
    await store.cleanup()
    assert await client.exists(f"{base}:m:m1") == 0
    assert 0 < await client.pttl(f"{base}:tombs") <= 2 * HOUR * 1000


async def test_every_structure_stays_under_its_cap(replica, redis_prefix, clock):
    store = await replica(max_tracked_messages=50, max_history_size=2, ack_tracking_window="1h")
    for day in range(4):
        clock.set(MONDAY + day * DAY + HOUR)
        await store.apply_receipts([Receipt(f"d{day}-{i}", D, None) for i in range(120)])
    client, base = store.redis, "{" + redis_prefix + "}"
    assert len([k async for k in client.scan_iter(match=f"{base}:m:*")]) <= 50
    assert await client.zcard(f"{base}:tombs") <= 50
    clock.advance(days=2)
    await store.cleanup()
    assert await client.llen(f"{base}:history") == 2
    debug = (await store.get_debug_info())["manager_stats"]
    assert debug["tracked_messages"] == 0 and debug["tombstones"] <= 50
    assert debug["peaks"]["tracked_messages"] == 50
    assert debug["redis_memory_bound_bytes"] > 0


# -- Redis trouble ------------------------------------------------------------------------------


async def test_unreachable_redis_at_start_is_a_clear_error_without_the_password():
    store = RedisStore("redis://:s3cret@127.0.0.1:1/0", "nowhere")
    with pytest.raises(StoreUnavailable) as caught:
        await store.connect()
    assert "127.0.0.1:1" in str(caught.value)
    assert "s3cret" not in str(caught.value)


async def test_redis_lost_while_serving_raises_then_recovers(redis_url, redis_prefix, clock):
    proxy = RedisProxy(redis_url)
    await proxy.start()
    store = RedisStore(f"redis://127.0.0.1:{proxy.port}/0", redis_prefix, clock=clock)
    await store.connect()
    try:
        await store.track_sent("m1")
        await proxy.stop()  # Redis is gone
        with pytest.raises(StoreUnavailable, match=f"127.0.0.1:{proxy.port}"):
            await store.apply_receipt(Receipt("m1", D, clock()))
        with pytest.raises(StoreUnavailable):
            await store.apply_receipts([Receipt("m1", D, clock())])
        with pytest.raises(StoreUnavailable):
            await store.get_all_stats()
        await proxy.start()  # Redis is back, same address
        assert await store.apply_receipt(Receipt("m1", D, clock())) == Outcome.APPLIED
        assert (await stats_of(store))["delivered"] == 1
    finally:
        await store.close()
        with contextlib.suppress(Exception):
            await proxy.stop()


async def test_scripts_are_reloaded_when_redis_does_not_know_them(replica, clock):
    # as after a Redis restart (NOSCRIPT), without flushing the scripts of the shared server
    store = await replica()
    await store.track_sent("m1")
    await store.track_sent("m2")

    def unknown_script() -> Any:  # the same script, under a digest Redis has never seen
        return store.redis.register_script(f"{RECEIPT}\n-- {uuid.uuid4()}")

    store._receipt = unknown_script()
    assert await store.apply_receipt(Receipt("m1", D, clock())) == Outcome.APPLIED
    store._receipt = unknown_script()
    assert await store.apply_receipts([Receipt("m2", D, clock())]) == [Outcome.APPLIED]


async def test_a_dropped_connection_is_replaced(replica, clock, redis_url):
    store = await replica()
    await store.track_sent("m1")
    connection_id = await store.redis.client_id()  # the pool's one connection
    killer = aioredis.Redis.from_url(redis_url)
    await killer.client_kill_filter(_id=connection_id)
    await killer.aclose()
    assert await store.apply_receipt(Receipt("m1", D, clock())) == Outcome.APPLIED


async def test_a_record_count_left_behind_by_ttl_expiry_heals_itself(replica, redis_prefix):
    # as if Redis dropped records with their session's index before any replica counted them
    store = await replica(max_tracked_messages=3)
    await store.redis.hset("{" + redis_prefix + "}:meta", "tracked", 3)
    assert await store.track_sent("m1") is True
    debug = (await store.get_debug_info())["manager_stats"]
    assert debug["tracked_messages"] == 1 and debug["evicted_total"] == 0
