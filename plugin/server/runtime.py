"""What one application's plugin instance owns, and the typed keys that reach it.

``create_app()`` / ``setup()`` store one :class:`Runtime` per application; routes are bound
methods over it, so the hot path never looks anything up by key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pluggy
from aiohttp import web

from plugin.core.model import OUTCOME_KEYS, Outcome
from plugin.hooks.events import HookEvents
from plugin.settings.loading import Settings
from plugin.stores.base import Store

if TYPE_CHECKING:
    from plugin.client import WhatsAppClient
    from plugin.server.receive import ReceivePipeline

__all__ = [
    "CLIENT_KEY",
    "MANAGER_KEY",
    "PLUGIN_MANAGER_KEY",
    "RUNTIME_KEY",
    "SETTINGS_KEY",
    "Runtime",
    "WebhookCounters",
]


@dataclass(slots=True)
class WebhookCounters:
    """What one provider's route has seen since start (monotonic)."""

    requests: int = 0  # every request, refused ones included
    receipts: int = 0  # receipts parsed from authentic requests
    inbound: int = 0  # inbound messages parsed from authentic requests
    rejected: int = 0  # malformed items, plus bodies refused as a whole (400, 413)
    ignored: int = 0  # well-formed items we do not track
    unauthorized: int = 0  # requests refused with 401 or 403
    # Every parsed receipt ends in exactly one of: an outcome, ``stopped`` (a receive middleware
    # handled it without passing it on) or ``errors`` (its processing raised: logged, counted).
    stopped: int = 0
    errors: int = 0
    outcomes: dict[Outcome, int] = field(default_factory=lambda: dict.fromkeys(Outcome, 0))

    def as_dict(self) -> dict[str, int]:
        return {
            "requests": self.requests,
            "receipts": self.receipts,
            "inbound": self.inbound,
            "rejected": self.rejected,
            "ignored": self.ignored,
            "unauthorized": self.unauthorized,
        }

    def as_state(self) -> dict[str, Any]:
        """Everything, outcomes included, for a snapshot."""
        return {
            **self.as_dict(),
            "stopped": self.stopped,
            "errors": self.errors,
            "outcomes": self.outcome_counts(),
        }

    @classmethod
    def from_state(cls, state: Any) -> WebhookCounters:
        """Counters carried over a restart; what is missing or malformed starts at 0."""
        counters = cls()
        if not isinstance(state, dict):
            return counters
        for name in (
            "requests",
            "receipts",
            "inbound",
            "rejected",
            "ignored",
            "unauthorized",
            "stopped",
            "errors",
        ):
            value = state.get(name)
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                setattr(counters, name, value)
        outcomes = state.get("outcomes")
        if isinstance(outcomes, dict):
            for outcome in Outcome:
                value = outcomes.get(outcome.value)
                if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                    counters.outcomes[outcome] = value
        return counters

    def outcome_counts(self) -> dict[str, int]:
        return {key: self.outcomes[Outcome(key)] for key in OUTCOME_KEYS}


@dataclass(slots=True, eq=False)
class Runtime:
    """The settings, manager, plugin manager, event dispatch, client and counters of one app."""

    settings: Settings
    store: Store  # the in-memory store or the Redis store (settings.store)
    plugins: pluggy.PluginManager
    events: HookEvents
    client: WhatsAppClient | None
    webhooks: dict[str, WebhookCounters]
    pipeline: ReceivePipeline | None = None  # built at start-up, once every plugin is in
    views: tuple[dict[str, Any], dict[str, Any]] | None = None  # (debug, stats) for /metrics
    ready: bool = False  # started (any restore finished) and not yet stopping
    store_errors: int = 0  # requests answered 503 because the store was unavailable

    @property
    def manager(self) -> Store:
        """The store (its name before the stores had a protocol)."""
        return self.store


RUNTIME_KEY = web.AppKey("whatsapp_runtime", Runtime)
SETTINGS_KEY = web.AppKey("whatsapp_settings", Settings)
MANAGER_KEY: web.AppKey[Store] = web.AppKey("whatsapp_manager")
PLUGIN_MANAGER_KEY = web.AppKey("whatsapp_plugin_manager", pluggy.PluginManager)
CLIENT_KEY: web.AppKey[WhatsAppClient | None] = web.AppKey("whatsapp_client")
