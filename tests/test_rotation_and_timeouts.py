"""Secret rotation (``meta.app_secret`` and ``server.admin_token`` accept two values at once)
and ``server.read_timeout`` (a body that trickles in is cut off with 408, other requests are
served meanwhile), against running apps and real sockets."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest

from plugin.core.errors import SettingsError
from plugin.server.app import create_app
from plugin.server.runtime import RUNTIME_KEY
from plugin.settings.loading import Settings, load_settings
from tests.providers import meta_body, meta_change, meta_status, sign_meta
from tests.rawhttp import raw_request
from tests.serving import Clock, make_settings
from tests.webhook_apps import tracebacks

NEW, OLD = "app-secret-new", "app-secret-old"


def rotating_app(**server: object) -> object:
    settings = make_settings(
        {
            "meta": {"app_secret": [NEW, OLD]},
            "server": {"admin_token": ["token-new", "token-old"], **server},
        }
    )
    return create_app(settings, clock=Clock(), entry_points=False)


def body(index: int) -> bytes:
    return meta_body([meta_change(statuses=[meta_status(f"wamid.ROT{index}", "sent")])])


# -- settings ------------------------------------------------------------------------------------


def test_a_secret_is_a_string_or_a_list_of_two() -> None:
    settings = make_settings(
        {"meta": {"app_secret": [NEW, OLD]}, "server": {"admin_token": "single"}}
    )
    assert settings.meta.app_secret == (NEW, OLD)
    assert settings.meta.app_secrets == (NEW, OLD)
    assert settings.server.admin_tokens == ("single",)
    assert settings.meta.signed
    round_trip = Settings.from_mapping(settings.as_dict(redact=False))
    assert round_trip.meta.app_secrets == (NEW, OLD)
    assert settings.redacted()["meta"]["app_secret"] == "***"
    assert NEW not in repr(settings) and OLD not in repr(settings)


@pytest.mark.parametrize(
    "value", [[], ["a", "b", "c"], ["a", ""], ["a", None], ["a", ["b"]], [1.5, "a"]]
)
def test_other_lists_are_refused_without_showing_the_secret(value: object) -> None:
    with pytest.raises(SettingsError) as exc:
        make_settings({"meta": {"app_secret": value}, "server": {"admin_token": value}})
    found = {p.key: p for p in exc.value.problems}
    assert set(found) == {"meta.app_secret", "server.admin_token"}
    for problem in found.values():
        assert "two non-empty strings" in problem.accepted
        assert problem.value == "***"


def test_a_rotation_from_environment_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WHATSAPP_META__APP_SECRET", f'["{NEW}", "{OLD}"]')
    monkeypatch.setenv("WHATSAPP_SERVER__ADMIN_TOKEN", "[not-a-toml-array")
    settings = load_settings()
    assert settings.meta.app_secrets == (NEW, OLD)
    assert settings.server.admin_tokens == ("[not-a-toml-array",)  # taken verbatim


def test_read_timeout_setting() -> None:
    assert make_settings().server.read_timeout == 30.0
    assert make_settings({"server": {"read_timeout": "2s"}}).server.read_timeout == 2.0
    assert make_settings({"server": {"read_timeout": 250}}).server.read_timeout == 0.25
    with pytest.raises(SettingsError) as exc:
        make_settings({"server": {"read_timeout": "forever"}})
    assert [p.key for p in exc.value.problems] == ["server.read_timeout"]
    assert make_settings().as_dict()["server"]["read_timeout"] == "30s"


# -- rotation over HTTP --------------------------------------------------------------------------


async def test_a_signature_by_either_app_secret_is_accepted(aiohttp_client) -> None:
    client = await aiohttp_client(rotating_app())
    for index, secret in enumerate((NEW, OLD)):
        data = body(index)
        response = await client.post(
            "/webhooks/meta", data=data, headers={"X-Hub-Signature-256": sign_meta(data, secret)}
        )
        assert response.status == 200, secret
    data = body(9)
    for wrong in ("another-secret", NEW + OLD, ""):
        response = await client.post(
            "/webhooks/meta", data=data, headers={"X-Hub-Signature-256": sign_meta(data, wrong)}
        )
        assert response.status == 403
    counters = client.server.app[RUNTIME_KEY].webhooks["meta"]
    assert (counters.receipts, counters.unauthorized) == (2, 3)


async def test_either_admin_token_is_accepted(aiohttp_client) -> None:
    client = await aiohttp_client(rotating_app())
    for token in ("token-new", "token-old"):
        for route in ("/sessions/stats", "/sessions/debug", "/metrics"):
            response = await client.get(route, headers={"Authorization": f"Bearer {token}"})
            assert response.status == 200, (route, token)
    for header in ("Bearer token-other", "Bearer token-newtoken-old", "Bearer ['token-new']"):
        response = await client.get("/sessions/stats", headers={"Authorization": header})
        assert response.status == 401  # DESIGN.md: a wrong credential gets 401
    assert (await client.get("/sessions/stats")).status == 401


# -- read timeout over a real socket -------------------------------------------------------------


async def test_a_trickling_body_is_cut_off_with_408_and_others_are_served(
    aiohttp_server, caplog
) -> None:
    server = await aiohttp_server(rotating_app(read_timeout="300ms"))
    data = body(1)
    headers = [
        (b"X-Hub-Signature-256", sign_meta(data, NEW).encode()),
        (b"Content-Type", b"application/json"),
    ]
    with caplog.at_level(logging.WARNING):
        started = time.monotonic()
        slow = asyncio.ensure_future(
            raw_request(server.host, server.port, b"/webhooks/meta", headers, data, trickle=0.05)
        )
        await asyncio.sleep(0.05)
        fast = [
            await raw_request(
                server.host,
                server.port,
                b"/webhooks/meta",
                [(b"X-Hub-Signature-256", sign_meta(body(i), NEW).encode())],
                body(i),
            )
            for i in range(2, 5)
        ]
        fast_done = time.monotonic() - started
        answer = await slow
        slow_done = time.monotonic() - started
    assert [r.status for r in fast] == [200, 200, 200]
    assert fast_done < 0.3  # served while the slow body was still arriving
    assert answer.status == 408
    assert 0.3 <= slow_done < 3.0  # cut off at the timeout, long before the body's end
    assert len(data) * 0.05 > 3.0
    assert b"read_timeout" in answer.body
    assert tracebacks(caplog.records) == []
    counters = server.app[RUNTIME_KEY].webhooks["meta"]
    assert (counters.requests, counters.receipts, counters.rejected) == (4, 3, 1)


async def test_a_slow_but_complete_body_within_the_timeout_is_served(aiohttp_server) -> None:
    server = await aiohttp_server(rotating_app(read_timeout="5s"))
    data = b'{"object": "whatsapp_business_account", "entry": []}'
    answer = await raw_request(
        server.host,
        server.port,
        b"/webhooks/meta",
        [(b"X-Hub-Signature-256", sign_meta(data, OLD).encode())],
        data,
        trickle=0.005,
    )
    assert answer.status == 200
