"""The Redis store at speed: concurrent receipts share script calls, each caller still gets
exactly its own outcomes, a failed batch fails each of its callers, and session completion runs
in the upkeep task, off the request path.

Against the real Redis server (tests/redis_support.py); faults on a private ``redis-server``
(tests/redis_private.py).
"""

from __future__ import annotations

import asyncio
import random

from plugin.core.errors import StoreUnavailable
from plugin.core.model import Outcome, Receipt, Status
from plugin.stores.redis.store import RedisStore
from tests.clock import Clock, at
from tests.providers import meta_status
from tests.redis_private import PrivateRedis, private_redis
from tests.redis_support import new_prefix, redis_prefix, redis_url
from tests.test_events import SlowExpiryLog, wired
from tests.test_redis_server import post_statuses, redis_app
from tests.test_redis_stream import clock, stores

__all__ = ["clock", "private_redis", "redis_prefix", "redis_url", "stores"]  # fixtures used here

HOUR = 3600.0
DAY = 86400.0
MONDAY = at("2026-11-30T00:00")
S, D, R, F = Status.SENT, Status.DELIVERED, Status.READ, Status.FAILED


def traffic(seed: int, messages: int = 60, receipts: int = 400) -> list[Receipt]:
    """Receipts in random order for tracked and unknown messages, with repeats and stale ones."""
    rng = random.Random(seed)
    ids = [f"wamid.B{index:03d}" for index in range(messages)]
    return [
        Receipt(rng.choice(ids), rng.choice((S, D, D, R, F)), MONDAY + 9 * HOUR + rng.random())
        for _ in range(receipts)
    ]


async def test_concurrent_callers_share_script_calls_and_get_their_own_outcomes(
    stores, redis_prefix
):
    batched = await stores()
    alone = await stores(prefix=new_prefix(batched.url), batching=False)
    for store in (batched, alone):
        for index in range(0, 60, 2):  # half the messages tracked, half adopted
            assert await store.track_sent(f"wamid.B{index:03d}", "16505551234")
    receipts = traffic(1)
    # the same receipts, in the same order, one call each: alone, then 400 concurrent calls
    expected = [await alone.apply_receipt(receipt) for receipt in receipts]
    assert batched.batcher is not None
    got = await asyncio.wait_for(
        asyncio.gather(*(batched.apply_receipt(receipt) for receipt in receipts)), 10
    )
    assert got == expected
    assert set(expected) >= {Outcome.APPLIED, Outcome.ADOPTED, Outcome.DUPLICATE, Outcome.STALE}
    # they shared script calls: far fewer than one per receipt
    assert batched.batcher.batches <= len(receipts) // 10, batched.batcher.batches
    assert batched.batcher.batched_receipts == len(receipts)
    assert (await batched.get_all_stats())["summary"] == (await alone.get_all_stats())["summary"]


async def test_calls_of_every_size_get_their_outcomes_in_order(stores, redis_prefix):
    store = await stores(batch_size=50)
    receipts = traffic(2, receipts=600)
    sizes = [1, 3, 120, 7, 49, 50, 51, 2, 200, 117]  # some bigger than a batch
    assert sum(sizes) == len(receipts)
    calls, start = [], 0
    for size in sizes:
        calls.append(receipts[start : start + size])
        start += size
    results = await asyncio.wait_for(
        asyncio.gather(*(store.apply_receipts(call) for call in calls)), 10
    )
    assert [len(result) for result in results] == sizes
    reference = await stores(prefix=new_prefix(store.url), batching=False)
    expected = await reference.apply_receipts(receipts)
    assert [outcome for result in results for outcome in result] == expected


async def test_a_failed_batch_fails_each_of_its_callers_and_the_store_recovers(
    private_redis: PrivateRedis, clock
):
    store = RedisStore(private_redis.url, "batch-faults", clock=clock, timeout=1.0)
    await store.connect()
    try:
        assert await store.track_sent("wamid.K1")
        private_redis.kill()
        results = await asyncio.wait_for(
            asyncio.gather(
                *(store.apply_receipt(Receipt("wamid.K1", D, None)) for _ in range(20)),
                return_exceptions=True,
            ),
            15,
        )
        assert all(isinstance(result, StoreUnavailable) for result in results), results
        private_redis.start()  # restarted empty: the record is gone, the receipt adopts it
        outcomes = await asyncio.wait_for(
            asyncio.gather(*(store.apply_receipt(Receipt("wamid.K1", D, None)) for _ in range(5))),
            15,
        )
        assert sorted(outcomes) == sorted([Outcome.ADOPTED] + [Outcome.DUPLICATE] * 4)
    finally:
        await store.close()


async def test_session_completion_runs_in_the_upkeep_task_off_the_request_path(
    aiohttp_client, redis_url, redis_prefix
):
    clock = Clock(MONDAY + 10 * HOUR)
    app, completed = redis_app(redis_url, redis_prefix, clock)
    client = await aiohttp_client(app)
    stamp = str(int(clock.now))
    statuses = [meta_status(f"wamid.U{index}", "sent", stamp) for index in range(5)]
    assert await post_statuses(client, statuses) == 200
    clock.advance(DAY)  # Monday's session is due (its day and its window are over)
    # a receipt of Tuesday: answered at once; the upkeep task completes Monday's session
    tuesday = meta_status("wamid.T1", "sent", str(int(clock.now)))
    assert await post_statuses(client, [tuesday]) == 200
    async with asyncio.timeout(10):
        while not completed.summaries:
            await asyncio.sleep(0.02)
    (summary,) = completed.summaries
    assert summary.session_id == "2026-11-30"
    assert summary.counters["sent"] == 5 and summary.counters["expired"] == 5


async def test_a_slow_async_hook_receives_every_expiry_of_a_redis_burst(stores, clock):
    store = await stores(batch_size=200, ack_tracking_window="1h")
    audit = SlowExpiryLog()
    events = wired(store, audit, max_queue=40)
    await events.start()
    try:
        ids = [f"wamid.E{index:04d}" for index in range(1000)]
        for message_id in ids:
            assert await store.track_sent(message_id, "16505551234")
        clock.advance(hours=1, minutes=1)  # every window ended together
        async with asyncio.timeout(30):
            await store.cleanup()  # releases them 200 at a time, waiting for room
            assert await events.flush(timeout=30)
    finally:
        await events.stop()
    assert sorted(audit.ids) == ids
    assert events.lost == 0 and store.hook_errors == 0
    # at most half the queue (the expiry's share) plus one batch of 200 ever waited
    assert events.peak <= 20 + 200 + 32, events.peak
