"""whatsapp-session-plugin: bounded delivery-receipt tracking for WhatsApp bots.

The pluggy project name is ``whatsapp``; third-party plugins are found through the
``wa_sessions`` entry-point group. The public API is what ``__all__`` names; the heavier parts
(the aiohttp server, the client) are imported on first use so that adapters and the pure manager
stay importable without them.
"""

from __future__ import annotations

import importlib
from typing import Any

from plugin.core.model import (
    CleanupReport,
    InboundMessage,
    MessageExpired,
    Outcome,
    Receipt,
    ReceiptError,
    SessionSummary,
    Status,
    StatusChange,
)

__all__ = [
    "CLIENT_KEY",
    "MANAGER_KEY",
    "PLUGIN_MANAGER_KEY",
    "RUNTIME_KEY",
    "SETTINGS_KEY",
    "CleanupReport",
    "InboundMessage",
    "MessageExpired",
    "MessageSession",
    "MessageSessionManager",
    "Outcome",
    "Receipt",
    "ReceiptError",
    "SendError",
    "SendResult",
    "SessionSummary",
    "Settings",
    "SettingsError",
    "Status",
    "StatusChange",
    "WhatsAppClient",
    "create_app",
    "hookimpl",
    "hookspec",
    "load_settings",
    "make_plugin_manager",
    "setup",
]

_LAZY = {
    "MessageSession": "plugin.core.manager",
    "MessageSessionManager": "plugin.core.manager",
    "SettingsError": "plugin.core.errors",
    "hookimpl": "plugin.hooks.hookspecs",
    "hookspec": "plugin.hooks.hookspecs",
    "make_plugin_manager": "plugin.hooks.plugins",
    "load_settings": "plugin.settings.loading",
    "create_app": "plugin.server.app",
    "setup": "plugin.server.app",
    "WhatsAppClient": "plugin.client",
    "SendError": "plugin.client",
    "SendResult": "plugin.hooks.pipeline",
    "Settings": "plugin.settings.loading",
    # The application keys (aiohttp ``web.AppKey``) of what ``setup(app)`` puts on the app.
    "SETTINGS_KEY": "plugin.server.runtime",
    "MANAGER_KEY": "plugin.server.runtime",
    "PLUGIN_MANAGER_KEY": "plugin.server.runtime",
    "CLIENT_KEY": "plugin.server.runtime",
    "RUNTIME_KEY": "plugin.server.runtime",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'plugin' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
