"""Delivery insights on both stores: the same traffic gives the same latency percentiles, tag
funnels and Prometheus latency totals in memory and in Redis (DESIGN.md, "Delivery insights")."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from plugin.core.manager import MessageSessionManager
from plugin.core.model import COUNTER_KEYS, Outcome, Receipt, Status
from plugin.stores.base import Store
from plugin.stores.memory import MemoryStore
from plugin.stores.redis.store import RedisStore
from tests.clock import Clock, at
from tests.redis_support import delete_prefix, new_prefix, require_redis

NOW = at("2026-11-30T10:00")
Factory = Callable[..., Awaitable[Store]]


@pytest.fixture(params=["memory", "redis"])
async def make_store(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Factory, Clock]]:
    clock = Clock(NOW)
    kind = request.param
    url = require_redis() if kind == "redis" else ""
    prefix = new_prefix(url) if kind == "redis" else ""
    made: list[Store] = []

    async def factory(**options: Any) -> Store:
        options.setdefault("redaction_key", "test-key")
        if kind == "memory":
            store: Store = MemoryStore(MessageSessionManager(clock=clock, **options))
        else:
            store = RedisStore(url, f"{prefix}-{len(made)}", clock=clock, **options)
        await store.start()
        made.append(store)
        return store

    yield factory, clock
    for store in made:
        await store.close()
    if kind == "redis":
        for index in range(len(made)):
            delete_prefix(url, f"{prefix}-{index}")


def adds_up(funnel: dict[str, int]) -> bool:
    return funnel["sent"] == sum(
        funnel[key] for key in ("delivered", "failed", "pending", "expired", "evicted")
    )


async def traffic(store: Store) -> None:
    for index, (tag, delivered, read) in enumerate(
        [
            ("appointment_reminder", 3, 60),
            ("appointment_reminder", 8, None),
            ("lab_results", 30, 900),
            (None, 2, 4),
            ("lab_results", None, 100),
        ]
    ):
        message_id = f"wamid.I{index}"
        assert await store.track_sent(message_id, "16505551234", NOW, tag=tag)
        if delivered is not None:
            await store.apply_receipt(Receipt(message_id, Status.DELIVERED, NOW + delivered))
        if read is not None:
            await store.apply_receipt(Receipt(message_id, Status.READ, NOW + read))
    await store.apply_receipt(Receipt("wamid.I1", Status.FAILED, NOW + 9))  # stale after delivered
    assert await store.apply_receipt(Receipt("wamid.adopted", Status.READ, NOW + 50)) is (
        Outcome.ADOPTED  # past "sent": no send time, no latency
    )


async def test_latency_and_tags_are_measured_alike_on_both_stores(make_store):
    factory, clock = make_store
    store = await factory()
    await traffic(store)
    clock.set(NOW + 1000)
    stats = await store.get_all_stats()
    session = stats["sessions"][0]
    latency = session["latency"]
    assert latency["delivered"]["count"] == 5  # the read-only one counts for both
    assert latency["read"]["count"] == 4
    assert abs(latency["delivered"]["p50"] - 8) <= 0.4
    assert abs(latency["read"]["p99"] - 900) <= 45
    assert stats["summary"]["latency"] == latency
    tags = session["tags"]
    assert set(tags) == {"appointment_reminder", "lab_results"}
    assert tags["appointment_reminder"] == {
        **dict.fromkeys(COUNTER_KEYS, 0),
        "sent": 2,
        "delivered": 2,
        "read": 1,
    }
    assert tags["lab_results"]["read"] == 2 and tags["lab_results"]["delivered"] == 2
    totals = (await store.get_debug_info())["manager_stats"]["latency"]
    assert totals["delivered"]["count"] == 5 and totals["read"]["count"] == 4
    assert totals["delivered"]["sum"] == pytest.approx(3 + 8 + 30 + 2 + 100)


async def test_tags_past_the_limit_are_other_and_expiry_reaches_the_tag(make_store):
    factory, clock = make_store
    store = await factory(max_tags_per_session=1, ack_tracking_window="1h")
    await store.track_sent("wamid.a", tag="first")
    await store.track_sent("wamid.b", tag="second")
    await store.track_sent("wamid.c", tag="third")
    clock.set(NOW + 2 * 3600)
    await store.cleanup()
    tags = (await store.get_all_stats())["sessions"][0]["tags"]
    assert set(tags) == {"first", "other"}
    assert tags["other"]["sent"] == 2 and tags["other"]["expired"] == 2
    assert all(adds_up(funnel) for funnel in tags.values())


async def test_a_completed_sessions_insights_go_to_history_and_the_totals(make_store):
    factory, clock = make_store
    store = await factory(ack_tracking_window="1h")
    await store.track_sent("wamid.h", tag="reminder")
    await store.apply_receipt(Receipt("wamid.h", Status.DELIVERED, NOW + 12))
    clock.set(NOW + 2 * 86400)
    await store.cleanup()
    stats = await store.get_all_stats()
    entry = stats["history"][0]
    assert entry["latency"]["delivered"]["count"] == 1
    assert entry["tags"]["reminder"]["delivered"] == 1
    assert stats["summary"]["latency"]["delivered"]["count"] == 0  # no active session
    totals = (await store.get_debug_info())["manager_stats"]["latency"]
    assert totals["delivered"]["count"] == 1 and totals["delivered"]["sum"] == pytest.approx(12)
