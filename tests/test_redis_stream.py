"""The Stream of completed sessions (issue 10): with the Redis store, ``session_completed`` is
``XADD``ed by the script that completes the session and delivered through a consumer group, at
least once across replicas, even across a killed one; entries trimmed by
``event_stream_maxlen`` before they were acknowledged are counted exactly.

Every wait is bounded by ``asyncio.timeout``; every store started here is closed, and its
background delivery cancelled and awaited first, by the ``stores`` fixture."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from plugin.core.model import SessionSummary
from plugin.hooks.hookspecs import hookimpl
from plugin.server.runtime import MANAGER_KEY, PLUGIN_MANAGER_KEY, RUNTIME_KEY
from plugin.stores.redis.scripts import EVENT_GROUP
from plugin.stores.redis.store import RedisStore
from tests.clock import Clock, at
from tests.redis_support import RedisProxy, redis_prefix, redis_url
from tests.serving import ADMIN_TOKEN
from tests.serving import Clock as AppClock
from tests.test_cli_serve import ROOT, start_serve
from tests.test_events import wired
from tests.test_redis_server import redis_app

__all__ = ["redis_prefix", "redis_url"]  # fixtures used here

HOUR = 3600.0
DAY = 86400.0
MONDAY = at("2026-11-30T00:00")
BEARER = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


class Sink:
    """An event sink recording completed sessions. ``hold``: keep the ``on_delivered``
    callbacks instead of calling them (hooks still running, or a replica about to die)."""

    def __init__(self, hold: bool = False) -> None:
        self.hold = hold
        self.completed: list[SessionSummary] = []
        self.callbacks: dict[str, Callable[[], None]] = {}

    def status_changed(self, change: object) -> None: ...

    def message_expired(self, expired: object) -> None: ...

    def cleanup_completed(self, report: object) -> None: ...

    def session_completed(
        self, summary: SessionSummary, *, on_delivered: Callable[[], None] | None = None
    ) -> None:
        self.completed.append(summary)
        if on_delivered is None:
            return
        if self.hold:
            self.callbacks[summary.session_id] = on_delivered
        else:
            on_delivered()

    @property
    def ids(self) -> list[str]:
        return [summary.session_id for summary in self.completed]


Stores = Callable[..., Any]


@pytest.fixture
def clock() -> Clock:
    return Clock(MONDAY + 10 * HOUR)


@pytest.fixture
async def stores(redis_url: str, redis_prefix: str, clock: Clock) -> AsyncIterator[Stores]:
    """``await stores(sink, background=False, **kwargs)``: a store on the test's prefix (or
    ``prefix=``); with ``background`` its delivery loop runs as a task. Teardown cancels and
    awaits every task, then closes every store."""
    made: list[RedisStore] = []
    tasks: list[asyncio.Task[None]] = []

    async def make(sink: Sink | None = None, *, background: bool = False, **kw: Any) -> RedisStore:
        kw.setdefault("redaction_key", "stream-test")
        kw.setdefault("url", redis_url)
        kw.setdefault("clock", clock)
        kw.setdefault("prefix", redis_prefix)
        store = RedisStore(events=sink, **kw)
        async with asyncio.timeout(10):
            await store.connect()
        made.append(store)
        if background:
            tasks.extend(asyncio.create_task(work) for work in store.background())
        return store

    yield make
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for store in made:
        async with asyncio.timeout(15):
            await store.close()


@pytest.fixture
async def raw(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """A plain client, to look at the Stream as Redis holds it."""
    client = aioredis.Redis.from_url(redis_url, decode_responses=True, socket_timeout=5)
    yield client
    await client.aclose()
    await client.connection_pool.disconnect()


def events_key(prefix: str) -> str:
    return "{" + prefix + "}:events"


async def pending(raw: aioredis.Redis, prefix: str) -> int:
    async with asyncio.timeout(5):
        return int((await raw.xpending(events_key(prefix), EVENT_GROUP))["pending"])


async def until(condition: Callable[[], Any], seconds: float = 10.0, step: float = 0.05) -> None:
    """Poll ``condition()`` (awaited when it is a coroutine) until true, within ``seconds``."""
    async with asyncio.timeout(seconds):
        while True:
            result = condition()
            if asyncio.iscoroutine(result):
                result = await result
            if result:
                return
            await asyncio.sleep(step)


async def track_hours(store: RedisStore, clock: Clock, hours: range) -> list[str]:
    """One message in each hourly session of Monday ``hours``; their session ids."""
    ids = []
    for hour in hours:
        clock.set(MONDAY + hour * HOUR + 60)
        assert await store.track_sent(f"wamid.H{hour:02d}")
        ids.append(f"2026-11-30T{hour:02d}")
    return ids


def due(hour: int) -> float:
    """When the hourly session of Monday ``hour`` completes (window 24h): its end + 24h."""
    return MONDAY + (hour + 1) * HOUR + DAY


HOURLY = {"session_period": "1h", "ack_tracking_window": "24h"}


# -- in the Stream, delivered once, acknowledged after the hooks ---------------------------------


class Recorder:
    def __init__(self) -> None:
        self.summaries: list[SessionSummary] = []

    @hookimpl
    def whatsapp_session_completed(self, summary: SessionSummary) -> None:
        self.summaries.append(summary)


async def test_a_completed_session_is_in_the_stream_delivered_once_and_acknowledged(
    stores, clock, raw, redis_prefix
):
    # the session completes (max_session_age) while its records' windows are still open
    store = await stores(ack_tracking_window="24h", max_session_age="24h")
    recorder = Recorder()
    wired(store, recorder)  # not started: hooks run at once, in the caller
    await store.track_sent("wamid.A", "16505551234")
    await store.track_sent("wamid.B")
    clock.set(MONDAY + DAY)
    report = await store.cleanup()
    assert report is not None and report.completed_sessions == ("2026-11-30",)

    # delivered by the end of cleanup(), once, with the summary the script wrote
    (summary,) = recorder.summaries
    assert summary.session_id == "2026-11-30" and summary.counters["expired"] == 2
    ((entry_id, fields),) = await raw.xrange(events_key(redis_prefix))
    assert fields["type"] == "session_completed" and fields["cleared"] == "2"
    assert json.loads(fields["summary"])["session_id"] == "2026-11-30"
    assert "16505551234" not in fields["summary"]
    assert await pending(raw, redis_prefix) == 0  # acknowledged

    # nobody gets it again: not this store, not another replica
    replica_sink = Sink()
    replica = await stores(replica_sink, claim_idle=0.05)
    await asyncio.sleep(0.1)
    assert await store.deliver_events() == 0 and await replica.deliver_events() == 0
    assert len(recorder.summaries) == 1 and replica_sink.completed == []
    debug = (await store.get_debug_info())["manager_stats"]
    assert (debug["event_stream_length"], debug["events_pending"], debug["events_lost"]) == (
        1,
        0,
        0,
    )
    assert entry_id


class Gate:
    """An async hook that waits until the test opens the gate."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.started: list[str] = []
        self.finished: list[str] = []

    @hookimpl
    async def whatsapp_session_completed(self, summary: SessionSummary) -> None:
        self.started.append(summary.event_id)
        await self.open.wait()
        self.finished.append(summary.event_id)


@pytest.mark.parametrize("queued", [True, False], ids=["queued", "in-the-caller"])
async def test_the_entry_is_acknowledged_only_after_the_hook_ran(
    stores, clock, raw, redis_prefix, queued
):
    store = await stores(ack_tracking_window="2h")
    gate = Gate()
    events = wired(store, gate, hook_timeout=30)
    if queued:
        await events.start()  # the server's way: a background task dispatches
    try:
        await store.track_sent("wamid.A")
        clock.set(MONDAY + DAY + 2 * HOUR)
        await store.cleanup()
        await until(lambda: gate.started)
        await store.deliver_events()
        assert await pending(raw, redis_prefix) == 1  # the hook is still running
        gate.open.set()
        async with asyncio.timeout(5):
            assert await events.flush(5)
        assert gate.finished == gate.started
        await store.deliver_events()
        assert await pending(raw, redis_prefix) == 0
    finally:
        gate.open.set()
        async with asyncio.timeout(10):
            await events.stop(1)


async def test_a_hook_cancelled_at_shutdown_leaves_its_entry_pending(
    stores, clock, raw, redis_prefix, caplog
):
    store = await stores(ack_tracking_window="2h")
    gate = Gate()
    events = wired(store, gate, hook_timeout=30)
    await events.start()
    await store.track_sent("wamid.A")
    clock.set(MONDAY + DAY + 2 * HOUR)
    await store.cleanup()
    await until(lambda: gate.started)
    async with asyncio.timeout(10):
        await events.stop(0.05)  # shutdown_timeout passes while the hook runs
    await store.deliver_events()
    assert await pending(raw, redis_prefix) == 1  # not acknowledged: a replica claims it
    assert gate.finished == []
    # lost: only the cleanup_completed queued behind it; the session's event is still in the
    # Stream, so it is not counted
    assert events.lost == 1
    assert "1 session_completed event(s) from the Redis Stream undelivered" in caplog.text


# -- at least once across a killed replica ----------------------------------------------------


async def test_an_entry_a_dead_replica_held_is_delivered_by_another(
    stores, clock, raw, redis_prefix
):
    dying_sink = Sink(hold=True)  # read, hooks never finish: the replica dies before its ack
    dying = await stores(dying_sink, ack_tracking_window="2h")
    await dying.track_sent("wamid.A")
    clock.set(MONDAY + DAY + 2 * HOUR)
    await dying.cleanup()
    (first,) = dying_sink.completed
    assert await pending(raw, redis_prefix) == 1

    survivor_sink = Sink()
    survivor = await stores(survivor_sink, claim_idle=0.2)
    assert await survivor.deliver_events() == 0  # not idle long enough: the owner may be alive
    await until(survivor.deliver_events, seconds=10)
    (again,) = survivor_sink.completed
    assert again == first and again.event_id == first.event_id
    assert await pending(raw, redis_prefix) == 0
    dying_sink.callbacks.clear()  # it died: its callbacks never run


PLUGIN = """
import asyncio, json, os
from plugin import hookimpl

@hookimpl
async def whatsapp_session_completed(summary):
    with open(os.environ["WA_TEST_MARK"] + ".tmp", "w") as out:
        json.dump({"event_id": summary.event_id, "session_id": summary.session_id}, out)
    os.replace(os.environ["WA_TEST_MARK"] + ".tmp", os.environ["WA_TEST_MARK"])
    await asyncio.sleep(3600)  # the replica is killed while its hook runs
"""


def serve(tmp_path: Path, redis_url: str, prefix: str, mark: Path) -> subprocess.Popen[str]:
    (tmp_path / "blocking_completion_hook.py").write_text(PLUGIN)
    settings = tmp_path / "settings.toml"
    settings.write_text(
        "[default]\n"
        'store = "redis"\n'
        f'redis_url = "{redis_url}"\n'
        f'redis_prefix = "{prefix}"\n'
        'redaction_key = "stream-test"\n'
        'ack_tracking_window = "2h"\n'
        'cleanup_interval = "1s"\n'
        'hook_timeout = "1h"\n'
        'plugins = ["blocking_completion_hook"]\n'
        '[default.meta]\napp_secret = "s"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHATSAPP_")}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(ROOT)])
    env["WA_TEST_MARK"] = str(mark)
    process, _ = start_serve(settings, env)
    return process


async def test_a_killed_server_replica_loses_no_completed_session(
    stores, raw, redis_url, redis_prefix, tmp_path
):
    # a session of three days ago, due by the real clock: the server completes it at start
    past = Clock(time.time() - 3 * DAY)
    seeding = await stores(clock=past, ack_tracking_window="2h")
    await seeding.track_sent("wamid.OLD")
    (session_id,) = [s["session_id"] for s in (await seeding.get_all_stats())["sessions"]]

    mark = tmp_path / "hook-started.json"
    process = serve(tmp_path, redis_url, redis_prefix, mark)
    try:
        await until(mark.exists, seconds=20)  # its hook runs (and never returns) ...
        assert await pending(raw, redis_prefix) == 1  # ... so the entry is not acknowledged
    finally:
        process.send_signal(signal.SIGKILL)
        await asyncio.to_thread(process.communicate, timeout=10)
    seen = json.loads(mark.read_text())
    assert seen["session_id"] == session_id

    survivor_sink = Sink()
    survivor = await stores(survivor_sink, claim_idle=0.2)
    await until(survivor.deliver_events, seconds=10)
    (summary,) = survivor_sink.completed
    assert (summary.session_id, summary.event_id) == (session_id, seen["event_id"])
    assert summary.counters["sent"] == 1 and summary.counters["expired"] == 1
    assert await pending(raw, redis_prefix) == 0


class SlowAudit:
    """An async hook that takes a while, then records."""

    def __init__(self) -> None:
        self.event_ids: list[str] = []

    @hookimpl
    async def whatsapp_session_completed(self, summary: SessionSummary) -> None:
        await asyncio.sleep(0.2)
        self.event_ids.append(summary.event_id)


async def test_a_graceful_shutdown_delivers_and_acknowledges_before_closing(
    stores, clock, raw, redis_url, redis_prefix, aiohttp_client
):
    seeding = await stores(ack_tracking_window="1h")
    await seeding.track_sent("wamid.A")
    app, _ = redis_app(redis_url, redis_prefix, AppClock(MONDAY + DAY + 2 * HOUR))
    audit = SlowAudit()
    app[PLUGIN_MANAGER_KEY].register(audit)
    client = await aiohttp_client(app)
    async with asyncio.timeout(20):
        await client.close()  # the final cleanup completes the session; shutdown delivers it
    assert len(audit.event_ids) == 1
    assert await pending(raw, redis_prefix) == 0  # acknowledged by close()
    assert app[RUNTIME_KEY].events.lost == 0


# -- the cap: trimmed entries counted exactly -------------------------------------------------


async def test_entries_trimmed_before_their_acknowledgement_are_counted_exactly(
    stores, clock, raw, redis_prefix, redis_url, aiohttp_client
):
    sink = Sink()
    store = await stores(sink, event_stream_maxlen=2, **HOURLY)
    ids = await track_hours(store, clock, range(10, 18))

    # five sessions complete in one cleanup: the Stream holds 2, so the first 3 were trimmed
    # before anyone read them
    clock.set(due(14))
    report = await store.cleanup()
    assert report is not None and report.completed_sessions == tuple(ids[:5])
    assert sink.ids == ids[3:5]
    assert await raw.xlen(events_key(redis_prefix)) == 2
    assert (await store.get_debug_info())["manager_stats"]["events_lost"] == 3

    # the hooks of the next ones do not finish: trimming an acknowledged entry loses nothing,
    # trimming one still pending does
    sink.hold = True
    for hour in (15, 16):  # trims the acknowledged 13 and 14
        clock.set(due(hour))
        await store.cleanup()
    assert (await store.get_debug_info())["manager_stats"]["events_lost"] == 3
    clock.set(due(17))  # trims 15, read but still pending
    await store.cleanup()
    debug = (await store.get_debug_info())["manager_stats"]
    assert debug["events_lost"] == 4
    assert debug["event_stream_length"] == 2 and debug["events_pending"] == 3
    assert sink.ids == ids[3:]

    # 16 and 17 are delivered after all; 15 was counted lost, and the replica that claims it
    # finds it gone (its pending entry is dropped, nothing delivered twice)
    sink.callbacks.pop(ids[6])()
    sink.callbacks.pop(ids[7])()
    await store.deliver_events()
    assert await pending(raw, redis_prefix) == 1
    claimer_sink = Sink()
    claimer = await stores(claimer_sink, claim_idle=0.05, event_stream_maxlen=2, **HOURLY)
    await asyncio.sleep(0.1)
    assert await claimer.deliver_events() == 0
    assert claimer_sink.completed == [] and await pending(raw, redis_prefix) == 0

    # fleet-wide, in /metrics of any replica
    app, _ = redis_app(redis_url, redis_prefix, AppClock(clock()), event_stream_maxlen=2)
    client = await aiohttp_client(app)
    metrics = await (await client.get("/metrics", headers=BEARER)).text()
    assert "wa_sessions_events_lost_total 4.0" in metrics
    debug = await (await client.get("/sessions/debug", headers=BEARER)).json()
    assert debug["manager_stats"]["events_lost"] == 4
    assert app[MANAGER_KEY].event_stream_maxlen == 2


# -- several replicas in normal operation -------------------------------------------------------


async def test_two_replicas_deliver_each_completed_session_exactly_once(
    stores, clock, raw, redis_prefix
):
    sinks = [Sink(), Sink()]
    replicas = [await stores(sink, background=True, **HOURLY) for sink in sinks]
    ids = await track_hours(replicas[0], clock, range(0, 12))
    for hour in range(12):
        clock.set(due(hour))
        await replicas[hour % 2].cleanup()
    await until(lambda: sum(len(sink.completed) for sink in sinks) >= len(ids))
    await asyncio.sleep(0.3)  # nothing more arrives
    delivered = sorted(sinks[0].ids + sinks[1].ids)
    assert delivered == ids  # each once
    await until(lambda: no_pending(raw, redis_prefix))  # acknowledged by the background loops


async def no_pending(raw: aioredis.Redis, prefix: str) -> bool:
    return await pending(raw, prefix) == 0


@pytest.fixture
async def proxy(redis_url: str) -> AsyncIterator[RedisProxy]:
    """A relay to Redis the test can cut; stopped after the stores are closed (request it
    before ``stores``)."""
    relay = RedisProxy(redis_url)
    await relay.start()
    yield relay
    await relay.stop()


async def test_the_background_delivery_survives_redis_going_away(
    proxy, stores, raw, redis_prefix, caplog
):
    sink = Sink()
    store = await stores(
        sink, background=True, url=f"redis://127.0.0.1:{proxy.port}/0", timeout=2.0
    )
    await proxy.stop()
    await until(lambda: "completed-session events" in caplog.text, seconds=10)
    await proxy.start()
    # an entry arrives (as a replica's completion would add it): the loop delivers it
    fields = {
        "session_id": "2026-11-30",
        "start": str(MONDAY),
        "end": str(MONDAY + DAY),
        "completed_at": str(MONDAY + DAY + 2 * HOUR),
        "sent": "3",
    }
    entry = {"type": "session_completed", "summary": json.dumps(fields), "cleared": "3"}
    await raw.xadd(events_key(redis_prefix), entry)
    await until(lambda: sink.completed, seconds=15)
    assert sink.ids == ["2026-11-30"] and sink.completed[0].counters["sent"] == 3
    assert store.stream.delivered == 1
    await until(lambda: no_pending(raw, redis_prefix))


async def test_the_background_delivery_stops_promptly_whenever_it_is_cancelled(stores):
    """Cancelled at any moment of its first read (redis-py may swallow a cancellation that
    arrives with a reply), the loop still ends within one blocking read."""
    store = await stores()
    await store.deliver_events()  # a pooled connection is ready: the read starts at once
    for delay in (0, 0, 0.0001, 0.0003, 0.0005, 0.001, 0.003, 0.01, 0.1):
        upkeep, work = store.background()
        upkeep.close()  # only the delivery loop here
        task = asyncio.create_task(work)
        await asyncio.sleep(delay)
        task.cancel()
        async with asyncio.timeout(3):
            await asyncio.gather(task, return_exceptions=True)
        assert task.cancelled()


# -- bounded and self-healing --------------------------------------------------------------------


async def test_a_closed_store_leaves_the_group_and_idle_consumers_are_pruned(
    stores, clock, raw, redis_prefix
):
    key = events_key(redis_prefix)
    store = await stores(ack_tracking_window="2h")
    await store.deliver_events()
    names = {c["name"] for c in await raw.xinfo_consumers(key, EVENT_GROUP)}
    assert store.consumer in names
    async with asyncio.timeout(10):
        await store.close()
    assert store.consumer not in {c["name"] for c in await raw.xinfo_consumers(key, EVENT_GROUP)}

    # a replica that died: an idle consumer with nothing pending is removed; one holding an
    # entry is kept until its entry is claimed
    await raw.xadd(key, {"type": "test"})
    ((_, ((entry_id, _),)),) = await raw.xreadgroup(EVENT_GROUP, "dead-replica", {key: ">"})
    await raw.xack(key, EVENT_GROUP, entry_id)
    holder = await stores(Sink(hold=True), ack_tracking_window="2h")
    await holder.track_sent("wamid.A")
    clock.set(MONDAY + DAY + 2 * HOUR)
    await holder.cleanup()
    observer = await stores()
    assert await observer.stream.prune(0) == 1
    names = {c["name"] for c in await raw.xinfo_consumers(key, EVENT_GROUP)}
    assert "dead-replica" not in names and holder.consumer in names


async def test_a_lost_group_is_created_again(stores, clock, raw, redis_prefix):
    sink = Sink()
    store = await stores(sink, ack_tracking_window="2h")
    await raw.delete(events_key(redis_prefix))  # Redis lost the Stream (and its group)
    assert await store.deliver_events() == 0  # NOGROUP: the group is created again
    await raw.delete(events_key(redis_prefix))
    await store.track_sent("wamid.A")
    clock.set(MONDAY + DAY + 2 * HOUR)
    await store.cleanup()  # the script creates the group before its XADD
    assert sink.ids == ["2026-11-30"]
    assert await pending(raw, redis_prefix) == 0

    # delivered, but Redis loses the Stream before the acknowledgement: nothing to acknowledge
    sink.hold = True
    await store.track_sent("wamid.B")
    clock.set(MONDAY + 2 * DAY + 2 * HOUR)
    await store.cleanup()
    assert sink.ids == ["2026-11-30", "2026-12-01"]
    await raw.delete(events_key(redis_prefix))
    sink.callbacks.pop("2026-12-01")()
    assert await store.deliver_events() == 0
    assert store.stream._acks == []


def test_the_stream_settings_are_validated():
    with pytest.raises(ValueError):
        RedisStore(event_stream_maxlen=0)
    with pytest.raises(ValueError):
        RedisStore(claim_idle=0)


def test_event_stream_maxlen_is_a_validated_setting_passed_to_the_redis_store():
    from plugin.core.errors import SettingsError
    from plugin.settings.loading import Settings
    from plugin.settings.schema import KNOWN_KEYS
    from plugin.stores.base import build_store

    assert "event_stream_maxlen" in KNOWN_KEYS  # production no longer refuses it
    settings = Settings.from_mapping({})
    assert settings.event_stream_maxlen == 100_000
    assert settings.as_dict()["event_stream_maxlen"] == 100_000
    settings = Settings.from_mapping({"store": "redis", "event_stream_maxlen": "2"})
    store = build_store(settings)
    assert isinstance(store, RedisStore) and store.event_stream_maxlen == 2
    with pytest.raises(SettingsError) as exc:
        Settings.from_mapping({"event_stream_maxlen": 0})
    assert [problem.key for problem in exc.value.problems] == ["event_stream_maxlen"]
