"""The status page ``GET /sessions`` (DESIGN.md, "HTTP surface"): its numbers are those of
``/sessions/stats`` on both stores, it loads nothing from another host, it is guarded like the
admin routes (Bearer, or Basic with the admin token as password), and it works in a real
headless Chromium (Debian's ``chromium`` driven by Playwright)."""

from __future__ import annotations

import base64
import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from plugin.core.model import COUNTER_KEYS
from plugin.server.admin import basic_password
from plugin.server.status_page import page_context
from tests.providers import DEFAULT_TIMESTAMP, meta_failed_status, meta_status, meta_status_body
from tests.redis_support import redis_prefix, redis_url
from tests.serving import ADMIN_TOKEN, Clock, make_app
from tests.test_redis_server import redis_app
from tests.test_server import post_meta

__all__ = ["redis_prefix", "redis_url"]  # fixtures used here

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
SCREENSHOT = ROOT / "docs" / "img" / "status-page.png"
DAY = 86400.0
BEARER = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
#: The failure codes of the traffic, one kind each (recipient, window, limit, template, account).
CODES = (131026, 131047, 130429, 132001, 131042)
MIDDAY = DEFAULT_TIMESTAMP - 12 * 3600  # 11:27 UTC: today's session stays active for hours


def midday() -> Clock:
    return Clock(MIDDAY)


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def metrics_of(html: str) -> dict[str, int]:
    """The ``data-metric`` elements of a page and their integers."""
    return {
        key: int(value) for key, value in re.findall(r'data-metric="([a-z_]+)">\s*(\d+)\s*<', html)
    }


async def drive_traffic(client: Any, clock: Clock, days: int = 4, per_day: int = 24) -> None:
    """A few days of receipts through the signed Meta webhook: delivered, read, failed with
    codes of each kind, and some that stay sent (pending, then expired when the window ends)."""
    for day in range(days):
        statuses = []
        for index in range(per_day + 3 * day):
            message_id = f"wamid.D{day}M{index:03d}"
            stamp = int(clock.now) - 60 + index
            if index % 6 == 5:
                code = CODES[(index // 6 + day) % len(CODES)]
                statuses.append(meta_failed_status(message_id, code=code, timestamp=str(stamp)))
                continue
            statuses.append(meta_status(message_id, "sent", timestamp=str(stamp)))
            if index % 6 in (1, 2, 3):
                statuses.append(meta_status(message_id, "delivered", timestamp=str(stamp + 5)))
            if index % 6 == 2:
                statuses.append(meta_status(message_id, "read", timestamp=str(stamp + 40)))
        response = await post_meta(client, meta_status_body(statuses))
        assert response.status == 200, await response.text()
        if day < days - 1:
            clock.advance(DAY)


def traffic_app(clock: Clock, **extra: Any) -> Any:
    app, _ = make_app(
        {"server": {"admin_token": ADMIN_TOKEN}, "ack_tracking_window": "2h", **extra}, clock=clock
    )
    return app


async def page_and_stats(client: Any, headers: dict[str, str]) -> tuple[str, dict[str, Any]]:
    page = await client.get("/sessions", headers=headers)
    assert page.status == 200, await page.text()
    assert page.headers["Content-Type"].startswith("text/html")
    stats = await client.get("/sessions/stats", headers=headers)
    assert stats.status == 200
    return await page.text(), await stats.json()


# -- the page over HTTP, both stores -----------------------------------------------------------


def assert_page_matches(html: str, stats: dict[str, Any]) -> None:
    summary = stats["summary"]
    assert metrics_of(html) == {key: summary[key] for key in COUNTER_KEYS}
    assert summary["sent"] > 0 and summary["failed"] > 0 and summary["pending"] > 0
    for kind, count in summary["failures"].items():
        assert f'data-failures="{kind}">{count}<' in html
    latency = summary["latency"]
    if latency["delivered"]["count"] or latency["read"]["count"]:
        assert 'data-latency="delivered-p50"' in html and "Not measured yet." not in html
    else:
        assert "Not measured yet." in html
    assert "<svg" in html and html.count("<rect") >= len(stats["history"])
    assert len(stats["history"]) >= 2
    for entry in stats["history"] + stats["sessions"]:
        assert entry["session_id"] in html
    assert 'http-equiv="refresh" content="60"' in html
    # Nothing from another host: no scripts, no stylesheets, no images, no URLs at all.
    assert not re.search(r"(?i)\b(src|href)\s*=|<script|<link|url\(|https?://|//[a-z]", html)


async def test_the_page_shows_the_numbers_of_the_stats(aiohttp_client):
    clock = midday()
    client = await aiohttp_client(traffic_app(clock))
    await drive_traffic(client, clock)
    html, stats = await page_and_stats(client, BEARER)
    assert_page_matches(html, stats)
    assert stats["summary"]["expired"] == 0  # today's window is not over yet
    clock.advance(3 * 3600)  # today's pending messages expire: the page settles them first
    html, stats = await page_and_stats(client, basic("staff", ADMIN_TOKEN))
    assert metrics_of(html)["expired"] == stats["summary"]["expired"] > 0


async def test_the_page_on_the_redis_store(aiohttp_client, redis_url, redis_prefix):
    clock = midday()
    app, _ = redis_app(
        redis_url,
        redis_prefix,
        clock,
        ack_tracking_window="2h",
        server={"admin_token": ADMIN_TOKEN},
    )
    client = await aiohttp_client(app)
    await drive_traffic(client, clock)
    html, stats = await page_and_stats(client, basic("", ADMIN_TOKEN))
    assert_page_matches(html, stats)


# -- the guard ---------------------------------------------------------------------------------


async def test_every_admin_route_takes_basic_with_the_token_as_password(aiohttp_client):
    client = await aiohttp_client(traffic_app(midday(), server={"admin_token": ADMIN_TOKEN}))
    for path in ("/sessions", "/sessions/stats", "/sessions/debug", "/metrics"):
        for user in ("staff", "", "front desk ü"):
            assert (await client.get(path, headers=basic(user, ADMIN_TOKEN))).status == 200
        for headers in (
            {},
            basic("staff", "wrong"),
            basic("staff", ADMIN_TOKEN + "x"),
            {"Authorization": "Basic !!!"},
            {"Authorization": "Basic"},
            {"Authorization": f"Basic {base64.b64encode(b'no-colon').decode()}"},
        ):
            response = await client.get(path, headers=headers)
            assert response.status == 401, (path, headers)
            challenges = response.headers.getall("WWW-Authenticate")
            assert 'Basic realm="wa-sessions", charset="UTF-8"' in challenges
            assert challenges[0].startswith("Bearer")
            assert ADMIN_TOKEN not in await response.text()
        wrong = await client.get(path, headers={"Authorization": "Bearer nope"})
        assert wrong.status == 401  # DESIGN.md: a wrong credential gets 401, so a browser prompts
        challenges = wrong.headers.getall("WWW-Authenticate")
        assert 'Basic realm="wa-sessions", charset="UTF-8"' in challenges


def test_basic_credentials_are_parsed_strictly():
    assert basic_password(base64.b64encode(b"u:p:q").decode()) == b"p:q"
    assert basic_password(base64.b64encode(b":secret").decode()) == b"secret"
    assert basic_password(base64.b64encode(b"nocolon").decode()) is None
    assert basic_password("not base64!") is None
    assert basic_password("ünïcode") is None


async def test_without_a_token_the_page_answers_loopback_only(aiohttp_client):
    app, _ = make_app()
    client = await aiohttp_client(app)
    response = await client.get("/sessions")
    assert response.status == 200 and 'data-metric="sent">0<' in await response.text()


def test_the_page_shows_latency_and_tags_when_the_stats_carry_them():
    stats = {
        "summary": {
            **dict.fromkeys(COUNTER_KEYS, 0),
            "sent": 10,
            "delivered": 8,
            "active_sessions": 1,
            "historical_sessions": 0,
            "tracked_messages": 10,
            "failures": {"window": 2},
            "latency": {
                "delivered": {"count": 8, "p50": 2.0, "p90": 75.0, "p99": 7300},
                "read": {"count": 0, "p50": None, "p90": None, "p99": None},
            },
        },
        "sessions": [
            {
                "session_id": "2026-12-02",
                **dict.fromkeys(COUNTER_KEYS, 0),
                "sent": 10,
                "delivered": 8,
                "tags": {
                    "reminder": {**dict.fromkeys(COUNTER_KEYS, 0), "sent": 6, "delivered": 6},
                    "lab": {**dict.fromkeys(COUNTER_KEYS, 0), "sent": 4, "delivered": 2},
                },
            }
        ],
        "history": [],
    }
    context = page_context(stats, 1_764_633_600.0)
    assert context["rate"] == "80.0 %"
    assert context["latency"] == [
        {"status": "delivered", "count": 8, "p50": "2.0 s", "p90": "1.2 min", "p99": "2.0 h"},
        {"status": "read", "count": 0, "p50": "n/a", "p90": "n/a", "p99": "n/a"},
    ]
    assert [(t["tag"], t["sent"], t["rate"]) for t in context["tags"]] == [
        ("reminder", 6, "100.0 %"),
        ("lab", 4, "50.0 %"),
    ]
    assert [f["kind"] for f in context["failures"]] == ["window"]
    assert "template" in context["failures"][0]["advice"]


# -- a real browser ----------------------------------------------------------------------------


def _chromium_or_skip() -> Any:
    """Playwright's async API, once Chromium is there; skipped without it (failed under CI)."""
    reason = None
    if not (Path(CHROMIUM).exists() and shutil.which(CHROMIUM)):
        reason = f"no Chromium at {CHROMIUM} (apt-get install chromium; .ci/run does)"
    else:
        try:
            import playwright.async_api as api
        except ImportError:
            reason = "playwright is not installed (the test extra has it)"
        else:
            return api
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


async def test_the_page_in_headless_chromium(aiohttp_server, aiohttp_client, tmp_path):
    playwright_api = _chromium_or_skip()
    clock = midday()
    server = await aiohttp_server(traffic_app(clock))
    client = await aiohttp_client(server)
    await drive_traffic(client, clock)
    base = str(server.make_url("/"))

    async with playwright_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            wrong = await browser.new_context(
                http_credentials={"username": "staff", "password": "wrong"}
            )
            refused = await (await wrong.new_page()).goto(base + "sessions")
            assert refused is not None and refused.status == 401
            await wrong.close()

            context = await browser.new_context(
                http_credentials={"username": "staff", "password": ADMIN_TOKEN},
                viewport={"width": 1100, "height": 900},
            )
            page = await context.new_page()
            requested: list[str] = []
            page.on("request", lambda request: requested.append(request.url))
            response = await page.goto(base + "sessions")
            assert response is not None and response.status == 200
            shown = {
                key: (await page.locator(f'[data-metric="{key}"]').inner_text()).strip()
                for key in COUNTER_KEYS
            }
            stats = await (await client.get("/sessions/stats", headers=BEARER)).json()
            assert shown == {key: str(stats["summary"][key]) for key in COUNTER_KEYS}
            assert await page.locator("svg rect").count() > 0
            assert all(url.startswith(base) for url in requested), requested
            shot = tmp_path / "status-page.png"
            await page.screenshot(path=str(shot), full_page=True)
            assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            if os.environ.get("UPDATE_SCREENSHOT") == "1":  # make screenshot
                SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(shot, SCREENSHOT)
            await context.close()
        finally:
            await browser.close()
