"""The webhook server end to end, through real HTTP on the test server: each provider's signed
receipts reach /sessions/stats, every refusal has its status, hooks cannot change an answer."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from aiohttp import web

from plugin.core.errors import SettingsError
from plugin.core.model import Outcome, Receipt
from plugin.hooks.hookspecs import hookimpl
from plugin.hooks.pipeline import MiddlewareRegistry
from plugin.server.app import create_app, setup
from plugin.server.runtime import MANAGER_KEY, PLUGIN_MANAGER_KEY, RUNTIME_KEY
from tests.providers import (
    DEFAULT_NUMBER,
    DEFAULT_TIMESTAMP,
    META_VECTOR_BODY,
    META_VECTOR_SECRET,
    META_VECTOR_SIGNATURE,
    bridge_ack,
    bridge_body,
    meta_body,
    meta_change,
    meta_failed_status,
    meta_inbound,
    meta_status,
    meta_status_body,
    meta_statuses,
    sign_bridge,
    sign_meta,
    sign_twilio,
    twilio_body,
    twilio_form,
    waha_ack_body,
    waha_headers,
)
from tests.serving import META_SECRET, VERIFY_TOKEN, Clock, make_app, make_settings

ZERO_OUTCOMES = dict.fromkeys(("applied", "duplicate", "stale", "late", "unknown", "adopted"), 0)


def webhooks(**counts: int) -> dict[str, int]:
    base = dict.fromkeys(
        ("requests", "receipts", "inbound", "rejected", "ignored", "unauthorized"), 0
    )
    return {**base, **counts}


async def post_meta(client: Any, body: bytes, secret: str = META_SECRET, **headers: str) -> Any:
    return await client.post(
        "/webhooks/meta",
        data=body,
        headers={"X-Hub-Signature-256": sign_meta(body, secret), **headers},
    )


async def stats(client: Any) -> dict[str, Any]:
    response = await client.get("/sessions/stats")
    assert response.status == 200
    document: dict[str, Any] = await response.json()
    return document


# --- each provider's receipts change the stats exactly --------------------------------------


async def test_meta_receipts_are_counted(aiohttp_client):
    app, _ = make_app()
    client = await aiohttp_client(app)
    body = meta_status_body(
        [
            meta_status("wamid.A", "sent"),
            meta_status("wamid.A", "delivered"),
            meta_status("wamid.B", "read"),
            meta_failed_status("wamid.C"),
        ]
    )
    response = await post_meta(client, body)
    assert response.status == 200
    document = await stats(client)
    summary = document["summary"]
    assert summary["receipts"] == {**ZERO_OUTCOMES, "adopted": 3, "applied": 1}
    funnel = (summary["sent"], summary["delivered"], summary["read"], summary["failed"])
    assert funnel == (3, 2, 1, 1)
    assert summary["pending"] == 0 and summary["tracked_messages"] == 3
    assert [s["session_id"] for s in document["sessions"]] == ["2025-06-15"]
    assert document["sessions"][0]["errors"] == {"131049": 1}
    assert document["webhooks"] == {"meta": webhooks(requests=1, receipts=4)}


async def test_twilio_signed_callbacks_are_counted(aiohttp_client):
    app, _ = make_app(
        {"twilio": {"auth_token": "tw-token", "public_url": "https://bot.example.com"}}
    )
    client = await aiohttp_client(app)
    for status in ("sent", "delivered", "read"):
        form = twilio_form("SM" + "a" * 32, status)
        signature = sign_twilio("https://bot.example.com/webhooks/twilio", form, "tw-token")
        response = await client.post(
            "/webhooks/twilio",
            data=twilio_body(form),
            headers={
                "X-Twilio-Signature": signature,
                "Content-Type": "application/x-www-form-urlencoded",
            },
        )
        assert response.status == 200, await response.text()
    summary = (await stats(client))["summary"]
    assert summary["receipts"] == {**ZERO_OUTCOMES, "adopted": 1, "applied": 2}
    assert (summary["sent"], summary["delivered"], summary["read"]) == (1, 1, 1)
    assert (await stats(client))["webhooks"]["twilio"] == webhooks(requests=3, receipts=3)


async def test_twilio_signature_over_another_url_is_refused(aiohttp_client):
    app, _ = make_app(
        {"twilio": {"auth_token": "tw-token", "public_url": "https://bot.example.com"}}
    )
    client = await aiohttp_client(app)
    form = twilio_form()
    signature = sign_twilio("https://other.example.com/webhooks/twilio", form, "tw-token")
    response = await client.post(
        "/webhooks/twilio", data=twilio_body(form), headers={"X-Twilio-Signature": signature}
    )
    assert response.status == 403
    assert (await stats(client))["webhooks"]["twilio"] == webhooks(requests=1, unauthorized=1)


async def test_waha_signed_acks_are_counted(aiohttp_client):
    app, _ = make_app({"waha": {"hmac_key": "waha-key"}})
    client = await aiohttp_client(app)
    for ack in (1, 2, 3, 2):  # the last one is stale: delivered after read
        body = waha_ack_body(ack=ack)
        response = await client.post(
            "/webhooks/waha", data=body, headers=waha_headers(body, "waha-key")
        )
        assert response.status == 200
    document = await stats(client)
    assert document["summary"]["receipts"] == {
        **ZERO_OUTCOMES,
        "adopted": 1,
        "applied": 2,
        "stale": 1,
    }
    assert document["summary"]["read"] == 1
    assert document["webhooks"]["waha"] == webhooks(requests=4, receipts=4)


async def test_bridge_signed_acks_are_counted(aiohttp_client):
    app, _ = make_app({"bridge": {"secret": "bridge-secret"}})
    client = await aiohttp_client(app)
    body = bridge_body(
        [
            bridge_ack("true_1@c.us_AAA", 1, DEFAULT_TIMESTAMP),
            bridge_ack("true_1@c.us_AAA", 4, DEFAULT_TIMESTAMP),
            bridge_ack("true_1@c.us_BBB", -1, DEFAULT_TIMESTAMP),
        ]
    )
    response = await client.post(
        "/webhooks/bridge",
        data=body,
        headers={"X-Bridge-Signature": sign_bridge(body, "bridge-secret")},
    )
    assert response.status == 200
    summary = (await stats(client))["summary"]
    assert summary["receipts"] == {**ZERO_OUTCOMES, "adopted": 2, "applied": 1}
    assert (summary["played"], summary["failed"]) == (1, 1)


async def test_a_batch_of_1000_statuses_over_several_entries_is_fully_counted(aiohttp_client):
    app, manager = make_app()
    client = await aiohttp_client(app)
    body = meta_status_body(meta_statuses(1000, "delivered"), entries=4)
    assert body.count(b'"changes"') == 4
    response = await post_meta(client, body)
    assert response.status == 200
    document = await stats(client)
    assert document["summary"]["receipts"]["adopted"] == 1000
    assert document["summary"]["delivered"] == 1000
    assert manager.tracked_messages == 1000
    assert document["webhooks"]["meta"]["receipts"] == 1000


async def test_a_malformed_status_among_good_ones_is_rejected_the_rest_applied(aiohttp_client):
    app, _ = make_app()
    client = await aiohttp_client(app)
    good = meta_statuses(5, "sent")
    bad = meta_status("wamid.BAD", "sent", timestamp="yesterday")
    body = meta_status_body([*good[:2], bad, *good[2:], {"status": "sent"}])
    response = await post_meta(client, body)
    assert response.status == 200
    document = await stats(client)
    assert document["summary"]["receipts"]["adopted"] == 5
    assert document["webhooks"]["meta"] == webhooks(requests=1, receipts=5, rejected=2)


async def test_malformed_items_are_logged_without_phone_numbers(aiohttp_client, caplog):
    app, _ = make_app()
    client = await aiohttp_client(app)
    # A whatsapp-web.js style id carries the chat's number; this one is unusable (too long).
    bad = meta_status("true_16505551234@c.us_" + "A" * 120, "sent")
    with caplog.at_level("WARNING", logger="plugin.server.webhooks"):
        assert (await post_meta(client, meta_status_body([bad]))).status == 200
    assert "malformed item(s) skipped" in caplog.text
    assert "16505551234" not in caplog.text
    assert "<number>" in caplog.text


async def test_duplicates_and_out_of_order_receipts(aiohttp_client):
    app, _ = make_app()
    client = await aiohttp_client(app)
    sequence = [
        [meta_status("wamid.X", "read")],  # read first: adopted, delivered implied
        [meta_status("wamid.X", "delivered")],  # arrives late: stale
        [meta_status("wamid.X", "read")],  # Meta retries: duplicate
        [meta_status("wamid.X", "sent")],  # stale
        [meta_status("wamid.X", "deleted")],  # not a status we track: ignored
    ]
    for statuses in sequence:
        assert (await post_meta(client, meta_status_body(statuses))).status == 200
    document = await stats(client)
    summary = document["summary"]
    assert summary["receipts"] == {**ZERO_OUTCOMES, "adopted": 1, "stale": 2, "duplicate": 1}
    assert (summary["sent"], summary["delivered"], summary["read"]) == (1, 1, 1)
    assert document["webhooks"]["meta"] == webhooks(requests=5, receipts=4, ignored=1)


async def test_inbound_messages_are_counted_and_ignored_fields_too(aiohttp_client):
    app, _ = make_app()
    client = await aiohttp_client(app)
    body = meta_body(
        [meta_change(messages=[meta_inbound("wamid.IN1")]), meta_change(statuses=[], field="calls")]
    )
    assert (await post_meta(client, body)).status == 200
    assert (await stats(client))["webhooks"]["meta"] == webhooks(requests=1, inbound=1, ignored=1)


# --- refusals -------------------------------------------------------------------------------


async def test_missing_signature_is_401_wrong_signature_403(aiohttp_client):
    app, _ = make_app()
    client = await aiohttp_client(app)
    body = meta_status_body([meta_status("wamid.A")])
    assert (await client.post("/webhooks/meta", data=body)).status == 401
    assert (await post_meta(client, body, secret="not-the-secret")).status == 403
    document = await stats(client)
    assert document["webhooks"]["meta"] == webhooks(requests=2, unauthorized=2)
    assert document["summary"]["receipts"] == ZERO_OUTCOMES


async def test_a_one_byte_change_to_a_signed_body_is_403(aiohttp_client):
    app, _ = make_app()
    client = await aiohttp_client(app)
    body = meta_status_body([meta_status("wamid.A", "delivered")])
    signature = sign_meta(body, META_SECRET)
    tampered = body.replace(b"delivered", b"delivereD")
    assert len(tampered) == len(body) and tampered != body
    response = await client.post(
        "/webhooks/meta", data=tampered, headers={"X-Hub-Signature-256": signature}
    )
    assert response.status == 403
    response = await client.post(
        "/webhooks/meta", data=body, headers={"X-Hub-Signature-256": signature}
    )
    assert response.status == 200


async def test_malformed_json_is_400_after_the_signature_check(aiohttp_client):
    app, _ = make_app()
    client = await aiohttp_client(app)
    for body in (
        b'{"object": "whatsapp_business_account", "entry": [',
        b"[]",
        b'{"object": "page", "entry": []}',
    ):
        assert (await post_meta(client, body)).status == 400
    assert (await client.post("/webhooks/meta", data=b"{not json")).status == 401
    assert (await stats(client))["webhooks"]["meta"] == webhooks(
        requests=4, rejected=3, unauthorized=1
    )


async def test_an_oversized_body_is_413_whatever_content_length_says(aiohttp_client):
    app, _ = make_app({"server": {"max_body_size": "4KiB"}})
    client = await aiohttp_client(app)
    body = meta_status_body(meta_statuses(100))
    assert len(body) > 4096
    assert (await post_meta(client, body)).status == 413

    async def chunks():  # chunked transfer: no Content-Length to trust
        for start in range(0, len(body), 1000):
            yield body[start : start + 1000]

    response = await client.post(
        "/webhooks/meta",
        data=chunks(),
        headers={"X-Hub-Signature-256": sign_meta(body, META_SECRET)},
    )
    assert response.status == 413
    small = meta_status_body(meta_statuses(3))
    assert (await post_meta(client, small)).status == 200
    assert (await stats(client))["webhooks"]["meta"] == webhooks(requests=3, rejected=2, receipts=3)


async def test_a_chunked_body_within_the_limit_is_read_whole(aiohttp_client):
    app, _ = make_app()
    client = await aiohttp_client(app)
    body = meta_status_body(meta_statuses(50))

    async def chunks():
        for start in range(0, len(body), 700):
            yield body[start : start + 700]

    response = await client.post(
        "/webhooks/meta",
        data=chunks(),
        headers={"X-Hub-Signature-256": sign_meta(body, META_SECRET)},
    )
    assert response.status == 200
    assert (await stats(client))["summary"]["receipts"]["adopted"] == 50


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ({"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "42"}, 200),
        ({"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "42"}, 403),
        ({"hub.mode": "unsubscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "42"}, 403),
        ({"hub.verify_token": VERIFY_TOKEN, "hub.challenge": "42"}, 403),
        ({"hub.mode": "subscribe", "hub.challenge": "42"}, 403),
        ({"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN}, 400),
    ],
)
async def test_meta_handshake(aiohttp_client, query, status):
    app, _ = make_app()
    client = await aiohttp_client(app)
    response = await client.get("/webhooks/meta", params=query)
    assert response.status == status
    if status == 200:
        assert await response.text() == "42"


async def test_meta_handshake_without_a_configured_token_is_refused(aiohttp_client):
    app, _ = make_app({"meta": {"verify_token": None}})
    client = await aiohttp_client(app)
    query = {"hub.mode": "subscribe", "hub.verify_token": "", "hub.challenge": "1"}
    assert (await client.get("/webhooks/meta", params=query)).status == 403


async def test_the_meta_public_vector_verifies_through_http(aiohttp_client):
    app, _ = make_app({"meta": {"app_secret": META_VECTOR_SECRET}})
    client = await aiohttp_client(app)
    response = await client.post(
        "/webhooks/meta",
        data=META_VECTOR_BODY,
        headers={"X-Hub-Signature-256": META_VECTOR_SIGNATURE},
    )
    assert response.status == 200
    assert (await stats(client))["webhooks"]["meta"] == webhooks(requests=1, inbound=1)


async def test_a_provider_route_exists_only_when_enabled(aiohttp_client):
    app, _ = make_app({"meta": {"enabled": False, "app_secret": None}})
    client = await aiohttp_client(app)
    for name in ("meta", "twilio", "waha", "bridge"):
        assert (await client.post(f"/webhooks/{name}", data=b"{}")).status == 404
    assert (await stats(client))["webhooks"] == {}


async def test_webhook_path_is_configurable(aiohttp_client):
    app, _ = make_app({"server": {"webhook_path": "/hooks/wa"}})
    client = await aiohttp_client(app)
    body = meta_status_body([meta_status("wamid.A")])
    response = await client.post(
        "/hooks/wa/meta", data=body, headers={"X-Hub-Signature-256": sign_meta(body, META_SECRET)}
    )
    assert response.status == 200


async def test_development_accepts_unsigned_requests_after_a_loud_warning(aiohttp_client, caplog):
    app, _ = make_app({"meta": {"app_secret": None}})
    with caplog.at_level(logging.WARNING, logger="plugin.server.app"):
        client = await aiohttp_client(app)
    assert any(
        "UNSIGNED WEBHOOKS ACCEPTED for provider meta" in r.getMessage() for r in caplog.records
    )
    body = meta_status_body([meta_status("wamid.A")])
    assert (await client.post("/webhooks/meta", data=body)).status == 200
    assert (await stats(client))["summary"]["receipts"]["adopted"] == 1


def test_production_refuses_to_start_without_secrets():
    settings = {"env": "production", "server": {"admin_token": "t"}, "meta": {"verify_token": "v"}}
    with pytest.raises(SettingsError) as error:
        create_app(settings, clock=Clock(), entry_points=False)
    assert "meta.app_secret" in str(error.value)
    with pytest.raises(SettingsError) as error:
        create_app(
            {
                **settings,
                "waha": {"enabled": True},
                "meta": {"app_secret": "s", "verify_token": "v"},
            },
            clock=Clock(),
            entry_points=False,
        )
    assert "waha.hmac_key" in str(error.value)


# --- admin routes ---------------------------------------------------------------------------


async def test_admin_routes_need_the_token_when_it_is_set(aiohttp_client):
    app, _ = make_app({"server": {"admin_token": "s3cr3t-admin"}})
    client = await aiohttp_client(app)
    for path in ("/sessions/stats", "/sessions/debug", "/metrics"):
        missing = await client.get(path)
        assert missing.status == 401
        assert missing.headers["WWW-Authenticate"].startswith("Bearer")
        # DESIGN.md: a wrong credential gets 401 with the challenges, so a browser prompts
        assert (await client.get(path, headers={"Authorization": "Bearer nope"})).status == 401
        assert (
            await client.get(path, headers={"Authorization": "Basic s3cr3t-admin"})
        ).status == 401
        ok = await client.get(path, headers={"Authorization": "Bearer s3cr3t-admin"})
        assert ok.status == 200
    assert (await client.get("/healthz")).status == 200


@web.middleware
async def _remote_from_header(request: web.Request, handler: Any) -> web.StreamResponse:
    """Pretend the peer is the address in X-Test-Remote (the test server only has loopback)."""
    remote = request.headers.get("X-Test-Remote")
    return await handler(request.clone(remote=remote) if remote else request)


async def test_without_a_token_admin_routes_answer_loopback_only(aiohttp_client):
    app = web.Application(middlewares=[_remote_from_header])
    setup(app, make_settings(), clock=Clock(), entry_points=False)
    client = await aiohttp_client(app)
    for path in ("/sessions/stats", "/sessions/debug", "/metrics"):
        assert (await client.get(path)).status == 200
        assert (await client.get(path, headers={"X-Test-Remote": "::1"})).status == 200
        assert (await client.get(path, headers={"X-Test-Remote": "::ffff:127.0.0.1"})).status == 200
        for remote in ("203.0.113.7", "10.0.0.2", "::ffff:203.0.113.7"):
            response = await client.get(path, headers={"X-Test-Remote": remote})
            assert response.status == 403, (path, remote)
        # A bearer token does not help while none is configured.
        response = await client.get(
            path, headers={"X-Test-Remote": "203.0.113.7", "Authorization": "Bearer x"}
        )
        assert response.status == 403
    assert (await client.get("/healthz", headers={"X-Test-Remote": "203.0.113.7"})).status == 200


async def test_debug_route_is_get_debug_info(aiohttp_client):
    app, manager = make_app()
    client = await aiohttp_client(app)
    document = await (await client.get("/sessions/debug")).json()
    expected = manager.get_debug_info()
    assert document["manager_stats"]["max_tracked_messages"] == 100_000
    assert set(document["manager_stats"]) == set(expected["manager_stats"])


# --- hooks and middlewares cannot change the answer ------------------------------------------


class Raising:
    @hookimpl
    def whatsapp_message_received(self, message):
        raise RuntimeError("a bot bug")

    @hookimpl
    async def whatsapp_status_changed(self, change):
        raise RuntimeError("another bot bug")


async def test_a_hook_that_raises_does_not_change_the_answer(aiohttp_client):
    app, manager = make_app()
    app[PLUGIN_MANAGER_KEY].register(Raising())
    client = await aiohttp_client(app)
    body = meta_body(
        [
            meta_change(
                statuses=[meta_status("wamid.A", "sent")], messages=[meta_inbound("wamid.IN")]
            )
        ]
    )
    response = await post_meta(client, body)
    assert response.status == 200
    await app[RUNTIME_KEY].events.flush()
    assert manager.hook_errors == 2
    debug = await (await client.get("/sessions/debug")).json()
    assert debug["manager_stats"]["hook_errors"] == 2
    assert (await stats(client))["summary"]["receipts"]["adopted"] == 1


class Recorder:
    """A third-party plugin with a receive middleware and an inbound hook."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.seen: list[Any] = []
        self.outcomes: list[Any] = []
        self.inbound: list[Any] = []
        self.fail_on = fail_on

    async def middleware(self, handler, event, data):
        self.seen.append(event)
        if isinstance(event, Receipt) and event.message_id == self.fail_on:
            raise ValueError("middleware bug")
        result = await handler(event, data)
        self.outcomes.append(data.get("outcome"))
        return result

    @hookimpl
    def whatsapp_register_middlewares(self, register: MiddlewareRegistry) -> None:
        register.receive(self.middleware)

    @hookimpl
    async def whatsapp_message_received(self, message, client):
        self.inbound.append((message.message_id, message.text, client))


async def test_third_party_middlewares_see_every_event_and_the_outcome(aiohttp_client):
    app, manager = make_app()
    recorder = Recorder(fail_on="wamid.BOOM")
    app[PLUGIN_MANAGER_KEY].register(recorder)
    client = await aiohttp_client(app)
    assert not app[RUNTIME_KEY].pipeline.fast
    body = meta_body(
        [
            meta_change(
                statuses=[
                    meta_status("wamid.A", "sent"),
                    meta_status("wamid.BOOM", "sent"),
                    meta_status("wamid.A", "sent"),
                ],
                messages=[meta_inbound("wamid.IN", text="hi")],
            )
        ]
    )
    response = await post_meta(client, body)
    assert response.status == 200
    assert [getattr(e, "message_id", None) for e in recorder.seen] == [
        "wamid.A",
        "wamid.BOOM",
        "wamid.A",
        "wamid.IN",
    ]
    assert recorder.outcomes == [Outcome.ADOPTED, Outcome.DUPLICATE, None]
    assert recorder.inbound == [("wamid.IN", "hi", None)]
    assert manager.hook_errors == 1
    document = await stats(client)
    # The failing middleware is outermost, so the tracking never saw its receipt.
    assert document["summary"]["receipts"] == {**ZERO_OUTCOMES, "adopted": 1, "duplicate": 1}


async def test_the_fast_path_and_the_chain_count_alike(aiohttp_client):
    body = meta_status_body(
        [
            meta_status("wamid.A", "read"),
            meta_status("wamid.A", "delivered"),
            meta_status("wamid.B", "sent"),
            meta_status("wamid.B", "sent"),
        ]
    )
    results = []
    for extra in (None, Recorder()):
        app, _ = make_app()
        if extra is not None:
            app[PLUGIN_MANAGER_KEY].register(extra)
        client = await aiohttp_client(app)
        assert app[RUNTIME_KEY].pipeline.fast is (extra is None)
        assert (await post_meta(client, body)).status == 200
        metrics = await (await client.get("/metrics")).text()
        results.append(
            (
                (await stats(client))["summary"],
                [
                    line
                    for line in metrics.splitlines()
                    if line.startswith("wa_sessions_receipts_total")
                ],
            )
        )
    assert results[0] == results[1]


# --- lifecycle ------------------------------------------------------------------------------


class Completed:
    def __init__(self) -> None:
        self.sessions: list[str] = []
        self.cleanups = 0

    @hookimpl
    def whatsapp_session_completed(self, summary):
        self.sessions.append(summary.session_id)

    @hookimpl
    async def whatsapp_cleanup_completed(self, report):
        self.cleanups += 1


async def test_shutdown_runs_a_final_cleanup_and_delivers_queued_events(aiohttp_server):
    clock = Clock()
    app, manager = make_app(clock=clock)
    completed = Completed()
    app[PLUGIN_MANAGER_KEY].register(completed)
    server = await aiohttp_server(app)
    from aiohttp import ClientSession

    async with ClientSession() as session:
        body = meta_status_body([meta_status("wamid.A", "sent")])
        response = await session.post(
            server.make_url("/webhooks/meta"),
            data=body,
            headers={"X-Hub-Signature-256": sign_meta(body, META_SECRET)},
        )
        assert response.status == 200
    clock.advance(3 * 86400)  # a simulated day and more: the session is due
    await server.close()
    assert completed.sessions == ["2025-06-15"]
    assert completed.cleanups == 1
    assert manager.history[0].counters["expired"] == 1


async def test_setup_mounts_onto_an_existing_app_once(aiohttp_client):
    app = web.Application()

    async def hello(request):
        return web.Response(text="bot")

    app.router.add_get("/", hello)
    runtime = setup(app, make_settings(), clock=Clock(), entry_points=False)
    with pytest.raises(RuntimeError):
        setup(app, make_settings(), clock=Clock(), entry_points=False)
    client = await aiohttp_client(app)
    assert await (await client.get("/")).text() == "bot"
    assert app[MANAGER_KEY] is runtime.manager
    body = meta_status_body([meta_status("wamid.A", "sent")])
    assert (await post_meta(client, body)).status == 200


async def test_metrics_parse_as_prometheus_text(aiohttp_client):
    from prometheus_client.parser import text_string_to_metric_families

    app, _ = make_app({"waha": {"hmac_key": "k"}})
    client = await aiohttp_client(app)
    body = meta_status_body(
        [meta_status("wamid.A", "sent"), meta_status("wamid.A", "sent"), {"status": "sent"}]
    )
    await post_meta(client, body)
    await client.post("/webhooks/meta", data=body)
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(await response.text())}
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in families.values()
        for s in f.samples
    }
    assert (
        samples[("wa_sessions_receipts_total", (("outcome", "adopted"), ("provider", "meta")))] == 1
    )
    assert (
        samples[("wa_sessions_receipts_total", (("outcome", "duplicate"), ("provider", "meta")))]
        == 1
    )
    assert samples[("wa_sessions_webhook_requests_total", (("provider", "meta"),))] == 2
    assert samples[("wa_sessions_webhook_rejected_total", (("provider", "meta"),))] == 1
    assert samples[("wa_sessions_webhook_unauthorized_total", (("provider", "meta"),))] == 1
    assert samples[("wa_sessions_webhook_requests_total", (("provider", "waha"),))] == 0
    assert samples[("wa_sessions_active_sessions", ())] == 1
    assert samples[("wa_sessions_tracked_messages", ())] == 1
    for name in (
        "wa_sessions_history_size",
        "wa_sessions_hook_errors_total",
        "wa_sessions_evictions_total",
        "wa_sessions_webhook_ignored_total",
    ):
        assert any(key[0] == name for key in samples), name


async def test_two_apps_do_not_share_metrics(aiohttp_client):
    first, _ = make_app()
    second, _ = make_app()
    one = await aiohttp_client(first)
    two = await aiohttp_client(second)
    await post_meta(one, meta_status_body([meta_status("wamid.A", "sent")]))
    text = await (await two.get("/metrics")).text()
    assert 'wa_sessions_webhook_requests_total{provider="meta"} 0.0' in text


async def test_recipients_never_reach_the_logs(aiohttp_client, caplog):
    app, _ = make_app()
    client = await aiohttp_client(app)
    with caplog.at_level(logging.DEBUG):
        body = meta_status_body(
            [meta_status("wamid.A", "sent"), meta_status("wamid.B", "sent", timestamp="soon")]
        )
        await post_meta(client, body)
        await client.post("/webhooks/meta", data=body, headers={"X-Hub-Signature-256": "x"})
    assert DEFAULT_NUMBER not in caplog.text
    assert META_SECRET not in caplog.text
    assert json.dumps(await stats(client)).count(DEFAULT_NUMBER) == 0


async def test_the_periodic_cleanup_runs_every_interval_and_survives_errors(caplog):
    import asyncio

    from plugin.core.manager import MessageSessionManager
    from plugin.server.app import _periodic_cleanup

    manager = MessageSessionManager(clock=Clock())
    calls: list[float] = []
    real_cleanup = manager.cleanup

    def cleanup(now=None):
        calls.append(manager._clock())
        if len(calls) == 1:
            raise RuntimeError("a broken store")
        return real_cleanup(now)

    manager.cleanup = cleanup
    task = asyncio.create_task(_periodic_cleanup(manager, 0.001))
    while len(calls) < 3:
        await asyncio.sleep(0.001)
    task.cancel()
    assert len(calls) >= 3
    assert "periodic cleanup failed" in caplog.text
    assert manager.get_debug_info()["manager_stats"]["last_cleanup_at"] is not None
