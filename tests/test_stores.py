"""The Store protocol: both stores implement it, the edges see only it, store errors answer 503
with Retry-After in one place, and ``/readyz`` tells whether the store answers."""

from __future__ import annotations

from plugin.core.manager import MessageSessionManager
from plugin.core.model import Outcome, Receipt, Status
from plugin.server.runtime import MANAGER_KEY, RUNTIME_KEY
from plugin.stores.base import Store, as_store, build_store
from plugin.stores.memory import MemoryStore
from plugin.stores.redis.store import RedisStore
from tests.redis_support import RedisProxy, redis_prefix, redis_url
from tests.serving import Clock, make_app, make_settings
from tests.test_redis_server import post_statuses, redis_app

__all__ = ["redis_prefix", "redis_url"]  # fixtures used here


def test_both_stores_implement_the_protocol():
    memory = build_store(make_settings())
    redis = build_store(make_settings({"store": "redis"}))
    assert isinstance(memory, MemoryStore)
    assert isinstance(redis, RedisStore)
    assert isinstance(memory, Store)
    assert isinstance(redis, Store)


def test_a_manager_handed_to_several_edges_is_wrapped_once():
    manager = MessageSessionManager()
    store = as_store(manager)
    assert as_store(manager) is store
    assert as_store(store) is store
    assert isinstance(store, MemoryStore) and store.manager is manager


async def test_the_memory_store_applies_a_batch_in_order():
    clock = Clock()
    store = as_store(MessageSessionManager(clock=clock))
    assert await store.track_sent("wamid.A") is True
    outcomes = await store.apply_receipts(
        [
            Receipt("wamid.A", Status.DELIVERED, clock.now),
            Receipt("wamid.A", Status.DELIVERED, clock.now),
            Receipt("wamid.A", Status.SENT, clock.now),
        ]
    )
    assert outcomes == [Outcome.APPLIED, Outcome.DUPLICATE, Outcome.STALE]
    stats = await store.get_all_stats()
    assert stats["summary"]["delivered"] == 1


async def test_readyz_answers_200_once_started_with_the_memory_store(aiohttp_client):
    app, _ = make_app()
    client = await aiohttp_client(app)
    response = await client.get("/readyz")
    assert response.status == 200
    assert (await response.json())["status"] == "ready"
    assert app[RUNTIME_KEY].store is app[MANAGER_KEY]


async def test_redis_away_answers_503_with_retry_after_everywhere_and_readyz_follows(
    aiohttp_client, redis_url, redis_prefix
):
    proxy = RedisProxy(redis_url)
    await proxy.start()
    app, _ = redis_app(f"redis://127.0.0.1:{proxy.port}/0", redis_prefix, Clock())
    client = await aiohttp_client(app)
    assert (await client.get("/readyz")).status == 200
    await proxy.stop()
    try:
        assert (await client.get("/readyz")).status == 503
        for path in ("/sessions/stats", "/sessions/debug", "/metrics"):
            response = await client.get(path)
            assert response.status == 503, path
            assert int(response.headers["Retry-After"]) > 0, path
        from tests.providers import meta_status

        assert await post_statuses(client, [meta_status("wamid.X", "delivered")]) == 503
    finally:
        await proxy.start()  # so the app's shutdown cleanup finds Redis
    assert (await client.get("/readyz")).status == 200
