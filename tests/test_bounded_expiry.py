"""Bounded work per call (issue 10): a receipt, send or view releases at most one slice of due
records; the rest is drained in slices; answers stay exact meanwhile."""

from __future__ import annotations

import asyncio

from plugin.core.lifecycle import EXPIRY_SLICE
from plugin.core.manager import MessageSessionManager
from plugin.core.model import Outcome, Receipt, Status
from plugin.server.runtime import MANAGER_KEY
from plugin.stores.memory import MemoryStore
from tests.clock import Clock, at
from tests.providers import meta_status, meta_status_body, sign_meta
from tests.serving import META_SECRET, make_app

NOW = at("2026-11-30T10:00")
BURST = 3 * EXPIRY_SLICE + 17


def burst(clock: Clock, window: str = "1h", **options: object) -> MessageSessionManager:
    """BURST messages sent within a minute; their windows end together."""
    manager = MessageSessionManager(clock=clock, ack_tracking_window=window, **options)
    for n in range(BURST):
        manager.track_sent(f"wamid.{n:05d}", "16505551234", NOW + n * 60 / BURST)
    return manager


def test_a_receipt_meeting_a_burst_releases_one_slice_and_stays_exact():
    clock = Clock(NOW + 60)
    manager = burst(clock)
    clock.set(NOW + 3600 + 120)
    outcome = manager.apply_receipt(Receipt("wamid.new", Status.SENT, clock()))
    assert outcome == Outcome.ADOPTED
    assert manager.tracked_messages == BURST + 1 - EXPIRY_SLICE
    assert manager.backlogged
    # A record deep in the pending backlog is past its window: late, not applied.
    last = f"wamid.{BURST - 1:05d}"
    assert manager.apply_receipt(Receipt(last, Status.DELIVERED, clock())) == Outcome.LATE
    assert manager.apply_receipt(Receipt(last, Status.READ, clock())) == Outcome.LATE


def test_stats_after_a_sliced_drain_equal_the_unsliced_result():
    def run(sliced: bool) -> dict:
        clock = Clock(NOW + 60)
        manager = burst(clock)
        clock.set(NOW + 3600 + 120)
        manager.apply_receipt(Receipt("wamid.00003", Status.DELIVERED, clock()))
        manager.track_sent("wamid.after", "447700900123")
        if sliced:
            assert manager.backlogged
            while manager.settle_slice():
                assert manager.tracked_messages > 2
            assert not manager.backlogged
        return manager.get_all_stats()

    assert run(sliced=True) == run(sliced=False)


def test_session_completion_is_sliced_and_its_records_are_late_meanwhile():
    clock = Clock(NOW + 60)
    # Hourly sessions completing two hours after their start, long before any window ends.
    manager = burst(clock, window="24h", session_period="1h", max_session_age="2h")
    clock.set(at("2026-11-30T12:30"))
    manager.track_sent("wamid.later")
    assert manager.backlogged
    assert [s.session_id for s in manager.sessions] == ["2026-11-30T10", "2026-11-30T12"]
    last = f"wamid.{BURST - 1:05d}"
    assert manager.apply_receipt(Receipt(last, Status.READ, clock())) == Outcome.LATE
    # Nothing joins a completing session: neither a send nor an adopted receipt.
    assert manager.track_sent("wamid.late-send", sent_at=NOW + 600) is False
    adopted = Receipt("wamid.stranger", Status.DELIVERED, NOW + 600)
    assert manager.apply_receipt(adopted) == Outcome.LATE
    stats = manager.get_all_stats()  # in process: settles everything first
    assert [h["session_id"] for h in stats["history"]] == ["2026-11-30T10"]
    assert stats["history"][0]["expired"] == BURST
    assert not manager.backlogged


def test_the_cap_still_holds_while_expiry_lags():
    clock = Clock(NOW + 60)
    manager = burst(clock, max_tracked_messages=BURST)
    clock.set(NOW + 3600 + 120)
    for n in range(2 * EXPIRY_SLICE):
        manager.track_sent(f"wamid.more{n}")
        assert manager.tracked_messages <= BURST
    assert manager.peaks()["tracked_messages"] <= BURST


async def test_the_store_drains_the_backlog_in_slices_yielding_between_them():
    clock = Clock(NOW + 60)
    manager = burst(clock)
    store = MemoryStore.wrapping(manager)
    clock.set(NOW + 3600 + 120)
    await store.apply_receipt(Receipt("wamid.new", Status.SENT, clock()))
    ticks = 0
    done = False

    async def ticker() -> None:
        nonlocal ticks
        while not done:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.get_running_loop().create_task(ticker())
    stats = await store.get_all_stats()  # the admin routes' path: drained in slices, then read
    done = True
    await task
    assert ticks >= BURST // EXPIRY_SLICE - 1
    assert stats["summary"]["tracked_messages"] == 1
    assert stats["summary"]["expired"] == BURST


async def test_the_server_drains_a_burst_in_the_background(aiohttp_client):
    clock = Clock(NOW + 60)
    app, _ = make_app(clock=clock)
    client = await aiohttp_client(app)
    manager = app[MANAGER_KEY].manager  # type: ignore[attr-defined]
    for n in range(BURST):
        manager.track_sent(f"wamid.{n:05d}", "16505551234", NOW + n * 60 / BURST)
    clock.set(NOW + 86400 + 120)
    body = meta_status_body([meta_status("wamid.new", "sent", timestamp=int(clock()))])
    response = await client.post(
        "/webhooks/meta", data=body, headers={"X-Hub-Signature-256": sign_meta(body, META_SECRET)}
    )
    assert response.status == 200
    for _ in range(200):  # the background drain, not a view, releases the rest
        if not manager.backlogged:
            break
        await asyncio.sleep(0.01)
    assert not manager.backlogged
    assert manager.tracked_messages == 1
