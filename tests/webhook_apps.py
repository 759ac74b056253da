"""Apps with every provider route enabled and signed, on either store, the signing headers of
each route, and the invariants every answer must leave intact (shared by the bad-input tests
and the fuzz tests)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from aiohttp import web

from plugin.core.model import COUNTER_KEYS, OUTCOME_KEYS
from plugin.server.app import create_app
from plugin.server.runtime import PLUGIN_MANAGER_KEY, RUNTIME_KEY
from tests.providers import sign_bridge, sign_meta, sign_twilio, sign_waha
from tests.serving import META_SECRET, Clock, make_settings

__all__ = [
    "PROVIDERS",
    "PUBLIC_URL",
    "check_invariants",
    "provider_app",
    "signed_headers",
    "tracebacks",
]

PROVIDERS = ("meta", "twilio", "waha", "bridge")
PUBLIC_URL = "https://bot.example.com"
TWILIO_TOKEN = "twilio-token"
WAHA_KEY = "waha-key"
BRIDGE_SECRET = "bridge-secret"


def provider_app(
    store: str,
    clock: Clock,
    redis: tuple[str, str] | None = None,
    plugins: list[object] | None = None,
    **extra: Any,
) -> web.Application:
    """An app with the four provider routes, each with its secret; ``store`` memory or redis
    (``redis`` = (url, prefix))."""
    data: dict[str, Any] = {
        "twilio": {"auth_token": TWILIO_TOKEN, "public_url": PUBLIC_URL},
        "waha": {"hmac_key": WAHA_KEY},
        "bridge": {"secret": BRIDGE_SECRET},
        **extra,
    }
    if store == "redis":
        assert redis is not None
        data.update(store="redis", redis_url=redis[0], redis_prefix=redis[1])
    app = create_app(make_settings(data), clock=clock, entry_points=False)
    for plugin in plugins or ():  # registered before start-up, where the pipeline is built
        app[PLUGIN_MANAGER_KEY].register(plugin)
    return app


def signed_headers(provider: str, body: bytes, path: str = "") -> dict[str, str]:
    """The headers a provider signs ``body`` with (Twilio: for ``PUBLIC_URL + path``)."""
    if provider == "meta":
        return {
            "X-Hub-Signature-256": sign_meta(body, META_SECRET),
            "Content-Type": "application/json",
        }
    if provider == "twilio":
        from urllib.parse import parse_qsl

        form = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
        return {
            "X-Twilio-Signature": sign_twilio(PUBLIC_URL + path, form, TWILIO_TOKEN),
            "Content-Type": "application/x-www-form-urlencoded",
        }
    if provider == "waha":
        return {
            "X-Webhook-Hmac": sign_waha(body, WAHA_KEY),
            "X-Webhook-Hmac-Algorithm": "sha512",
            "Content-Type": "application/json",
        }
    return {
        "X-Bridge-Signature": sign_bridge(body, BRIDGE_SECRET),
        "Content-Type": "application/json",
    }


def tracebacks(records: Iterable[logging.LogRecord]) -> list[str]:
    """Log records at ERROR or above that carry a traceback."""
    return [r.getMessage() for r in records if r.levelno >= logging.ERROR and r.exc_info]


def _funnel_holds(counters: dict[str, Any]) -> bool:
    return counters["sent"] == sum(
        counters[k] for k in ("delivered", "failed", "pending", "expired", "evicted")
    )


async def check_invariants(client: Any, app: web.Application) -> dict[str, Any]:
    """Assert what no request may break: counters never negative, the funnel identity per
    session, history entry and summary, and every parsed receipt with exactly one outcome
    (parsed = outcomes + stopped + errors, errors = 0; the store counts the same outcomes).
    Returns the stats document."""
    response = await client.get("/sessions/stats")
    assert response.status == 200, await response.text()
    document: dict[str, Any] = await response.json()
    summary = document["summary"]
    for entry in (summary, *document["sessions"], *document["history"]):
        for key in (*COUNTER_KEYS, *OUTCOME_KEYS):
            value = entry.get(key, entry.get("receipts", {}).get(key, 0))
            assert isinstance(value, int) and value >= 0, (key, entry)
        assert all(v >= 0 for v in entry["receipts"].values()), entry
        assert _funnel_holds(entry), entry
    webhooks = app[RUNTIME_KEY].webhooks
    parsed = sum(c.receipts for c in webhooks.values())
    outcomes = sum(sum(c.outcomes.values()) for c in webhooks.values())
    stopped = sum(c.stopped for c in webhooks.values())
    errors = sum(c.errors for c in webhooks.values())
    assert errors == 0
    assert parsed == outcomes + stopped, (parsed, outcomes, stopped)
    assert sum(summary["receipts"].values()) == outcomes
    for counters in document["webhooks"].values():
        assert all(v >= 0 for v in counters.values())
    return document
