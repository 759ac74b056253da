"""The hook system: plugin loading, event dispatch, failure isolation, middleware pipelines.

Plugins here are throwaway modules and distributions written to ``tmp_path``.
"""

from __future__ import annotations

import asyncio
import logging
import textwrap
import uuid
from pathlib import Path

import pytest

from plugin.core.errors import SettingsError
from plugin.core.manager import MessageSessionManager
from plugin.core.model import InboundMessage, Outcome, Receipt, Status, StatusChange
from plugin.hooks.events import HookEvents, call_hook
from plugin.hooks.hookspecs import hookimpl
from plugin.hooks.pipeline import MiddlewareRegistry, OutboundMessage, SendResult, build_chain
from plugin.hooks.plugins import ENTRY_POINT_GROUP, collect_middlewares, make_plugin_manager
from plugin.hooks.tracking import SessionTrackingPlugin
from tests.clock import Clock, at

NOW = at("2026-11-30T10:00")


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def manager(clock) -> MessageSessionManager:
    return MessageSessionManager(clock=clock, ack_tracking_window="1h")


def write_module(directory: Path, source: str) -> str:
    """Write a uniquely named module into ``directory``; return its name."""
    name = f"wa_test_plugin_{uuid.uuid4().hex[:12]}"
    (directory / f"{name}.py").write_text(textwrap.dedent(source))
    return name


def write_distribution(directory: Path, entry_name: str, module: str) -> None:
    """A fake installed distribution announcing ``module`` in the ``wa_sessions`` group."""
    dist = directory / f"fake_wa_plugin_{module}-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: fake-wa-plugin-{module}\nVersion: 1.0\n"
    )
    (dist / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{entry_name} = {module}\n")


MIDDLEWARE_PLUGIN = """
from plugin.hooks.hookspecs import hookimpl

LOG = []

async def receive(handler, event, data):
    LOG.append("{label} before")
    result = await handler(event, data)
    LOG.append("{label} after")
    return result

@hookimpl
def whatsapp_register_middlewares(register):
    register.receive(receive)
"""


class Recorder:
    """A plugin recording the events it receives (sync implementations)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, object]] = []

    @hookimpl
    def whatsapp_status_changed(self, change):
        self.seen.append(("status", change))

    @hookimpl
    def whatsapp_message_expired(self, expired):
        self.seen.append(("expired", expired))

    @hookimpl
    def whatsapp_session_completed(self, summary):
        self.seen.append(("completed", summary))

    @hookimpl
    def whatsapp_cleanup_completed(self, report):
        self.seen.append(("cleanup", report))


class AsyncRecorder:
    """The same, as coroutines: the framework awaits them."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, object]] = []

    @hookimpl
    async def whatsapp_status_changed(self, change):
        await asyncio.sleep(0)
        self.seen.append(("status", change))

    @hookimpl
    async def whatsapp_message_expired(self, expired):
        self.seen.append(("expired", expired))


class Broken:
    @hookimpl
    def whatsapp_status_changed(self, change):
        raise RuntimeError("the CRM is down")


class BrokenAsync:
    @hookimpl
    async def whatsapp_status_changed(self, change):
        raise RuntimeError("the async CRM is down")


def wired(manager: MessageSessionManager, *plugins: object, **kw) -> HookEvents:
    pm = make_plugin_manager(manager, entry_points=False)
    for plugin in plugins:
        pm.register(plugin)
    events = HookEvents(pm, manager, **kw)
    events.attach(manager)
    return events


def deliver(manager: MessageSessionManager, message_id: str = "m1") -> Outcome:
    manager.track_sent(message_id, recipient="16505551234")
    return manager.apply_receipt(Receipt(message_id, Status.DELIVERED, None))


# -- loading -----------------------------------------------------------------------------------


def test_plugins_load_built_in_then_settings_modules_then_entry_points(
    tmp_path, monkeypatch, manager
):
    monkeypatch.syspath_prepend(str(tmp_path))
    from_settings = write_module(tmp_path, "X = 1\n")
    from_entry_point = write_module(tmp_path, "Y = 2\n")
    write_distribution(tmp_path, "fake-audit", from_entry_point)

    pm = make_plugin_manager(manager, plugins=[from_settings])

    names = [name for name, _ in pm.list_name_plugin()]
    assert names[:1] == [SessionTrackingPlugin.name]
    assert names.index(from_settings) < names.index("fake-audit")
    assert pm.get_plugin("fake-audit").Y == 2


def test_loading_is_idempotent(tmp_path, monkeypatch, manager):
    monkeypatch.syspath_prepend(str(tmp_path))
    module = write_module(tmp_path, "X = 1\n")
    pm = make_plugin_manager(manager, plugins=[module, module], entry_points=False)
    assert [name for name, _ in pm.list_name_plugin()].count(module) == 1


def test_a_bad_plugin_module_path_is_a_settings_error_naming_plugins(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    good = write_module(tmp_path, "X = 1\n")
    with pytest.raises(SettingsError) as caught:
        make_plugin_manager(plugins=[good, "no_such_wa_plugin", "nor.this.one"], entry_points=False)
    problems = caught.value.problems
    assert [p.key for p in problems] == ["plugins", "plugins"]
    assert [p.value for p in problems] == ["no_such_wa_plugin", "nor.this.one"]


def test_a_plugin_path_may_name_an_object_in_a_module(tmp_path, monkeypatch, manager):
    # settings accept "mybot.crm:Plugin" (README, Keys): a class is instantiated.
    monkeypatch.syspath_prepend(str(tmp_path))
    module = write_module(
        tmp_path,
        """
        from plugin.hooks.hookspecs import hookimpl

        class Plugin:
            completed = []

            @hookimpl
            def whatsapp_session_completed(self, summary):
                self.completed.append(summary.session_id)
    """,
    )
    pm = make_plugin_manager(manager, plugins=[f"{module}:Plugin"], entry_points=False)
    events = HookEvents(pm, manager)
    events.attach(manager)
    manager.track_sent("m1")
    manager.cleanup(NOW + 3 * 86400)
    plugin_class = pm.get_plugin(f"{module}:Plugin").__class__
    assert plugin_class.completed == ["2026-11-30"]


# -- dispatch ----------------------------------------------------------------------------------


def test_plain_and_async_implementations_both_receive_each_event(manager, clock):
    sync, asynchronous = Recorder(), AsyncRecorder()
    wired(manager, sync, asynchronous)
    assert deliver(manager) == Outcome.APPLIED
    manager.track_sent("m2")
    clock.advance(hours=1)
    manager.cleanup()
    manager.cleanup(NOW + 3 * 86400)

    kinds = [kind for kind, _ in sync.seen]
    assert kinds == ["status", "expired", "cleanup", "completed", "cleanup"]
    assert [kind for kind, _ in asynchronous.seen] == ["status", "expired"]
    change = asynchronous.seen[0][1]
    assert isinstance(change, StatusChange)
    assert change.message_id == "m1"
    assert change.new_status == Status.DELIVERED
    assert change.recipient == manager.redact("16505551234")
    assert asynchronous.seen[1][1].reason == "window"
    assert manager.hook_errors == 0


def test_a_failing_implementation_does_not_stop_the_others_and_is_counted(manager, caplog):
    first, last = Recorder(), Recorder()
    wired(manager, first, Broken(), BrokenAsync(), last)
    with caplog.at_level(logging.ERROR, logger="plugin.hooks.events"):
        assert deliver(manager) == Outcome.APPLIED
        assert deliver(manager, "m2") == Outcome.APPLIED
    assert len(first.seen) == len(last.seen) == 2
    assert manager.hook_errors == 4
    assert manager.get_debug_info()["manager_stats"]["hook_errors"] == 4
    assert "the CRM is down" in caplog.text
    assert "the async CRM is down" in caplog.text
    assert "whatsapp_status_changed" in caplog.text


async def test_inside_a_running_loop_events_are_queued_and_flushed(manager):
    recorder, asynchronous = Recorder(), AsyncRecorder()
    events = wired(manager, recorder, asynchronous)
    await events.start()
    try:
        deliver(manager)
        assert recorder.seen == []  # the receipt path did not wait for subscribers
        await events.flush()
        assert [kind for kind, _ in recorder.seen] == ["status"]
        assert [kind for kind, _ in asynchronous.seen] == ["status"]
    finally:
        await events.stop()
    deliver(manager, "m2")  # after stop(): dispatched at once
    assert len(recorder.seen) == 2


async def test_a_failing_hook_in_the_queue_is_counted_and_the_rest_dispatched(manager):
    recorder = Recorder()
    events = wired(manager, Broken(), BrokenAsync(), recorder)
    await events.start()
    deliver(manager)
    await events.flush()
    await events.stop()
    assert len(recorder.seen) == 1
    assert manager.hook_errors == 2


async def test_a_full_event_queue_drops_nothing_and_asks_producers_to_wait(manager, caplog):
    # Issue 10 replaced dropping with backpressure: a synchronous producer's events are all
    # queued, and the queue reports itself full so that asynchronous producers wait for room.
    recorder = Recorder()
    events = wired(manager, recorder, max_queue=2)
    await events.start()
    with caplog.at_level(logging.WARNING, logger="plugin.hooks.events"):
        for n in range(5):
            deliver(manager, f"m{n}")
    assert events.backlog == 5 and events.full
    assert "dropped" not in caplog.text
    assert await events.flush()
    assert not events.full
    await events.stop()
    assert [c.message_id for _, c in recorder.seen] == ["m0", "m1", "m2", "m3", "m4"]
    assert events.lost == 0


def test_per_message_events_are_built_only_when_some_plugin_listens(manager, clock, monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("built an event nobody listens to")

    class CompletionsOnly:
        completed: list[str] = []

        @hookimpl
        def whatsapp_session_completed(self, summary):
            self.completed.append(summary.session_id)

    plugin = CompletionsOnly()
    events = wired(manager, plugin)
    monkeypatch.setattr("plugin.core.manager.StatusChange", never)
    monkeypatch.setattr("plugin.core.lifecycle.MessageExpired", never)
    deliver(manager)
    manager.track_sent("m2")
    clock.advance(hours=1)
    manager.cleanup()
    manager.cleanup(NOW + 3 * 86400)
    assert plugin.completed == ["2026-11-30"]

    monkeypatch.undo()
    recorder = Recorder()
    events.pm.register(recorder)
    events.attach(manager)  # a listener now: the events are built
    clock.set(NOW + 4 * 86400)
    deliver(manager, "m3")
    assert [kind for kind, _ in recorder.seen] == ["status"]


async def test_call_hook_awaits_coroutines_and_passes_only_the_arguments_asked_for():
    pm = make_plugin_manager(entry_points=False)
    received: list[object] = []

    class Bot:
        @hookimpl
        async def whatsapp_message_received(self, message):  # no "client" parameter
            received.append(message)

    class Failing:
        @hookimpl
        def whatsapp_message_received(self, message, client):
            raise ValueError("nope")

    pm.register(Bot())
    pm.register(Failing())
    message = InboundMessage("wamid.in", "16505551234", NOW, "text", "hi")
    errors: list[int] = []
    failed = await call_hook(
        pm,
        "whatsapp_message_received",
        {"message": message, "client": None},
        lambda: errors.append(1),
    )
    assert received == [message]
    assert failed == 1
    assert errors == [1]


# -- middlewares -------------------------------------------------------------------------------


async def test_the_first_middleware_in_a_chain_is_the_outermost():
    log: list[str] = []

    def middleware(label):
        async def mw(handler, event, data):
            log.append(f"{label} before")
            result = await handler(event, data)
            log.append(f"{label} after")
            return result

        return mw

    async def handler(event, data):
        log.append(f"handler {event}")
        return "done"

    chain = build_chain([middleware("outer"), middleware("inner")], handler)
    assert await chain("e", {}) == "done"
    assert log == ["outer before", "inner before", "handler e", "inner after", "outer after"]


async def test_a_middleware_that_does_not_call_the_handler_stops_the_event():
    called: list[object] = []

    async def gate(handler, event, data):
        return "stopped"

    async def handler(event, data):
        called.append(event)

    assert await build_chain([gate], handler)("e", {}) == "stopped"
    assert called == []


async def test_third_party_middlewares_are_outer_and_tracking_is_innermost(
    tmp_path, monkeypatch, manager
):
    monkeypatch.syspath_prepend(str(tmp_path))
    first = write_module(tmp_path, MIDDLEWARE_PLUGIN.replace("{label}", "settings"))
    second = write_module(tmp_path, MIDDLEWARE_PLUGIN.replace("{label}", "entry point"))
    write_distribution(tmp_path, "mw-plugin", second)
    pm = make_plugin_manager(manager, plugins=[first])
    log = pm.get_plugin(first).LOG
    assert pm.get_plugin("mw-plugin").LOG is not log

    async def handler(event, data):
        log.append(f"handler {data['outcome'].value}")
        return data["outcome"]

    registry = collect_middlewares(pm)
    chain = build_chain(registry.receive_middlewares, handler)
    manager.track_sent("m1")
    outcome = await chain(Receipt("m1", Status.READ, NOW), {})
    assert outcome == Outcome.APPLIED
    entry_log = pm.get_plugin("mw-plugin").LOG
    assert entry_log == ["entry point before", "entry point after"]
    assert log == ["settings before", "handler applied", "settings after"]
    # Pluggy calls later-registered plugins first: the entry point is the outermost.
    assert registry.receive_middlewares[-1] == pm.get_plugin(SessionTrackingPlugin.name).receive


async def test_the_tracking_plugin_applies_receipts_on_the_receive_path(manager):
    registry = collect_middlewares(make_plugin_manager(manager, entry_points=False))
    seen: list[dict] = []

    async def handler(event, data):
        seen.append(dict(data))

    chain = build_chain(registry.receive_middlewares, handler)
    await chain(Receipt("stranger", Status.SENT, NOW), {})
    await chain(Receipt("stranger", Status.SENT, NOW), {})
    await chain(InboundMessage("wamid.in", "16505551234", NOW, "text", "hi"), {})
    assert seen == [{"outcome": Outcome.ADOPTED}, {"outcome": Outcome.DUPLICATE}, {}]
    assert manager.tracked_messages == 1


async def test_the_tracking_plugin_tracks_sent_messages_on_the_send_path(manager):
    registry = collect_middlewares(make_plugin_manager(manager, entry_points=False))
    answers = iter([SendResult("wamid.out", "16505551234"), None])

    async def send(event, data):
        return next(answers)

    chain = build_chain(registry.send_middlewares, send)
    message = OutboundMessage("16505551234", {"type": "text", "text": {"body": "hi"}})
    result = await chain(message, {})
    assert result.message_id == "wamid.out"
    assert [(m, r) for m, _, _, _, r in manager.records()] == [
        ("wamid.out", manager.redact("16505551234")),
    ]
    assert await chain(message, {}) is None  # nothing sent, nothing tracked
    assert manager.tracked_messages == 1


async def test_an_outer_send_middleware_can_stop_a_message_before_it_is_tracked(manager):
    pm = make_plugin_manager(manager, entry_points=False)

    class Quiet:
        @hookimpl
        def whatsapp_register_middlewares(self, register: MiddlewareRegistry):
            async def quiet_hours(handler, event, data):
                return None

            register.send(quiet_hours)

    pm.register(Quiet())
    registry = collect_middlewares(pm)

    async def send(event, data):
        raise AssertionError("sent during quiet hours")

    chain = build_chain(registry.send_middlewares, send)
    assert await chain(OutboundMessage("16505551234", {}), {}) is None
    assert manager.tracked_messages == 0


def test_a_missing_object_in_a_plugin_module_is_a_settings_error(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    module = write_module(tmp_path, "X = 1\n")
    with pytest.raises(SettingsError) as caught:
        make_plugin_manager(plugins=[f"{module}:Missing"], entry_points=False)
    assert [p.key for p in caught.value.problems] == ["plugins"]


async def test_inside_a_loop_without_the_dispatcher_coroutines_run_in_the_background(manager):
    asynchronous = AsyncRecorder()
    wired(manager, asynchronous, BrokenAsync())
    deliver(manager)
    for _ in range(5):
        await asyncio.sleep(0)
    assert [kind for kind, _ in asynchronous.seen] == ["status"]
    assert manager.hook_errors == 1


def test_plugins_registered_or_removed_after_dispatch_started_are_seen_at_once():
    clock = Clock(at("2026-11-30T09:00"))
    manager = MessageSessionManager(clock=clock)
    pm = make_plugin_manager(manager, entry_points=False)
    first: list[str] = []
    second: list[str] = []

    class First:
        @hookimpl
        def whatsapp_status_changed(self, change):
            first.append(change.message_id)

    class Second:
        @hookimpl
        def whatsapp_status_changed(self):  # takes none of the arguments
            second.append("called")

    pm.register(First(), name="first")
    HookEvents(pm, manager).attach(manager)
    manager.apply_receipt(Receipt("wamid.A", Status.SENT, clock()))
    later = Second()
    pm.register(later, name="second")
    manager.apply_receipt(Receipt("wamid.B", Status.SENT, clock()))
    pm.unregister(name="first")
    manager.apply_receipt(Receipt("wamid.C", Status.SENT, clock()))
    assert first == ["wamid.A", "wamid.B"]
    assert second == ["called", "called"]
