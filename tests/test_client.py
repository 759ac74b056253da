"""The outbound client against a local server that speaks the Graph API: sends run the send
middlewares, their ids are tracked, failures raise SendError and call whatsapp_send_failed.
A message the provider accepted is never reported as failed (tracking waits for a store that went
away), and idempotent sends call the provider once per key, across replicas on one Redis."""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

import pytest
import redis
from aiohttp import web

from plugin.client import SendError, WhatsAppClient
from plugin.core.manager import MessageSessionManager
from plugin.hooks.hookspecs import hookimpl
from plugin.hooks.pipeline import MiddlewareRegistry, OutboundMessage, SendResult
from plugin.hooks.plugins import make_plugin_manager
from plugin.server.app import create_app
from plugin.server.runtime import CLIENT_KEY, MANAGER_KEY, PLUGIN_MANAGER_KEY
from plugin.stores.deferred import deferred_writes
from tests.providers import meta_body, meta_change, meta_inbound, meta_status, meta_status_body
from tests.redis_private import PrivateRedis, private_redis
from tests.redis_support import redis_prefix, redis_url
from tests.serving import (
    ACCESS_TOKEN,
    GRAPH_ERROR,
    PHONE_NUMBER_ID,
    Clock,
    FakeGraph,
    make_app,
    make_settings,
)
from tests.test_server import post_meta, stats

__all__ = ["private_redis", "redis_prefix", "redis_url"]  # fixtures used here

NUMBER = "16505551234"


class SlowGraph(FakeGraph):
    """The Graph API, answering after ``delay`` seconds (concurrent sends overlap);
    ``on_request`` runs once, between receiving a request and answering it."""

    delay = 0.0
    on_request: Any = None

    async def messages(self, request: web.Request) -> web.Response:
        await asyncio.sleep(self.delay)
        if self.on_request is not None:
            self.on_request()
            self.on_request = None
        return await super().messages(request)


@pytest.fixture
async def graph(aiohttp_server):
    fake = SlowGraph()
    server = await aiohttp_server(fake.app)
    fake.url = str(server.make_url("/v21.0"))
    return fake


def sending(graph: FakeGraph) -> dict[str, Any]:
    return {
        "meta": {
            "access_token": ACCESS_TOKEN,
            "phone_number_id": PHONE_NUMBER_ID,
            "api_base_url": graph.url,
        }
    }


async def test_a_send_and_its_receipts_complete_the_funnel(aiohttp_client, graph):
    clock = Clock()
    app, manager = make_app(sending(graph), clock=clock)
    client = await aiohttp_client(app)
    whatsapp = app[CLIENT_KEY]
    assert isinstance(whatsapp, WhatsAppClient)
    result = await whatsapp.send_text("+16505551234", "Your appointment is tomorrow at 9:00")
    assert result == SendResult("wamid.SENT0001", "16505551234", "meta", result.raw)
    request = graph.requests[0]
    assert request["phone_number_id"] == PHONE_NUMBER_ID
    assert request["authorization"] == f"Bearer {ACCESS_TOKEN}"
    assert request["payload"]["text"]["body"] == "Your appointment is tomorrow at 9:00"
    assert request["payload"]["to"] == "+16505551234"
    assert manager.tracked_messages == 1
    summary = (await stats(client))["summary"]
    assert (summary["sent"], summary["pending"], summary["delivered"]) == (1, 1, 0)

    stamp = str(int(clock.now))
    for status in ("sent", "delivered", "read"):
        clock.advance(30)
        body = meta_status_body([meta_status("wamid.SENT0001", status, timestamp=stamp)])
        assert (await post_meta(client, body)).status == 200
    summary = (await stats(client))["summary"]
    assert (summary["sent"], summary["delivered"], summary["read"], summary["pending"]) == (
        1,
        1,
        1,
        0,
    )
    assert summary["receipts"]["applied"] == 3
    assert summary["receipts"]["adopted"] == 0


async def test_send_template(aiohttp_client, graph):
    app, manager = make_app(sending(graph))
    await aiohttp_client(app)
    components = [{"type": "body", "parameters": [{"type": "text", "text": "9:00"}]}]
    result = await app[CLIENT_KEY].send_template(
        "16505551234", "appointment_reminder", "en_US", components
    )
    payload = graph.requests[0]["payload"]
    assert payload["type"] == "template"
    assert payload["template"] == {
        "name": "appointment_reminder",
        "language": {"code": "en_US"},
        "components": components,
    }
    assert result.raw["messages"][0]["message_status"] == "accepted"
    assert manager.tracked_messages == 1


class SendWatcher:
    def __init__(self, fail_hook: bool = False) -> None:
        self.around: list[tuple[str, Any]] = []
        self.failures: list[tuple[OutboundMessage, Exception]] = []
        self.fail_hook = fail_hook

    async def middleware(self, handler, event, data):
        self.around.append(("before", event.to))
        result = await handler(event, data)
        self.around.append(("after", result.message_id))
        return result

    @hookimpl
    def whatsapp_register_middlewares(self, register: MiddlewareRegistry) -> None:
        register.send(self.middleware)

    @hookimpl
    async def whatsapp_send_failed(self, message, error):
        self.failures.append((message, error))
        if self.fail_hook:
            raise RuntimeError("alerting is down")


async def test_send_middlewares_run_around_the_provider_call(aiohttp_client, graph):
    app, _ = make_app(sending(graph))
    watcher = SendWatcher()
    app[PLUGIN_MANAGER_KEY].register(watcher)
    await aiohttp_client(app)
    await app[CLIENT_KEY].send_text("16505551234", "hello")
    assert watcher.around == [("before", "16505551234"), ("after", "wamid.SENT0001")]


async def test_a_provider_error_raises_send_error_and_calls_send_failed(aiohttp_client, graph):
    app, manager = make_app(sending(graph))
    watcher = SendWatcher(fail_hook=True)
    app[PLUGIN_MANAGER_KEY].register(watcher)
    await aiohttp_client(app)
    graph.fail_with = (400, GRAPH_ERROR)
    with pytest.raises(SendError) as caught:
        await app[CLIENT_KEY].send_text("16505551234", "hello")
    error = caught.value
    assert (error.code, error.http_status, error.trace_id) == ("131030", 400, "AbCdEf123")
    assert error.message.startswith("(#131030) Recipient phone number not in allowed list")
    assert error.details is not None and "allowed list" in error.details
    assert "code 131030" in str(error) and "HTTP 400" in str(error)
    assert len(watcher.failures) == 1
    message, reported = watcher.failures[0]
    assert message.to == "16505551234" and reported is error
    assert manager.tracked_messages == 0
    assert manager.hook_errors == 1  # the failing send_failed hook, isolated and counted


async def test_an_answer_without_an_error_object_is_still_a_send_error(aiohttp_client, graph):
    app, _ = make_app(sending(graph))
    await aiohttp_client(app)
    graph.fail_with = (502, {"unexpected": True})
    with pytest.raises(SendError) as caught:
        await app[CLIENT_KEY].send_text("16505551234", "hello")
    assert caught.value.http_status == 502 and caught.value.code is None
    graph.fail_with = (200, {"messaging_product": "whatsapp", "messages": []})
    with pytest.raises(SendError, match=r"messages\[0\]\.id"):
        await app[CLIENT_KEY].send_text("16505551234", "hello")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_an_unreachable_api_raises_send_error_without_status():
    manager = MessageSessionManager(clock=Clock())
    plugins = make_plugin_manager(manager, entry_points=False)
    watcher = SendWatcher()
    plugins.register(watcher)
    async with WhatsAppClient(
        phone_number_id="1",
        access_token="t",
        plugins=plugins,
        manager=manager,
        api_base_url=f"http://127.0.0.1:{_closed_port()}",
    ) as client:
        with pytest.raises(SendError) as caught:
            await client.send_text("16505551234", "hello")
    assert caught.value.http_status is None
    assert "cannot reach the Graph API" in str(caught.value)
    assert len(watcher.failures) == 1


async def test_a_standalone_client_tracks_through_its_plugin_manager(graph):
    manager = MessageSessionManager(clock=Clock())
    plugins = make_plugin_manager(manager, entry_points=False)
    async with WhatsAppClient(
        phone_number_id="1",
        access_token="t",
        plugins=plugins,
        manager=manager,
        api_base_url=graph.url,
    ) as client:
        await client.send_text("+16505551234", "hello")
    assert [record[0] for record in manager.records()] == ["wamid.SENT0001"]


async def test_no_client_without_access_token_and_phone_number_id(aiohttp_client):
    app, _ = make_app()
    await aiohttp_client(app)
    assert app[CLIENT_KEY] is None


class Replier:
    @hookimpl
    async def whatsapp_message_received(self, message, client):
        await client.send_text(message.sender, f"echo: {message.text}")


async def test_inbound_hooks_get_the_client_and_can_reply(aiohttp_client, graph):
    app, manager = make_app(sending(graph))
    app[PLUGIN_MANAGER_KEY].register(Replier())
    client = await aiohttp_client(app)
    body = meta_body([meta_change(messages=[meta_inbound("wamid.IN", text="hi")])])
    assert (await post_meta(client, body)).status == 200
    assert graph.requests[0]["payload"]["text"]["body"] == "echo: hi"
    assert manager.tracked_messages == 1


# --- a message the provider accepted is never reported as failed ----------------------------


class FailsAfterAccept:
    """A CRM-sync middleware that raises after the provider accepted the message."""

    async def middleware(self, handler, event, data):
        await handler(event, data)
        raise RuntimeError("the CRM is down")

    @hookimpl
    def whatsapp_register_middlewares(self, register: MiddlewareRegistry) -> None:
        register.send(self.middleware)


async def test_a_middleware_failing_after_the_provider_accepted_does_not_fail_the_send(
    aiohttp_client, graph
):
    app, manager = make_app(sending(graph))
    watcher = SendWatcher()
    app[PLUGIN_MANAGER_KEY].register(watcher)
    app[PLUGIN_MANAGER_KEY].register(FailsAfterAccept())  # registered last: outermost
    await aiohttp_client(app)
    result = await app[CLIENT_KEY].send_text(NUMBER, "hello")
    assert (result.message_id, result.to) == ("wamid.SENT0001", NUMBER)
    assert watcher.failures == []
    assert manager.hook_errors == 1  # the middleware, logged and counted
    assert manager.tracked_messages == 1


async def wait_for(predicate: Any, timeout: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


def redis_sending_app(graph: FakeGraph, url: str, prefix: str, clock: Clock) -> web.Application:
    settings = make_settings(
        {**sending(graph), "store": "redis", "redis_url": url, "redis_prefix": prefix}
    )
    return create_app(settings, clock=clock, entry_points=False)


async def metric_lines(client: Any) -> list[str]:
    response = await client.get("/metrics")
    assert response.status == 200
    return (await response.text()).splitlines()


async def test_sends_accepted_while_redis_is_away_are_returned_and_tracked_once_it_is_back(
    private_redis: PrivateRedis, aiohttp_client, graph, caplog
):  # private_redis first: it stops after the application
    caplog.set_level(logging.INFO)
    clock = Clock()
    app = redis_sending_app(graph, private_redis.url, "client-fault", clock)
    watcher = SendWatcher()
    app[PLUGIN_MANAGER_KEY].register(watcher)
    client = await aiohttp_client(app)
    whatsapp, store = app[CLIENT_KEY], app[MANAGER_KEY]
    writes = deferred_writes(store)
    writes.first_delay, writes.max_delay = 0.05, 0.2

    # Redis dies while the Graph API handles the first send (claimed under its key).
    graph.on_request = private_redis.kill
    first = await whatsapp.send_text(
        "+" + NUMBER, "Your appointment is tomorrow", idempotency_key="appointment-1"
    )
    assert (first.message_id, first.to, first.replayed) == ("wamid.SENT0001", NUMBER, False)
    # Redis is away: a send without a key goes out, its tracking waits.
    second = await whatsapp.send_text(NUMBER, "Please bring your card")
    assert second.message_id == "wamid.SENT0002"
    # A send with a key cannot check it: nothing is sent (no duplicate reminder).
    with pytest.raises(SendError, match="nothing was sent"):
        await whatsapp.send_text(
            NUMBER, "Your appointment is tomorrow", idempotency_key="appointment-1"
        )
    assert len(graph.requests) == 2
    assert watcher.failures == []  # no accepted message reported as failed
    assert [step for step, _ in watcher.around].count("after") == 2
    assert (writes.deferred["track"], writes.deferred["idempotency"], writes.pending) == (2, 1, 3)
    deferrals = [r.getMessage() for r in caplog.records if "deferred" in r.getMessage()]
    assert any("tracking of wamid.SENT0001 to ~" in line for line in deferrals)
    assert NUMBER not in caplog.text  # recipients redacted

    private_redis.start()  # back, empty (no persistence)
    await wait_for(lambda: writes.pending == 0)
    assert (writes.recovered["track"], writes.recovered["idempotency"]) == (2, 1)
    assert sum(writes.dropped.values()) == 0

    again = await whatsapp.send_text(
        NUMBER, "Your appointment is tomorrow", idempotency_key="appointment-1"
    )
    assert (again.message_id, again.replayed) == ("wamid.SENT0001", True)
    assert len(graph.requests) == 2
    stamp = str(int(clock.now))
    body = meta_status_body(
        [meta_status(m, "delivered", timestamp=stamp) for m in ("wamid.SENT0001", "wamid.SENT0002")]
    )
    assert (await post_meta(client, body)).status == 200
    summary = (await stats(client))["summary"]
    assert (summary["receipts"]["applied"], summary["receipts"]["adopted"]) == (2, 0)
    assert (summary["sent"], summary["delivered"]) == (2, 2)
    lines = await metric_lines(client)
    assert 'wa_sessions_tracking_deferred_total{kind="track"} 2.0' in lines
    assert 'wa_sessions_tracking_recovered_total{kind="idempotency"} 1.0' in lines
    assert "wa_sessions_tracking_pending 0.0" in lines
    assert "wa_sessions_sends_replayed_total 1.0" in lines


# --- idempotent sends -----------------------------------------------------------------------


async def test_a_repeated_idempotency_key_answers_the_first_result_without_sending(
    aiohttp_client, graph
):
    app, manager = make_app(sending(graph))
    client = await aiohttp_client(app)
    whatsapp = app[CLIENT_KEY]
    first = await whatsapp.send_template(
        NUMBER, "appointment_reminder", "en_US", idempotency_key="appointment-7"
    )
    again = await whatsapp.send_template(
        NUMBER, "appointment_reminder", "en_US", idempotency_key="appointment-7"
    )
    assert len(graph.requests) == 1
    assert (again.message_id, again.to, again.provider) == (first.message_id, first.to, "meta")
    assert (first.replayed, again.replayed) == (False, True)
    other = await whatsapp.send_text(NUMBER, "hello", idempotency_key="appointment-8")
    unkeyed = [await whatsapp.send_text(NUMBER, "hello") for _ in range(2)]
    assert [other.message_id, *(r.message_id for r in unkeyed)] == [
        "wamid.SENT0002",
        "wamid.SENT0003",
        "wamid.SENT0004",
    ]
    assert manager.tracked_messages == 4
    assert "wa_sessions_sends_replayed_total 1.0" in await metric_lines(client)
    with pytest.raises(ValueError):
        await whatsapp.send_text(NUMBER, "hello", idempotency_key="")


async def test_concurrent_calls_with_one_key_make_one_provider_call(aiohttp_client, graph):
    app, manager = make_app(sending(graph))
    await aiohttp_client(app)
    graph.delay = 0.05
    whatsapp = app[CLIENT_KEY]
    results = await asyncio.gather(
        *(whatsapp.send_text(NUMBER, "hello", idempotency_key="appointment-9") for _ in range(20))
    )
    assert len(graph.requests) == 1
    assert {result.message_id for result in results} == {"wamid.SENT0001"}
    assert sum(not result.replayed for result in results) == 1
    assert manager.tracked_messages == 1 and whatsapp.replayed == 19


async def test_a_failed_send_frees_its_key_and_concurrent_duplicates_share_the_error(
    aiohttp_client, graph
):
    app, manager = make_app(sending(graph))
    watcher = SendWatcher()
    app[PLUGIN_MANAGER_KEY].register(watcher)
    await aiohttp_client(app)
    whatsapp = app[CLIENT_KEY]
    graph.fail_with, graph.delay = (400, GRAPH_ERROR), 0.05
    outcomes = await asyncio.gather(
        *(whatsapp.send_text(NUMBER, "hello", idempotency_key="appointment-3") for _ in range(5)),
        return_exceptions=True,
    )
    assert len(graph.requests) == 1 and len(watcher.failures) == 1
    assert all(isinstance(o, SendError) and o.code == "131030" for o in outcomes)
    graph.fail_with = None
    retry = await whatsapp.send_text(NUMBER, "hello", idempotency_key="appointment-3")
    assert (retry.message_id, retry.replayed, len(graph.requests)) == ("wamid.SENT0002", False, 2)
    again = await whatsapp.send_text(NUMBER, "hello", idempotency_key="appointment-3")
    assert (again.message_id, again.replayed, len(graph.requests)) == ("wamid.SENT0002", True, 2)
    assert manager.tracked_messages == 1


async def test_two_replicas_on_one_redis_send_a_key_once(
    aiohttp_client, graph, redis_url, redis_prefix
):
    clock = Clock()
    apps = [redis_sending_app(graph, redis_url, redis_prefix, clock) for _ in range(2)]
    for app in apps:
        await aiohttp_client(app)
    clients = [app[CLIENT_KEY] for app in apps]
    graph.delay = 0.1
    results = await asyncio.gather(
        *(
            clients[index % 2].send_template(
                NUMBER, "appointment_reminder", "en_US", idempotency_key="appointment-42"
            )
            for index in range(20)
        )
    )
    assert len(graph.requests) == 1
    assert {result.message_id for result in results} == {"wamid.SENT0001"}
    assert sum(not result.replayed for result in results) == 1
    graph.delay = 0.0
    later = await clients[1].send_text(NUMBER, "hello", idempotency_key="appointment-42")
    assert (later.message_id, later.to, later.replayed) == ("wamid.SENT0001", NUMBER, True)
    assert len(graph.requests) == 1
    assert (await apps[1][MANAGER_KEY].get_all_stats())["summary"]["sent"] == 1

    # The record: a digest for a name, the message id and provider for a value, one window.
    direct = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        names = list(direct.scan_iter(match="{" + redis_prefix + "}:i:*"))
        assert len(names) == 1 and "appointment" not in names[0]
        assert direct.get(names[0]) == 'd:{"id":"wamid.SENT0001","provider":"meta"}'
        assert 23 * 3600_000 < direct.pttl(names[0]) <= 24 * 3600_000
        index = direct.zrange("{" + redis_prefix + "}:idem", 0, -1)
        assert index == [names[0].rsplit(":", 1)[1]]  # digests only: no key, no recipient
    finally:
        direct.close()


async def test_a_send_failed_on_one_replica_can_be_retried_on_another(
    aiohttp_client, graph, redis_url, redis_prefix
):
    clock = Clock()
    apps = [redis_sending_app(graph, redis_url, redis_prefix, clock) for _ in range(2)]
    for app in apps:
        await aiohttp_client(app)
    first, second = (app[CLIENT_KEY] for app in apps)
    graph.fail_with = (400, GRAPH_ERROR)
    with pytest.raises(SendError):
        await first.send_text(NUMBER, "hello", idempotency_key="appointment-5")
    graph.fail_with = None
    retry = await second.send_text(NUMBER, "hello", idempotency_key="appointment-5")
    assert (retry.message_id, retry.replayed) == ("wamid.SENT0002", False)
    again = await first.send_text(NUMBER, "hello", idempotency_key="appointment-5")
    assert (again.message_id, again.replayed) == ("wamid.SENT0002", True)
    assert len(graph.requests) == 2


async def test_idempotency_records_on_redis_are_capped_oldest_first(
    aiohttp_client, graph, redis_url, redis_prefix
):
    app = redis_sending_app(graph, redis_url, redis_prefix, Clock())
    await aiohttp_client(app)
    ledger = app[MANAGER_KEY].send_ledger()
    ledger.capacity = 3  # type: ignore[attr-defined]
    whatsapp = app[CLIENT_KEY]
    for index in range(5):
        await whatsapp.send_text(NUMBER, "hello", idempotency_key=f"appointment-{index}")
    direct = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        assert direct.zcard("{" + redis_prefix + "}:idem") == 3
        assert len(list(direct.scan_iter(match="{" + redis_prefix + "}:i:*"))) == 3
    finally:
        direct.close()
    newest = await whatsapp.send_text(NUMBER, "hello", idempotency_key="appointment-4")
    assert newest.replayed and len(graph.requests) == 5
    oldest = await whatsapp.send_text(NUMBER, "hello", idempotency_key="appointment-0")
    assert not oldest.replayed and len(graph.requests) == 6  # dropped: it is a new send


async def test_the_clinic_bot_sends_one_reminder_per_appointment(
    aiohttp_client, graph, monkeypatch
):
    from examples.clinic_bot import bot

    monkeypatch.setenv("WHATSAPP_META__ACCESS_TOKEN", ACCESS_TOKEN)
    monkeypatch.setenv("WHATSAPP_META__APP_SECRET", "clinic-secret")
    monkeypatch.setenv("WHATSAPP_META__API_BASE_URL", graph.url)
    client = await aiohttp_client(bot.build_app(clock=Clock(), entry_points=False))
    appointment = {
        "appointment_id": "A-1001",
        "phone": "+573001234567",
        "patient": "Ana",
        "when": "martes 9:00",
    }
    answers = [
        await (await client.post("/reminders", json=appointment)).json() for _ in range(2)
    ]  # the scheduler retried
    assert len(graph.requests) == 1
    assert answers == [
        {"message_id": "wamid.SENT0001", "replayed": False},
        {"message_id": "wamid.SENT0001", "replayed": True},
    ]


# --- the send path tracks message keys ------------------------------------------------------


class WahaClient(WhatsAppClient):
    """A client whose provider call goes to WAHA: it answers with WAHA's serialized id, which
    embeds the chat's number."""

    sent_as = f"true_{NUMBER}@c.us_3EB0C767D71D4A0B6E8D"

    async def _deliver(self, message: Any, data: dict[str, Any]) -> SendResult:
        return SendResult(self.sent_as, NUMBER, "waha")


async def test_sends_are_tracked_by_their_message_key_and_meet_acks_in_any_chat_form(
    aiohttp_client,
):
    from tests.providers import waha_ack_body, waha_headers

    settings = make_settings({"waha": {"hmac_key": "waha-key"}})
    manager = MessageSessionManager.from_settings(settings, clock=Clock())
    plugins = make_plugin_manager(manager, entry_points=False)
    whatsapp = WahaClient(phone_number_id="1", access_token="t", plugins=plugins, manager=manager)
    app = create_app(settings, manager=manager, plugins=plugins, client=whatsapp)
    client = await aiohttp_client(app)
    first = await whatsapp.send_text(NUMBER, "hello", idempotency_key="appointment-11")
    assert first.message_id == WahaClient.sent_as  # what the provider answered, untouched
    assert [record[0] for record in manager.records()] == ["3EB0C767D71D4A0B6E8D"]
    again = await whatsapp.send_text(NUMBER, "hello", idempotency_key="appointment-11")
    assert (again.message_id, again.provider, again.replayed) == (
        "3EB0C767D71D4A0B6E8D",
        "waha",
        True,
    )  # the record keeps the key: no number

    body = waha_ack_body("true_123456789012345@lid_3EB0C767D71D4A0B6E8D", ack=2)
    response = await client.post(
        "/webhooks/waha", data=body, headers=waha_headers(body, "waha-key")
    )
    assert response.status == 200
    summary = (await stats(client))["summary"]
    assert (summary["receipts"]["applied"], summary["receipts"]["adopted"]) == (1, 0)
    assert (summary["sent"], summary["delivered"]) == (1, 1)


# --- tags -----------------------------------------------------------------------------------


@pytest.mark.parametrize("store", ["memory", "redis"])
async def test_sends_are_counted_under_their_tag(aiohttp_client, graph, store, request):
    extra: dict[str, Any] = {}
    if store == "redis":
        extra = {
            "store": "redis",
            "redis_url": request.getfixturevalue("redis_url"),
            "redis_prefix": request.getfixturevalue("redis_prefix"),
        }
    app = create_app(make_settings({**sending(graph), **extra}), clock=Clock(), entry_points=False)
    client = await aiohttp_client(app)
    whatsapp = app[CLIENT_KEY]
    await whatsapp.send_template(NUMBER, "appointment_reminder", "en_US")  # tag: its name
    await whatsapp.send_template(NUMBER, "appointment_reminder", "en_US", tag="reminders")
    await whatsapp.send_text(NUMBER, "Your results are ready", tag="lab_results")
    await whatsapp.send_text(NUMBER, "hello")  # in no tag
    session = (await stats(client))["sessions"][0]
    assert session["sent"] == 4
    assert {tag: funnel["sent"] for tag, funnel in session["tags"].items()} == {
        "appointment_reminder": 1,
        "reminders": 1,
        "lab_results": 1,
    }
