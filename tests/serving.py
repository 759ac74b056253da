"""Helpers of the end-to-end HTTP tests: a settable clock, settings, an app with an injected
manager, and a local server that speaks the Graph API's send endpoint."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from plugin.core.manager import MessageSessionManager
from plugin.server.app import create_app
from plugin.settings.loading import Settings
from tests.providers import DEFAULT_TIMESTAMP

META_SECRET = "meta-app-secret"
VERIFY_TOKEN = "verify-me"
ADMIN_TOKEN = "admin-token-123"
ACCESS_TOKEN = "graph-access-token"
PHONE_NUMBER_ID = "106540352242922"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = DEFAULT_TIMESTAMP + 60.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_settings(data: Mapping[str, Any] | None = None, env: str = "development") -> Settings:
    """Settings for a test: a signed Meta route by default; ``data`` overrides (nested dicts)."""
    base: dict[str, Any] = {"meta": {"app_secret": META_SECRET, "verify_token": VERIFY_TOKEN}}
    for key, value in (data or {}).items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    return Settings.from_mapping(base, env=env)


def make_app(
    data: Mapping[str, Any] | None = None, clock: Clock | None = None, **kwargs: Any
) -> tuple[web.Application, MessageSessionManager]:
    """An app with a fresh manager on ``clock`` (no entry points: tests see only their own
    plugins)."""
    settings = make_settings(data)
    manager = MessageSessionManager.from_settings(settings, clock=clock or Clock())
    kwargs.setdefault("entry_points", False)
    return create_app(settings, manager=manager, **kwargs), manager


class FakeGraph:
    """``POST /{version}/{phone_number_id}/messages`` as the Graph API answers it. Records each
    request; ``fail_with`` makes the next answers an error."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.fail_with: tuple[int, dict[str, Any]] | None = None
        self.url = ""  # the API base URL, once a test server runs self.app
        self.app = web.Application()
        self.app.router.add_post("/{version}/{phone_number_id}/messages", self.messages)

    async def messages(self, request: web.Request) -> web.Response:
        payload = await request.json()
        self.requests.append(
            {
                "phone_number_id": request.match_info["phone_number_id"],
                "authorization": request.headers.get("Authorization"),
                "payload": payload,
            }
        )
        if self.fail_with is not None:
            status, document = self.fail_with
            return web.json_response(document, status=status)
        number = str(payload["to"]).removeprefix("+")
        answer: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "contacts": [{"input": payload["to"], "wa_id": number}],
            "messages": [{"id": f"wamid.SENT{len(self.requests):04d}"}],
        }
        if payload.get("type") == "template":
            answer["messages"][0]["message_status"] = "accepted"
        return web.json_response(answer)


GRAPH_ERROR = {
    "error": {
        "message": "(#131030) Recipient phone number not in allowed list",
        "type": "OAuthException",
        "code": 131030,
        "error_data": {
            "messaging_product": "whatsapp",
            "details": "Recipient phone number not in allowed list: Add recipient phone number "
            "to recipient list and try again.",
        },
        "fbtrace_id": "AbCdEf123",
    }
}
