"""whatsapp-session-plugin: bounded delivery-receipt tracking for WhatsApp bots.

The pluggy project name is ``whatsapp``; third-party plugins are found through the
``wa_sessions`` entry-point group. The public API is what ``__all__`` names (deeper module paths
may change). The heavier parts (the aiohttp server, the client, settings) are imported on first
use, so that adapters and the pure manager stay importable without them; type checkers see
every name through the ``TYPE_CHECKING`` imports below.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from plugin.client import SendError, WhatsAppClient
    from plugin.core.errors import SettingsError, StoreUnavailable
    from plugin.core.manager import MessageSession, MessageSessionManager
    from plugin.hooks.hookspecs import hookimpl, hookspec
    from plugin.hooks.pipeline import OutboundMessage, SendResult
    from plugin.hooks.plugins import make_plugin_manager
    from plugin.server.app import create_app, setup
    from plugin.server.runtime import (
        CLIENT_KEY,
        MANAGER_KEY,
        PLUGIN_MANAGER_KEY,
        RUNTIME_KEY,
        SETTINGS_KEY,
    )
    from plugin.settings.loading import Settings, load_settings
    from plugin.stores.base import Store

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
    "OutboundMessage",
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
    "Store",
    "StoreUnavailable",
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
    "StoreUnavailable": "plugin.core.errors",
    "hookimpl": "plugin.hooks.hookspecs",
    "hookspec": "plugin.hooks.hookspecs",
    "OutboundMessage": "plugin.hooks.pipeline",
    "SendResult": "plugin.hooks.pipeline",
    "make_plugin_manager": "plugin.hooks.plugins",
    "Settings": "plugin.settings.loading",
    "load_settings": "plugin.settings.loading",
    "Store": "plugin.stores.base",
    "create_app": "plugin.server.app",
    "setup": "plugin.server.app",
    "CLIENT_KEY": "plugin.server.runtime",
    "MANAGER_KEY": "plugin.server.runtime",
    "PLUGIN_MANAGER_KEY": "plugin.server.runtime",
    "RUNTIME_KEY": "plugin.server.runtime",
    "SETTINGS_KEY": "plugin.server.runtime",
    "WhatsAppClient": "plugin.client",
    "SendError": "plugin.client",  # defined beside SendResult in plugin.hooks.pipeline
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'plugin' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
