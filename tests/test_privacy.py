"""No phone number at rest, end to end on the in-memory store: after sends, receipts from every
provider (WAHA and whatsapp-web.js ids embed the chat's number), expiry, completion and a
snapshot, the number is in no log line, not in the snapshot file, and on no admin route or the
status page. (The Redis side: tests/test_redis_privacy.py.)"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from plugin.server.app import create_app
from plugin.server.runtime import CLIENT_KEY, MANAGER_KEY
from tests.providers import (
    DEFAULT_TIMESTAMP,
    bridge_ack,
    bridge_body,
    meta_failed_status,
    meta_status,
    meta_status_body,
    twilio_body,
    twilio_form,
    waha_ack_body,
)
from tests.serving import (
    ACCESS_TOKEN,
    ADMIN_TOKEN,
    PHONE_NUMBER_ID,
    Clock,
    FakeGraph,
    make_settings,
)
from tests.webhook_apps import BRIDGE_SECRET, PUBLIC_URL, TWILIO_TOKEN, WAHA_KEY, signed_headers

NUMBER = "16505551234"
DIGITS = "6505551234"
BEARER = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


async def test_the_number_is_nowhere_at_rest(
    aiohttp_client, aiohttp_server, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.DEBUG)
    graph = FakeGraph()
    server = await aiohttp_server(graph.app)
    graph.url = str(server.make_url("/v21.0"))
    state = tmp_path / "state.json"
    clock = Clock()
    settings = make_settings(
        {
            "server": {"admin_token": ADMIN_TOKEN},
            "meta": {
                "access_token": ACCESS_TOKEN,
                "phone_number_id": PHONE_NUMBER_ID,
                "api_base_url": graph.url,
            },
            "twilio": {"auth_token": TWILIO_TOKEN, "public_url": PUBLIC_URL},
            "waha": {"hmac_key": WAHA_KEY},
            "bridge": {"secret": BRIDGE_SECRET},
            "state_file": str(state),
            "redaction_key": "privacy-key",
            "ack_tracking_window": "1h",
        }
    )
    app = create_app(settings, clock=clock, entry_points=False)
    client = await aiohttp_client(app)

    sent = await app[CLIENT_KEY].send_text(f"+{NUMBER}", "Your appointment is tomorrow at 9:00")
    store: Any = app[MANAGER_KEY]
    assert await store.track_sent(f"true_{NUMBER}@c.us_3EB0C767D71D4A0B6E8D", NUMBER)
    requests = [
        (
            "meta",
            meta_status_body(
                [
                    meta_status(sent.message_id, "delivered", recipient_id=NUMBER),
                    meta_failed_status("wamid.FAILED1", code=131026),
                    meta_status("wamid.UNKNOWN1", "read", recipient_id=NUMBER),
                ]
            ),
        ),
        ("waha", waha_ack_body(f"true_{NUMBER}@c.us_3EB0C767D71D4A0B6E8D", 3)),
        ("waha", waha_ack_body(f"false_{NUMBER}@c.us_3EB0FFFF0000", 2)),
        (
            "bridge",
            bridge_body(
                [
                    bridge_ack(
                        f"false_120363025246125486@g.us_3EB0AB_{NUMBER}@c.us",
                        2,
                        DEFAULT_TIMESTAMP,
                        to=f"{NUMBER}@c.us",
                    )
                ]
            ),
        ),
        ("twilio", twilio_body(twilio_form("SM01234567", "delivered", to=f"whatsapp:+{NUMBER}"))),
    ]
    for provider, body in requests:
        path = f"/webhooks/{provider}"
        response = await client.post(path, data=body, headers=signed_headers(provider, body, path))
        assert response.status == 200, (provider, await response.text())

    pages = []
    for path in ("/sessions/stats", "/sessions/debug", "/metrics", "/sessions"):
        response = await client.get(path, headers=BEARER)
        assert response.status == 200, path
        pages.append(await response.text())
    assert sent.message_id not in pages[1]  # (ids are not listed; the funnel is)
    assert '"delivered": ' in pages[0]
    clock.advance(2 * 86400)  # windows end, the day completes: tombstones and history
    await store.cleanup()
    pages.append(await (await client.get("/sessions/stats", headers=BEARER)).text())
    await client.close()  # graceful stop: the final snapshot is written

    snapshot = state.read_text()
    assert '"sessions"' in snapshot and '"history"' in snapshot
    logged = "\n".join(
        record.getMessage() + (str(record.exc_info) if record.exc_info else "")
        for record in caplog.records
    )
    assert "sent" in logged.lower()  # the run did log
    for name, text in [
        ("snapshot", snapshot),
        ("log", logged),
        *((f"page {i}", page) for i, page in enumerate(pages)),
    ]:
        assert DIGITS not in text, name
