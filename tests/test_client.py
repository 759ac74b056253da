"""The outbound client against a local server that speaks the Graph API: sends run the send
middlewares, their ids are tracked, failures raise SendError and call whatsapp_send_failed."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from plugin.client import SendError, WhatsAppClient
from plugin.core.manager import MessageSessionManager
from plugin.hooks.hookspecs import hookimpl
from plugin.hooks.pipeline import MiddlewareRegistry, OutboundMessage, SendResult
from plugin.hooks.plugins import make_plugin_manager
from plugin.server.runtime import CLIENT_KEY, PLUGIN_MANAGER_KEY
from tests.providers import meta_body, meta_change, meta_inbound, meta_status, meta_status_body
from tests.serving import (
    ACCESS_TOKEN,
    GRAPH_ERROR,
    PHONE_NUMBER_ID,
    Clock,
    FakeGraph,
    make_app,
)
from tests.test_server import post_meta, stats


@pytest.fixture
async def graph(aiohttp_server):
    fake = FakeGraph()
    server = await aiohttp_server(fake.app)
    fake.url = str(server.make_url("/v21.0"))
    return fake


def sending(graph: FakeGraph) -> dict[str, Any]:
    return {"meta": {"access_token": ACCESS_TOKEN, "phone_number_id": PHONE_NUMBER_ID,
                     "api_base_url": graph.url}}


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
        1, 1, 1, 0)
    assert summary["receipts"]["applied"] == 3
    assert summary["receipts"]["adopted"] == 0


async def test_send_template(aiohttp_client, graph):
    app, manager = make_app(sending(graph))
    await aiohttp_client(app)
    components = [{"type": "body", "parameters": [{"type": "text", "text": "9:00"}]}]
    result = await app[CLIENT_KEY].send_template("16505551234", "appointment_reminder", "en_US",
                                                 components)
    payload = graph.requests[0]["payload"]
    assert payload["type"] == "template"
    assert payload["template"] == {"name": "appointment_reminder", "language": {"code": "en_US"},
                                   "components": components}
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
    async with WhatsAppClient(phone_number_id="1", access_token="t", plugins=plugins,
                              manager=manager,
                              api_base_url=f"http://127.0.0.1:{_closed_port()}") as client:
        with pytest.raises(SendError) as caught:
            await client.send_text("16505551234", "hello")
    assert caught.value.http_status is None
    assert "cannot reach the Graph API" in str(caught.value)
    assert len(watcher.failures) == 1


async def test_a_standalone_client_tracks_through_its_plugin_manager(graph):
    manager = MessageSessionManager(clock=Clock())
    plugins = make_plugin_manager(manager, entry_points=False)
    async with WhatsAppClient(phone_number_id="1", access_token="t", plugins=plugins,
                              manager=manager, api_base_url=graph.url) as client:
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
