"""The examples run, so they cannot rot: the clinic bot, the audit-log plugin (from settings and
from an entry point) and the settings of the three use cases."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from examples.audit_log import plugin as audit_plugin
from examples.clinic_bot import bot, replies
from plugin.cli.main import main
from plugin.server.app import create_app
from plugin.server.runtime import MANAGER_KEY, PLUGIN_MANAGER_KEY
from plugin.settings.loading import load_settings
from tests.providers import meta_body, meta_change, meta_inbound, meta_status, meta_status_body
from tests.serving import ACCESS_TOKEN, Clock, FakeGraph, make_app
from tests.test_server import post_meta, stats

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_SETTINGS = sorted((ROOT / "examples" / "settings").glob("*.toml"))
DAY = 86400.0
#: What each use case's other providers need from the environment in production.
PROVIDER_SECRETS = {
    "hospital_24x7": {"WHATSAPP_TWILIO__AUTH_TOKEN": "twilio"},
    "call_centre": {"WHATSAPP_BRIDGE__SECRET": "bridge"},
}


@pytest.fixture
async def graph(aiohttp_server):
    fake = FakeGraph()
    server = await aiohttp_server(fake.app)
    fake.url = str(server.make_url("/v21.0"))
    return fake


def read_audit(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


# --- the clinic bot -------------------------------------------------------------------------


async def test_the_clinic_bot_sends_reminders_tracks_them_and_replies(
    aiohttp_client, graph, monkeypatch
):
    monkeypatch.setenv("WHATSAPP_META__ACCESS_TOKEN", ACCESS_TOKEN)
    monkeypatch.setenv("WHATSAPP_META__APP_SECRET", "clinic-secret")
    monkeypatch.setenv("WHATSAPP_META__API_BASE_URL", graph.url)
    clock = Clock()
    app = bot.build_app(clock=clock, entry_points=False)
    client = await aiohttp_client(app)
    assert await (await client.get("/")).text() == "Clinica San Rafael bot"

    response = await client.post(
        "/reminders", json={"phone": "+573001234567", "patient": "Ana", "when": "martes 9:00"}
    )
    assert response.status == 200
    message_id = (await response.json())["message_id"]
    sent = graph.requests[0]["payload"]
    assert sent["type"] == "template" and sent["template"]["name"] == bot.REMINDER_TEMPLATE
    assert sent["template"]["components"][0]["parameters"][0]["text"] == "Ana"
    assert (await client.post("/reminders", json={"phone": "1"})).status == 400

    stamp = str(int(clock.now))
    for status in ("delivered", "read"):
        body = meta_status_body([meta_status(message_id, status, timestamp=stamp)])
        assert (await post_meta(client, body, secret="clinic-secret")).status == 200
    inbound = meta_body([meta_change(messages=[meta_inbound("wamid.P1", "573001234567", "Si")])])
    assert (await post_meta(client, inbound, secret="clinic-secret")).status == 200

    assert graph.requests[1]["payload"]["to"] == "573001234567"
    assert graph.requests[1]["payload"]["text"]["body"] == replies.CONFIRMED
    summary = (await stats(client))["summary"]
    # The reminder is delivered and read; the reply is tracked too, still pending.
    assert (summary["sent"], summary["delivered"], summary["read"], summary["pending"]) == (
        2,
        1,
        1,
        1,
    )
    assert app[MANAGER_KEY].options.timezone == "America/Bogota"


def test_the_clinic_bot_answers():
    assert replies.answer(" YES ") == replies.CONFIRMED
    assert replies.answer("no") == replies.CANCELLED
    assert replies.answer(None) == replies.HELP


# --- the audit-log plugin -------------------------------------------------------------------


async def test_the_audit_log_from_settings_records_a_simulated_day(
    aiohttp_client, tmp_path, monkeypatch
):
    log_file = tmp_path / "audit.jsonl"
    monkeypatch.setenv(audit_plugin.AUDIT_LOG_VARIABLE, str(log_file))
    clock = Clock()
    app, _ = make_app({"plugins": ["examples.audit_log.plugin"]}, clock=clock)
    assert app[PLUGIN_MANAGER_KEY].get_plugin("examples.audit_log.plugin") is audit_plugin
    client = await aiohttp_client(app)
    stamp = str(int(clock.now))
    body = meta_status_body(
        [
            meta_status("wamid.D1", "delivered", timestamp=stamp),
            meta_status("wamid.S1", "sent", timestamp=stamp),
        ]
    )
    assert (await post_meta(client, body)).status == 200

    clock.advance(2 * DAY)  # the next day and its ack window go by
    later = str(int(clock.now))
    body = meta_status_body([meta_status("wamid.NEXT", "sent", timestamp=later)])
    assert (await post_meta(client, body)).status == 200  # lazily completes the old session
    await client.close()  # graceful shutdown: final cleanup, queued events delivered

    lines = read_audit(log_file)
    completed = [line for line in lines if line["event"] == "session_completed"]
    assert [line["session_id"] for line in completed] == ["2025-06-15"]
    assert (completed[0]["sent"], completed[0]["delivered"], completed[0]["expired"]) == (2, 1, 1)
    expired = [line for line in lines if line["event"] == "message_expired"]
    assert [line["message_id"] for line in expired] == ["wamid.S1"]
    assert expired[0]["recipient"].startswith("~")
    assert any(line["event"] == "cleanup" for line in lines)
    assert "16505551234" not in log_file.read_text()


async def test_the_audit_log_records_failed_sends(aiohttp_client, graph, tmp_path, monkeypatch):
    log_file = tmp_path / "audit.jsonl"
    monkeypatch.setenv(audit_plugin.AUDIT_LOG_VARIABLE, str(log_file))
    app, _ = make_app(
        {
            "plugins": ["examples.audit_log.plugin"],
            "meta": {
                "access_token": ACCESS_TOKEN,
                "phone_number_id": "1",
                "api_base_url": graph.url,
            },
        }
    )
    await aiohttp_client(app)
    graph.fail_with = (400, {"error": {"message": "bad number", "code": 100}})
    from plugin.client import SendError
    from plugin.server.runtime import CLIENT_KEY

    with pytest.raises(SendError):
        await app[CLIENT_KEY].send_text("+16505551234", "hi")
    (line,) = read_audit(log_file)
    assert line["event"] == "send_failed"
    assert (line["to"], line["code"], line["http_status"]) == ("***1234", "100", 400)


def install_audit_entry_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A throwaway dist-info declaring the audit plugin in the ``wa_sessions`` group."""
    dist = tmp_path / "site" / "clinic_audit-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: clinic-audit\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[wa_sessions]\naudit = examples.audit_log.plugin\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))


async def test_the_audit_log_through_an_entry_point(aiohttp_client, tmp_path, monkeypatch):
    install_audit_entry_point(tmp_path, monkeypatch)
    log_file = tmp_path / "audit.jsonl"
    monkeypatch.setenv(audit_plugin.AUDIT_LOG_VARIABLE, str(log_file))
    clock = Clock()
    app, _ = make_app(clock=clock, entry_points=True)
    assert app[PLUGIN_MANAGER_KEY].get_plugin("audit") is audit_plugin
    client = await aiohttp_client(app)
    stamp = str(int(clock.now))
    await post_meta(client, meta_status_body([meta_status("wamid.E", "read", timestamp=stamp)]))
    clock.advance(2 * DAY)
    await client.close()
    completed = [line for line in read_audit(log_file) if line["event"] == "session_completed"]
    assert [line["read"] for line in completed] == [1]


def test_a_plugin_both_listed_and_installed_is_loaded_once(tmp_path, monkeypatch):
    install_audit_entry_point(tmp_path, monkeypatch)
    app, _ = make_app({"plugins": ["examples.audit_log.plugin"]}, entry_points=True)
    registered = [
        name
        for name, plugin in app[PLUGIN_MANAGER_KEY].list_name_plugin()
        if plugin is audit_plugin
    ]
    assert registered == ["examples.audit_log.plugin"]


# --- settings of the three use cases --------------------------------------------------------


def test_there_are_settings_for_the_three_use_cases():
    assert [path.stem for path in EXAMPLE_SETTINGS] == [
        "call_centre",
        "hospital_24x7",
        "small_clinic",
    ]


@pytest.mark.parametrize("path", EXAMPLE_SETTINGS, ids=lambda path: path.stem)
def test_example_settings_pass_check_config_in_development(path, capsys):
    assert main(["check-config", "--settings", str(path)]) == 0
    assert "settings OK (env=development" in capsys.readouterr().out


@pytest.mark.parametrize("path", EXAMPLE_SETTINGS, ids=lambda path: path.stem)
def test_example_settings_pass_check_config_in_production_with_secrets(path, monkeypatch, capsys):
    monkeypatch.setenv("WHATSAPP_ENV", "production")
    assert main(["check-config", "--settings", str(path)]) == 2  # secrets missing: refused
    assert "server.admin_token" in capsys.readouterr().err
    secrets = {
        "WHATSAPP_SERVER__ADMIN_TOKEN": "admin",
        "WHATSAPP_META__APP_SECRET": "app",
        "WHATSAPP_META__VERIFY_TOKEN": "verify",
        "WHATSAPP_META__ACCESS_TOKEN": "access",
        "WHATSAPP_REDACTION_KEY": "redaction",
        **PROVIDER_SECRETS.get(path.stem, {}),
    }
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    assert main(["check-config", "--settings", str(path)]) == 0
    captured = capsys.readouterr()
    assert "settings OK (env=production" in captured.out
    assert "warning" not in captured.err
    settings = load_settings(path)
    assert settings.server.host == "0.0.0.0"


def test_example_settings_say_what_each_use_case_needs():
    clinic, hospital, centre = (
        load_settings(ROOT / "examples" / "settings" / f"{name}.toml")
        for name in ("small_clinic", "hospital_24x7", "call_centre")
    )
    assert clinic.manager.profile == "ultra_lean"
    assert clinic.enabled_providers == ("meta",)
    assert hospital.manager.session_period == 8 * 3600
    assert hospital.enabled_providers == ("meta", "twilio")
    assert centre.manager.session_period == 3600
    assert centre.enabled_providers == ("meta", "bridge")
    assert centre.manager.max_tracked_messages > hospital.manager.max_tracked_messages


@pytest.mark.parametrize("path", EXAMPLE_SETTINGS, ids=lambda path: path.stem)
async def test_example_settings_serve_their_providers(path, aiohttp_client):
    app = create_app(path, clock=Clock(), entry_points=False)
    client = await aiohttp_client(app)
    settings = load_settings(path)
    for name in ("meta", "twilio", "waha", "bridge"):
        response = await client.post(f"/webhooks/{name}", data=b"{}")
        assert (response.status != 404) is (name in settings.enabled_providers), name
