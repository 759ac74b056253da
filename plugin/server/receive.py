"""The receive pipeline: every normalized event of a webhook through the plugins' middlewares,
then to its destination (receipts to the manager through the tracking plugin, inbound messages to
``whatsapp_message_received``).

A middleware or hook that raises is logged and counted in the manager's ``hook_errors``; the
other events of the request still run and the provider still gets its 200.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import pluggy

from adapters.base import ParseResult
from plugin.core.errors import StoreUnavailable
from plugin.core.model import InboundMessage, Outcome
from plugin.hooks.events import call_hook
from plugin.hooks.pipeline import Handler, Middleware, build_chain
from plugin.hooks.plugins import collect_middlewares
from plugin.hooks.tracking import SessionTrackingPlugin
from plugin.stores.base import Store

if TYPE_CHECKING:
    from plugin.client import WhatsAppClient

__all__ = ["ReceivePipeline"]

log = logging.getLogger("plugin.server.receive")


def _only_tracking(middlewares: list[Middleware], manager: Store) -> bool:
    """True when the one receive middleware is the built-in tracking of ``manager``."""
    if len(middlewares) != 1:
        return False
    middleware = middlewares[0]
    owner = getattr(middleware, "__self__", None)
    return (
        isinstance(owner, SessionTrackingPlugin)
        and owner.manager is manager
        and getattr(middleware, "__func__", None) is SessionTrackingPlugin.receive
    )


class ReceivePipeline:
    """Runs the receive middlewares of a plugin manager over a webhook's events.

    Built once (at application start-up, when every plugin is registered). When the built-in
    tracking is the only receive middleware, receipts go straight to the manager: the same
    effect as the chain, without a coroutine and a dict per receipt.
    """

    def __init__(
        self,
        plugins: pluggy.PluginManager,
        manager: Store,
        client: WhatsAppClient | None = None,
    ) -> None:
        self.plugins = plugins
        self.manager = manager
        self.client = client
        middlewares = collect_middlewares(plugins).receive_middlewares
        self.fast = _only_tracking(middlewares, manager)
        self._chain: Handler = build_chain(middlewares, self._deliver)

    async def run(self, result: ParseResult, provider: str, outcomes: dict[Outcome, int]) -> None:
        """Process every receipt and inbound message of ``result``; count receipt outcomes."""
        if self.fast:
            if result.receipts:  # one call (one round trip for Redis) for the whole batch
                for each in await self.manager.apply_receipts(result.receipts):
                    outcomes[each] += 1
            for message in result.inbound:
                await self._deliver(message, {})
            return
        for event in (*result.receipts, *result.inbound):
            data: dict[str, Any] = {"provider": provider, "client": self.client}
            try:
                await self._chain(event, data)
            except StoreUnavailable:  # the webhook answers 503: the provider retries later
                raise
            except Exception:
                log.exception("receive middleware failed on a %s event", provider)
                self.manager.record_hook_error()
            outcome = data.get("outcome")
            if outcome is not None:
                outcomes[outcome] += 1

    async def _deliver(self, event: Any, data: dict[str, Any]) -> Any:
        """The innermost handler: receipts were applied by the tracking middleware; inbound
        messages go to the bot's ``whatsapp_message_received`` implementations."""
        if isinstance(event, InboundMessage):
            await call_hook(
                self.plugins,
                "whatsapp_message_received",
                {"message": event, "client": self.client},
                self.manager.record_hook_error,
            )
        return data.get("outcome")
