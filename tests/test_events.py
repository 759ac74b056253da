"""Event delivery under pressure (issue 10): nothing dropped, producers held back, hook calls
bounded by hook_timeout, shutdown bounded by shutdown_timeout, every event with a stable id."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from plugin.core.lifecycle import EXPIRY_SLICE
from plugin.core.manager import MessageSessionManager
from plugin.core.model import (
    CleanupReport,
    MessageExpired,
    Outcome,
    Receipt,
    SessionSummary,
    Status,
    StatusChange,
)
from plugin.hooks.events import HookEvents, call_hook
from plugin.hooks.hookspecs import hookimpl
from plugin.hooks.plugins import make_plugin_manager
from plugin.server.runtime import PLUGIN_MANAGER_KEY, RUNTIME_KEY
from plugin.stores.base import Store
from plugin.stores.memory import MemoryStore
from tests.clock import Clock, at
from tests.providers import meta_status, meta_status_body, sign_meta
from tests.serving import META_SECRET, make_app

NOW = at("2026-11-30T10:00")


def wired(manager: MessageSessionManager | Store, *plugins: object, **kw: Any) -> HookEvents:
    """A HookEvents sink for ``manager`` (a manager or a store), with ``plugins`` registered."""
    pm = make_plugin_manager(manager, entry_points=False)
    for plugin in plugins:
        pm.register(plugin)
    events = HookEvents(pm, manager, **kw)
    events.attach(manager)
    return events


class SlowExpiryLog:
    """An async audit hook on expiries that sleeps on every call."""

    def __init__(self) -> None:
        self.ids: list[str] = []

    @hookimpl
    async def whatsapp_message_expired(self, expired: MessageExpired) -> None:
        await asyncio.sleep(0)
        await asyncio.sleep(0.0001 if len(self.ids) % 50 == 0 else 0)
        self.ids.append(expired.message_id)


class Hung:
    @hookimpl
    async def whatsapp_status_changed(self, change: StatusChange) -> None:
        await asyncio.Event().wait()  # never returns


class StatusLog:
    def __init__(self) -> None:
        self.ids: list[str] = []

    @hookimpl
    def whatsapp_status_changed(self, change: StatusChange) -> None:
        self.ids.append(change.message_id)


def sent(manager: MessageSessionManager, count: int, prefix: str = "wamid.") -> list[str]:
    ids = [f"{prefix}{n:06d}" for n in range(count)]
    for message_id in ids:
        manager.track_sent(message_id, "16505551234")
    return ids


# -- backpressure -------------------------------------------------------------------------------


async def test_a_slow_async_hook_receives_every_expiry_of_a_burst():
    clock = Clock(NOW)
    manager = MessageSessionManager(clock=clock, ack_tracking_window="1h")
    audit = SlowExpiryLog()
    events = wired(manager, audit, max_queue=16)
    await events.start()
    ids = sent(manager, 1500)
    clock.advance(hours=1, minutes=1)
    manager.track_sent("wamid.trigger")  # meets the burst: every window ended together
    await MemoryStore.wrapping(manager).drain()  # the rest, a slice at a time, room permitting
    assert await events.flush(timeout=30)
    await events.stop()
    assert audit.ids == ids
    assert events.lost == 0 and manager.hook_errors == 0
    assert events.peak <= 16 + EXPIRY_SLICE  # the queue, plus at most one slice


async def test_waiting_for_room_keeps_the_queue_within_max_queue():
    clock = Clock(NOW)
    manager = MessageSessionManager(clock=clock, ack_tracking_window="1h")
    log = StatusLog()
    events = wired(manager, log, max_queue=8)
    await events.start()
    ids = sent(manager, 400)
    most = 0
    for message_id in ids:
        await events.room()  # what the receive path does before each receipt
        manager.apply_receipt(Receipt(message_id, Status.DELIVERED, clock()))
        most = max(most, events.backlog)
    assert await events.flush(timeout=10)
    await events.stop()
    assert most <= 8
    assert log.ids == ids


async def test_the_receive_path_waits_for_room_and_delivers_every_status_change(
    aiohttp_client,
):
    app, _ = make_app({"event_queue_size": 4})
    recorder = StatusLog()
    app[PLUGIN_MANAGER_KEY].register(recorder)
    client = await aiohttp_client(app)
    events = app[RUNTIME_KEY].events
    statuses = [meta_status(f"wamid.{n:04d}", "sent") for n in range(300)]
    body = meta_status_body(statuses)
    response = await client.post(
        "/webhooks/meta", data=body, headers={"X-Hub-Signature-256": sign_meta(body, META_SECRET)}
    )
    assert response.status == 200
    assert events.peak <= 4 + 1  # the queue, plus one slice (a quarter of the queue)
    assert await events.flush(timeout=10)
    assert recorder.ids == [f"wamid.{n:04d}" for n in range(300)]


# -- hook_timeout -------------------------------------------------------------------------------


async def test_a_hung_hook_is_cancelled_counted_and_does_not_stall_the_others(caplog):
    clock = Clock(NOW)
    manager = MessageSessionManager(clock=clock)
    recorder = StatusLog()
    events = wired(manager, Hung(), recorder, hook_timeout=0.05)
    await events.start()
    started = time.monotonic()
    with caplog.at_level(logging.ERROR, logger="plugin.hooks.events"):
        for n in range(3):
            manager.apply_receipt(Receipt(f"wamid.{n}", Status.SENT, clock()))
        assert await events.flush(timeout=5)
    assert time.monotonic() - started < 2
    assert recorder.ids == ["wamid.0", "wamid.1", "wamid.2"]
    assert manager.hook_errors == 3
    assert "hook_timeout" in caplog.text
    await events.stop()


async def test_without_the_dispatcher_a_hung_coroutine_is_kept_bounded_and_counted():
    clock = Clock(NOW)
    manager = MessageSessionManager(clock=clock)
    events = wired(manager, Hung(), hook_timeout=0.05)  # not started: dispatched at once
    manager.apply_receipt(Receipt("wamid.A", Status.SENT, clock()))
    assert events.backlog == 0 and len(events._background) == 1  # kept, not orphaned
    assert await events.flush(timeout=5)
    assert manager.hook_errors == 1


async def test_call_hook_bounds_each_coroutine_by_the_timeout():
    class Reply:
        @hookimpl
        async def whatsapp_message_received(self, message, client):
            await asyncio.Event().wait()

    errors: list[int] = []
    pm = make_plugin_manager(entry_points=False)
    pm.register(Reply())
    failed = await call_hook(
        pm,
        "whatsapp_message_received",
        {"message": None, "client": None},
        lambda: errors.append(1),
        timeout=0.02,
    )
    assert failed == 1 and errors == [1]


# -- shutdown_timeout ---------------------------------------------------------------------------


async def test_stop_gives_up_after_the_shutdown_timeout_and_counts_what_is_lost(caplog):
    clock = Clock(NOW)
    manager = MessageSessionManager(clock=clock)
    events = wired(manager, Hung(), hook_timeout=None, shutdown_timeout=0.1)
    await events.start()
    for n in range(5):
        manager.apply_receipt(Receipt(f"wamid.{n}", Status.SENT, clock()))
    started = time.monotonic()
    with caplog.at_level(logging.ERROR, logger="plugin.hooks.events"):
        await events.stop()
    assert 0.09 < time.monotonic() - started < 2
    assert events.lost == 5  # one in flight, four queued
    assert events.backlog == 0
    assert "5 lost" in caplog.text


async def test_the_server_counts_events_lost_at_shutdown_in_its_metrics(aiohttp_client):
    app, _ = make_app({"shutdown_timeout": "50ms", "hook_timeout": "1h"})
    app[PLUGIN_MANAGER_KEY].register(Hung())
    client = await aiohttp_client(app)
    body = meta_status_body([meta_status("wamid.A", "sent"), meta_status("wamid.B", "sent")])
    response = await client.post(
        "/webhooks/meta", data=body, headers={"X-Hub-Signature-256": sign_meta(body, META_SECRET)}
    )
    assert response.status == 200
    metrics = await (await client.get("/metrics")).text()
    assert "wa_sessions_events_lost_total 0.0" in metrics
    assert "wa_sessions_events_queued" in metrics
    runtime = app[RUNTIME_KEY]
    await client.close()  # shutdown: the hung hook holds the queue past shutdown_timeout
    assert runtime.events.lost == 3  # both status changes and the final cleanup's report


# -- event ids ----------------------------------------------------------------------------------


def test_event_ids_are_deterministic_and_distinct():
    def change(message_id: str, status: Status, session: str = "2026-11-30") -> StatusChange:
        return StatusChange(
            message_id, session, Status.SENT, status, Outcome.APPLIED, None, "meta", NOW
        )

    def expired(message_id: str, session: str = "2026-11-30") -> MessageExpired:
        return MessageExpired(message_id, session, Status.SENT, None, NOW, "window")

    def summary(session: str) -> SessionSummary:
        return SessionSummary(session, NOW, NOW, NOW, {}, {}, {})

    def report(at_time: float, *completed: str) -> CleanupReport:
        return CleanupReport(at_time, 0, completed, 0, 0, 0)

    same = [
        (change("m1", Status.DELIVERED), change("m1", Status.DELIVERED)),
        (expired("m1"), MessageExpired("m1", "2026-11-30", Status.QUEUED, "~1", 0.0, "session")),
        (summary("2026-11-30"), SessionSummary("2026-11-30", 1, 2, 3, {"sent": 1}, {}, {})),
        (report(NOW, "2026-11-29"), report(NOW, "2026-11-29")),
    ]
    for first, again in same:
        assert first.event_id == again.event_id
        assert isinstance(first.event_id, str) and len(first.event_id) >= 16
    ids = [
        change("m1", Status.DELIVERED).event_id,
        change("m1", Status.READ).event_id,
        change("m2", Status.DELIVERED).event_id,
        change("m1", Status.DELIVERED, "2026-12-01").event_id,
        expired("m1").event_id,
        expired("m2").event_id,
        summary("2026-11-30").event_id,
        summary("2026-12-01").event_id,
        report(NOW).event_id,
        report(NOW + 1).event_id,
        report(NOW, "2026-11-29").event_id,
    ]
    assert len(set(ids)) == len(ids)


def test_the_manager_events_carry_ids_stable_across_two_runs():
    def run() -> list[str]:
        clock = Clock(NOW)
        manager = MessageSessionManager(clock=clock, ack_tracking_window="1h")
        seen: list[str] = []

        class Everything:
            @hookimpl
            def whatsapp_status_changed(self, change):
                seen.append(change.event_id)

            @hookimpl
            def whatsapp_message_expired(self, expired):
                seen.append(expired.event_id)

            @hookimpl
            def whatsapp_session_completed(self, summary):
                seen.append(summary.event_id)

        wired(manager, Everything())
        manager.track_sent("m1", "16505551234")
        manager.track_sent("m2")
        manager.apply_receipt(Receipt("m1", Status.DELIVERED, clock()))
        manager.cleanup(NOW + 3 * 86400)
        return seen

    first, second = run(), run()
    assert first == second
    assert len(first) == 3 and len(set(first)) == 3


async def test_background_work_waits_for_half_the_queue_to_be_free():
    clock = Clock(NOW)
    manager = MessageSessionManager(clock=clock)
    gate = asyncio.Event()

    class Slow:
        @hookimpl
        async def whatsapp_status_changed(self, change: StatusChange) -> None:
            await gate.wait()

    events = wired(manager, Slow(), max_queue=8)
    await events.start()
    for n in range(5):
        manager.apply_receipt(Receipt(f"wamid.{n}", Status.SENT, clock()))
    await events.room()  # the receive path: 5 of 8 waiting, it may go on
    background = asyncio.get_running_loop().create_task(events.room_for_background())
    await asyncio.sleep(0.01)
    assert not background.done()  # 4 or more waiting: the drain holds back
    gate.set()
    await asyncio.wait_for(background, 5)
    assert events.backlog < 4
    await events.stop()
