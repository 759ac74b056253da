"""A clinic's existing aiohttp bot that turns the plugin on with ``setup(app, settings)``.

The bot has its own routes (a page, and ``POST /reminders`` that its scheduling system calls);
the plugin adds the webhook routes, ``/sessions/stats`` and friends, the background cleanup and
the client the bot sends reminders with. Run it with ``python -m examples.clinic_bot.bot`` from
the repository root (it reads ``examples/clinic_bot/settings.toml``)::

    WHATSAPP_META__ACCESS_TOKEN=… WHATSAPP_META__APP_SECRET=… python -m examples.clinic_bot.bot
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from aiohttp import web

from plugin.client import SendError
from plugin.server.app import CLIENT_KEY, SETTINGS_KEY, setup

SETTINGS_FILE = Path(__file__).with_name("settings.toml")
REMINDER_TEMPLATE = "appointment_reminder"
REMINDER_LANGUAGE = "es"

log = logging.getLogger("clinic_bot")


async def index(request: web.Request) -> web.Response:
    return web.Response(text="Clinica San Rafael bot")


async def send_reminder(request: web.Request) -> web.Response:
    """``{"appointment_id": "A-1001", "phone": "+57…", "patient": "Ana", "when": "martes 9:00"}``
    → a template reminder.

    The appointment id is the send's idempotency key: when the scheduling system retries (after
    a timeout, say), the patient still gets one reminder, and the retry gets the first one's
    message id (``"replayed": true``)."""
    try:
        appointment: dict[str, Any] = await request.json()
        phone, patient, when = appointment["phone"], appointment["patient"], appointment["when"]
        appointment_id = appointment.get("appointment_id")
    except (ValueError, KeyError, TypeError, AttributeError):
        raise web.HTTPBadRequest(text='expected {"phone", "patient", "when"}') from None
    client = request.app[CLIENT_KEY]
    if client is None:
        raise web.HTTPServiceUnavailable(text="sending is not configured")
    parameters = [{"type": "text", "text": patient}, {"type": "text", "text": when}]
    try:
        result = await client.send_template(
            phone,
            REMINDER_TEMPLATE,
            REMINDER_LANGUAGE,
            [{"type": "body", "parameters": parameters}],
            idempotency_key=f"reminder:{appointment_id}" if appointment_id else None,
        )
    except SendError as exc:
        return web.json_response({"error": exc.message, "code": exc.code}, status=502)
    return web.json_response({"message_id": result.message_id, "replayed": result.replayed})


def build_app(settings: Any = None, **plugin_options: Any) -> web.Application:
    """The bot's application with the plugin enabled. ``settings`` defaults to this directory's
    settings.toml; ``plugin_options`` go to ``setup()`` (tests pass ``clock=``)."""
    app = web.Application()
    app.router.add_get("/", index)
    app.router.add_post("/reminders", send_reminder)
    setup(app, SETTINGS_FILE if settings is None else settings, **plugin_options)
    return app


def main() -> None:
    logging.basicConfig(level=logging.INFO)
    app = build_app()
    server = app[SETTINGS_KEY].server
    web.run_app(app, host=server.host, port=server.port, access_log=None)


if __name__ == "__main__":
    main()
