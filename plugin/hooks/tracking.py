"""The built-in session-tracking plugin: receipts go to the manager, sent messages are tracked.

It is an ordinary plugin, registered first, contributing one receive and one send middleware,
so there is one mechanism for built-in and third-party behaviour.

A message the provider accepted is never reported as failed because it could not be tracked:
when the store is away (StoreUnavailable) the send still returns its result, and the tracking is
handed to the store's :class:`~plugin.stores.deferred.DeferredWrites`, retried in the background
with the original send time. Any other tracking error is logged and counted in ``hook_errors``.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from plugin.core.errors import StoreUnavailable
from plugin.core.manager import MessageSessionManager
from plugin.core.model import Receipt
from plugin.core.records import message_key
from plugin.hooks.hookspecs import hookimpl
from plugin.hooks.pipeline import Handler, MiddlewareRegistry, OutboundMessage, SendResult
from plugin.stores.base import Store, as_store
from plugin.stores.deferred import deferred_writes

__all__ = ["SessionTrackingPlugin"]

log = logging.getLogger("plugin.hooks.tracking")


class SessionTrackingPlugin:
    """Feeds the store (the in-memory manager or the Redis store) from the receive and send
    pipelines."""

    name = "session-tracking"

    def __init__(self, manager: Store | MessageSessionManager) -> None:
        self.manager = as_store(manager)

    async def receive(self, handler: Handler, event: Any, data: dict[str, Any]) -> Any:
        if isinstance(event, Receipt):
            data["outcome"] = await self.manager.apply_receipt(event)
        return await handler(event, data)

    async def send(self, handler: Handler, event: Any, data: dict[str, Any]) -> Any:
        result = await handler(event, data)
        if isinstance(event, OutboundMessage) and isinstance(result, SendResult):
            await self.track(result, event.tag)
        return result

    async def track(self, result: SendResult, tag: str | None = None) -> None:
        """Track a message the provider accepted, by its message key (a serialized
        whatsapp-web.js / WAHA id by its key part: no number in the id), under ``tag``;
        never raises."""
        manager = self.manager
        key = message_key(result.provider, result.message_id)
        if not key:
            manager.record_hook_error()
            log.error(
                "a %s send answered with an unusable message id; not tracked", result.provider
            )
            return
        try:
            await manager.track_sent(key, recipient=result.to, tag=tag)
        except StoreUnavailable as exc:
            sent_at = time.time()  # the retry keeps the message in the session it was sent in
            label = f"{key} to {manager.redact(result.to)}"
            log.warning("tracking of %s deferred: %s", label, exc)

            async def retry() -> None:
                await manager.track_sent(key, recipient=result.to, sent_at=sent_at, tag=tag)

            deferred_writes(manager).defer("track", label, retry)
        except Exception:
            manager.record_hook_error()
            log.exception(
                "tracking of %s to %s failed; the message is not tracked",
                key,
                manager.redact(result.to),
            )

    @hookimpl
    def whatsapp_register_middlewares(self, register: MiddlewareRegistry) -> None:
        register.receive(self.receive)
        register.send(self.send)
