"""Anything a client can send gets an answer, never a 500 or a traceback: header bytes that
are not ASCII, a Host no URL parser accepts, signed bodies whose fields are wrong in every way.
Bad items are rejected and counted, the good ones of the same batch applied, on both stores."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from plugin.core.model import Receipt
from plugin.core.records import message_key
from plugin.hooks.hookspecs import hookimpl
from plugin.hooks.pipeline import MiddlewareRegistry
from plugin.server.runtime import MANAGER_KEY, RUNTIME_KEY
from tests.providers import (
    DEFAULT_TIMESTAMP,
    bridge_ack,
    bridge_body,
    meta_body,
    meta_change,
    meta_status,
    twilio_body,
    twilio_form,
    waha_ack_body,
)
from tests.rawhttp import raw_request
from tests.redis_support import redis_prefix, redis_url
from tests.serving import Clock
from tests.webhook_apps import (
    PROVIDERS,
    check_invariants,
    provider_app,
    signed_headers,
    tracebacks,
)

__all__ = ["redis_prefix", "redis_url"]  # fixtures used here

SIGNATURE_HEADERS = {
    "meta": b"X-Hub-Signature-256",
    "twilio": b"X-Twilio-Signature",
    "waha": b"X-Webhook-Hmac",
    "bridge": b"X-Bridge-Signature",
}
NOT_ASCII = [b"\xff\xfe\x80", b"sha256=\xc3\xa9" + b"0" * 62, b"\xed\xa0\x80", b"sha256=\x80\x81"]


@pytest.fixture(params=["memory", "redis"])
def store_app(request: pytest.FixtureRequest) -> Any:
    """A factory of provider apps on the parametrized store."""
    redis = None
    if request.param == "redis":
        redis = (request.getfixturevalue("redis_url"), request.getfixturevalue("redis_prefix"))

    def build(clock: Clock | None = None, **extra: Any) -> Any:
        return provider_app(request.param, clock or Clock(), redis, **extra)

    return build


def sample_body(provider: str) -> bytes:
    if provider == "meta":
        return meta_body([meta_change(statuses=[meta_status("wamid.OK1", "sent")])])
    if provider == "twilio":
        return twilio_body(twilio_form("SM" + "b" * 32, "sent"))
    if provider == "waha":
        return waha_ack_body(ack=1)
    return bridge_body([bridge_ack("3EB0OK", 1, DEFAULT_TIMESTAMP)])


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("value", NOT_ASCII)
async def test_a_signature_header_that_is_not_ascii_is_403(aiohttp_server, caplog, provider, value):
    server = await aiohttp_server(provider_app("memory", Clock()))
    body = sample_body(provider)
    with caplog.at_level(logging.WARNING):
        response = await raw_request(
            server.host,
            server.port,
            f"/webhooks/{provider}".encode(),
            [(SIGNATURE_HEADERS[provider], value)],
            body,
        )
    assert response.status == 403
    assert tracebacks(caplog.records) == []
    assert server.app[RUNTIME_KEY].webhooks[provider].unauthorized == 1


async def test_a_control_byte_in_a_header_is_400_from_http_without_a_traceback(
    aiohttp_server, caplog
):
    server = await aiohttp_server(provider_app("memory", Clock()))
    with caplog.at_level(logging.WARNING):
        response = await raw_request(
            server.host,
            server.port,
            b"/webhooks/meta",
            [(b"X-Hub-Signature-256", b"sha256=\x00")],
            b"{}",
        )
    assert response.status == 400
    assert tracebacks(caplog.records) == []
    assert "malformed HTTP request refused" in caplog.text


@pytest.mark.parametrize("route", [b"/sessions/stats", b"/sessions/debug", b"/metrics"])
@pytest.mark.parametrize("value", [b"Bearer \xff\xfe", b"Bearer t\xc3\xa9", b"\xed\xa0\x80 x"])
async def test_an_authorization_header_that_is_not_ascii_is_401(
    aiohttp_server, caplog, route, value
):
    app = provider_app("memory", Clock(), server={"admin_token": "admin-token"})
    server = await aiohttp_server(app)
    with caplog.at_level(logging.WARNING):
        response = await raw_request(
            server.host, server.port, route, [(b"Authorization", value)], method=b"GET"
        )
    assert response.status == 401
    assert tracebacks(caplog.records) == []
    good = await raw_request(
        server.host, server.port, route, [(b"Authorization", b"Bearer admin-token")], method=b"GET"
    )
    assert good.status == 200


@pytest.mark.parametrize("host", [b"x:99999", b"[", b"bot.example.com:-1", b"\xff", b"a/b"])
async def test_twilio_signs_public_url_and_raw_path_never_the_host(aiohttp_server, caplog, host):
    server = await aiohttp_server(provider_app("memory", Clock()))
    path = "/webhooks/twilio?tenant=a%20b&x=1"
    body = twilio_body(twilio_form("SM" + "c" * 32, "delivered"))
    headers = signed_headers("twilio", body, path)
    with caplog.at_level(logging.WARNING):
        response = await raw_request(
            server.host,
            server.port,
            path.encode(),
            [(b"Host", host), *((k.encode(), v.encode()) for k, v in headers.items())],
            body,
        )
    assert response.status == 200, response.body
    assert tracebacks(caplog.records) == []
    assert server.app[RUNTIME_KEY].webhooks["twilio"].receipts == 1


async def test_twilio_without_public_url_is_403_not_500_on_a_bad_host(aiohttp_server, caplog):
    app = provider_app("memory", Clock(), twilio={"auth_token": "t", "public_url": None})
    server = await aiohttp_server(app)
    body = twilio_body(twilio_form("SM" + "c" * 32, "delivered"))
    with caplog.at_level(logging.WARNING):
        response = await raw_request(
            server.host,
            server.port,
            b"/webhooks/twilio",
            [(b"Host", b"x:99999"), (b"X-Twilio-Signature", b"abc=")],
            body,
        )
    assert response.status == 403
    assert tracebacks(caplog.records) == []


BAD_STATUSES: list[dict[str, Any]] = [
    meta_status("wamid.B01", "delivered", recipient_id="\ud800"),
    meta_status("wamid.B02", "delivered", recipient_id="\u00b2"),
    meta_status("wamid.B03", "delivered", recipient_id="+1650555123\u0661"),
    meta_status("wamid.B04", "delivered", recipient_id=["16505551234"]),
    meta_status("wamid.B05", "failed", errors=[{"code": "\u00b2", "title": "x"}]),
    meta_status("wamid.B06", "failed", errors=[{"code": 10**40, "title": "x"}]),
    meta_status("wamid.B07", "failed", errors=[{"code": "13\ud80004"}]),
    meta_status("wamid.B08", "delivered", timestamp="1e400"),
    meta_status("wamid.B09", "delivered", timestamp="\u0661\u0662\u0663"),
    meta_status("wamid.B10", "delivered", timestamp=float("nan")),
    meta_status("wamid.B11", "delivered", timestamp=-5),
    meta_status("wamid.B12", "delivered", timestamp=10**30),
    meta_status("wamid.\ud800", "delivered"),
    meta_status("wamid.\x00B14", "delivered"),
    meta_status("wamid.B15\u00e9", "delivered"),
    meta_status("x" * 129, "delivered"),
    meta_status("wamid.B17", "delivered", recipient_id=None, recipient_user_id="US.\ud800"),
]


async def test_bad_fields_are_rejected_and_the_good_items_of_the_batch_applied(
    aiohttp_client, caplog, store_app
):
    app = store_app()
    client = await aiohttp_client(app)
    good = [meta_status(f"wamid.GOOD{index}", "delivered") for index in range(3)]
    good.append(
        meta_status(
            "wamid.GOOD3",
            "failed",
            recipient_id=None,
            errors=[{"code": 131026, "title": "\ud800 undeliverable"}],
        )
    )
    statuses = [good[0], *BAD_STATUSES[:8], good[1], *BAD_STATUSES[8:], good[2], good[3]]
    body = json.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [{"id": "1", "changes": [meta_change(statuses=statuses)]}],
        },
        allow_nan=True,
    ).encode()
    with caplog.at_level(logging.WARNING):
        response = await client.post(
            "/webhooks/meta", data=body, headers=signed_headers("meta", body)
        )
    assert response.status == 200
    assert tracebacks(caplog.records) == []
    document = await check_invariants(client, app)
    counters = document["webhooks"]["meta"]
    assert (counters["receipts"], counters["rejected"]) == (4, len(BAD_STATUSES))
    assert document["summary"]["receipts"]["adopted"] == 4
    assert (document["summary"]["delivered"], document["summary"]["failed"]) == (3, 1)


async def test_bad_acks_are_rejected_on_every_ack_route(aiohttp_client, caplog, store_app):
    app = store_app()
    client = await aiohttp_client(app)
    bad_acks: list[dict[str, Any]] = [
        bridge_ack("3EB0X1", 2, to="\u00b2@c.us"),
        bridge_ack("3EB0X2", 2, to="\ud800"),
        bridge_ack("true_16505551234@c.us_", 2),
        bridge_ack("3EB0X4", 2, timestamp=float("inf")),
        bridge_ack("3EB0\u2028X5", 2),
    ]
    body = json.dumps(
        {
            "library": "whatsapp-web.js",
            "acks": [bridge_ack("3EB0G1", 2), *bad_acks, bridge_ack("3EB0G2", 3)],
        },
        allow_nan=True,
    ).encode()
    waha = waha_ack_body("true_\u00b2@c.us_3EB0W1", 3, to=None, **{"from": None})
    with caplog.at_level(logging.WARNING):
        first = await client.post(
            "/webhooks/bridge", data=body, headers=signed_headers("bridge", body)
        )
        second = await client.post(
            "/webhooks/waha", data=waha, headers=signed_headers("waha", waha)
        )
    assert (first.status, second.status) == (200, 200)
    assert tracebacks(caplog.records) == []
    document = await check_invariants(client, app)
    assert document["webhooks"]["bridge"]["receipts"] == 2
    assert document["webhooks"]["bridge"]["rejected"] == len(bad_acks)
    assert document["webhooks"]["waha"]["rejected"] == 1


async def test_an_ack_with_an_lid_chat_matches_a_send_answered_with_c_us(aiohttp_client, store_app):
    app = store_app()
    client = await aiohttp_client(app)
    sent_as = "true_16505551234@c.us_3EB0C767D71D4A0B6E8D"  # what the send answered
    store = app[MANAGER_KEY]
    assert await store.track_sent(message_key("waha", sent_as), "16505551234")
    for raw_id, ack in (
        ("true_123456789012345@lid_3EB0C767D71D4A0B6E8D", 2),
        ("3EB0C767D71D4A0B6E8D", 3),
    ):
        body = waha_ack_body(raw_id, ack, **{"from": "123456789012345@lid"})
        response = await client.post(
            "/webhooks/waha", data=body, headers=signed_headers("waha", body)
        )
        assert response.status == 200
    document = await check_invariants(client, app)
    assert document["summary"]["receipts"]["applied"] == 2
    assert document["summary"]["receipts"]["adopted"] == 0
    assert (document["summary"]["sent"], document["summary"]["read"]) == (1, 1)


async def test_no_phone_number_in_a_tracked_serialized_id(aiohttp_client):
    app = provider_app("memory", Clock())
    client = await aiohttp_client(app)
    body = bridge_body(
        [bridge_ack("false_120363025246125486@g.us_3EB0AB_16505551234@c.us", 2, DEFAULT_TIMESTAMP)]
    )
    response = await client.post(
        "/webhooks/bridge", data=body, headers=signed_headers("bridge", body)
    )
    assert response.status == 200
    manager = app[MANAGER_KEY].manager  # type: ignore[attr-defined]  # the in-memory store's
    assert [record[0] for record in manager.records()] == ["3EB0AB"]


class Gate:
    """A receive middleware that stops receipts of ids ending in STOP and raises on BOOM."""

    @hookimpl
    def whatsapp_register_middlewares(self, register: MiddlewareRegistry) -> None:
        async def gate(handler: Any, event: Any, data: dict[str, Any]) -> Any:
            if isinstance(event, Receipt) and event.message_id.endswith("STOP"):
                return None
            if isinstance(event, Receipt) and event.message_id.endswith("BOOM"):
                raise RuntimeError("middleware failed")
            return await handler(event, data)

        register.receive(gate)


async def test_every_parsed_receipt_has_one_fate_with_middlewares(
    aiohttp_client, store_app, caplog
):
    app = store_app(plugins=[Gate()])
    client = await aiohttp_client(app)
    statuses = [meta_status(f"wamid.{name}", "sent") for name in ("OK1", "STOP", "BOOM", "OK2")]
    body = meta_body([meta_change(statuses=statuses)])
    with caplog.at_level(logging.ERROR):
        response = await client.post(
            "/webhooks/meta", data=body, headers=signed_headers("meta", body)
        )
    assert response.status == 200
    counters = app[RUNTIME_KEY].webhooks["meta"]
    assert (counters.receipts, sum(counters.outcomes.values())) == (4, 2)
    assert (counters.stopped, counters.errors) == (1, 1)
    assert "receive middleware failed" in caplog.text  # the one that raised is logged
    document = await (await client.get("/sessions/stats")).json()
    assert sum(document["summary"]["receipts"].values()) == 2
