"""The receive pipeline: every normalized event of a webhook through the plugins' middlewares,
then to its destination (receipts to the manager through the tracking plugin, inbound messages to
``whatsapp_message_received``).

A middleware or hook that raises is logged and counted in the manager's ``hook_errors``; the
other events of the request still run and the provider still gets its 200.

Every parsed receipt ends in exactly one place: an outcome (``outcomes``), ``stopped`` (a
middleware returned without passing it on) or ``errors`` (applying it raised; logged and
counted, the rest of the batch still applied). Adapters validate every field, so ``errors``
stays 0 unless something is wrong inside: ``parsed = outcomes + stopped + errors`` always.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import pluggy

from adapters.base import ParseResult
from plugin.core.errors import StoreUnavailable
from plugin.core.model import InboundMessage
from plugin.hooks.events import HookEvents, call_hook
from plugin.hooks.pipeline import Handler, Middleware, build_chain
from plugin.hooks.plugins import collect_middlewares
from plugin.hooks.tracking import SessionTrackingPlugin
from plugin.server.runtime import WebhookCounters
from plugin.stores.base import Store

if TYPE_CHECKING:
    from plugin.client import WhatsAppClient

__all__ = ["ReceivePipeline"]

log = logging.getLogger("plugin.server.receive")

#: Receipts applied between two checks for room in the event queue (backpressure), at most;
#: a quarter of the queue when that is less, so one slice overshoots it by at most that much.
SLICE = 256


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

    Backpressure: when ``events`` holds ``event_queue_size`` hook events, the next slice of
    receipts waits for room (events are never dropped; the provider's request takes longer).
    """

    def __init__(
        self,
        plugins: pluggy.PluginManager,
        manager: Store,
        client: WhatsAppClient | None = None,
        events: HookEvents | None = None,
    ) -> None:
        self.plugins = plugins
        self.manager = manager
        self.client = client
        self.events = events
        self.hook_timeout = events.hook_timeout if events is not None else None
        self.slice = SLICE if events is None else max(1, min(SLICE, events.max_queue // 4))
        middlewares = collect_middlewares(plugins).receive_middlewares
        self.fast = _only_tracking(middlewares, manager)
        self._chain: Handler = build_chain(middlewares, self._deliver)

    async def run(self, result: ParseResult, provider: str, counters: WebhookCounters) -> None:
        """Process every receipt and inbound message of ``result``; count where each receipt
        ends (an outcome, ``stopped`` or ``errors``)."""
        outcomes = counters.outcomes
        events = self.events
        if self.fast:
            receipts, size = result.receipts, self.slice
            # One call (one round trip for Redis) per slice of the batch, room permitting.
            for first in range(0, len(receipts), size):
                if events is not None:
                    await events.room()
                chunk = receipts if len(receipts) <= size else receipts[first : first + size]
                applied = await self.manager.apply_receipts(chunk)
                for each in applied:
                    outcomes[each] += 1
                # A store gives one outcome per receipt it applied; one that raised is logged
                # and left out by the store (the rest of the batch applied): count it here.
                if len(applied) != len(chunk):
                    counters.errors += len(chunk) - len(applied)
            for message in result.inbound:
                await self._deliver(message, {})
            return
        parsed = len(result.receipts)
        for index, event in enumerate((*result.receipts, *result.inbound)):
            if events is not None:
                await events.room()
            data: dict[str, Any] = {"provider": provider, "client": self.client}
            failed = False
            try:
                await self._chain(event, data)
            except StoreUnavailable:  # the webhook answers 503: the provider retries later
                raise
            except Exception:
                log.exception("receive middleware failed on a %s event", provider)
                self.manager.record_hook_error()
                failed = True
            outcome = data.get("outcome")
            if outcome is not None:
                outcomes[outcome] += 1
            elif index < parsed:  # a receipt that got no outcome
                if failed:
                    counters.errors += 1
                else:
                    counters.stopped += 1

    async def _deliver(self, event: Any, data: dict[str, Any]) -> Any:
        """The innermost handler: receipts were applied by the tracking middleware; inbound
        messages go to the bot's ``whatsapp_message_received`` implementations."""
        if isinstance(event, InboundMessage):
            await call_hook(
                self.plugins,
                "whatsapp_message_received",
                {"message": event, "client": self.client},
                self.manager.record_hook_error,
                self.hook_timeout,
            )
        return data.get("outcome")
