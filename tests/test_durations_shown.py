"""Durations on the way out: JSON keeps integer milliseconds (the seed's unit), text for people
(check-config, log lines) the short spelling "1d", "12h", "90s"."""

from __future__ import annotations

import logging

import pytest

from plugin.cli.check_config import summary
from tests.serving import make_app, make_settings

HOUR_MS = 3_600_000


async def test_debug_json_keeps_integer_milliseconds(aiohttp_client) -> None:
    app, _ = make_app({"ack_tracking_window": "12h", "cleanup_interval": "90s"})
    client = await aiohttp_client(app)
    stats = (await (await client.get("/sessions/debug")).json())["manager_stats"]
    assert stats["ack_tracking_window"] == 12 * HOUR_MS
    assert stats["session_period"] == 24 * HOUR_MS
    assert stats["max_session_age"] == 48 * HOUR_MS
    assert stats["cleanup_interval"] == 90_000
    assert all(
        type(stats[key]) is int
        for key in ("ack_tracking_window", "session_period", "max_session_age", "cleanup_interval")
    )


def test_check_config_text_spells_durations_for_people() -> None:
    settings = make_settings(
        {"ack_tracking_window": 43_200_000, "cleanup_interval": "90s", "hook_timeout": "50ms"}
    )
    text = "\n".join(summary(settings, None, []))
    assert 'ack_tracking_window = "12h"' in text
    assert 'session_period = "1d"' in text
    assert 'cleanup_interval = "90s"' in text
    assert "hook calls bounded by 50ms" in text
    assert "43200000" not in text


async def test_the_start_up_log_line_spells_the_cleanup_interval(
    aiohttp_client, caplog: pytest.LogCaptureFixture
) -> None:
    app, _ = make_app({"cleanup_interval": "12h"})
    with caplog.at_level(logging.INFO, logger="plugin.server.app"):
        await aiohttp_client(app)
    assert "cleanup every 12h" in caplog.text
