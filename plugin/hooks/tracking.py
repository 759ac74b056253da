"""The built-in session-tracking plugin: receipts go to the manager, sent messages are tracked.

It is an ordinary plugin, registered first, contributing one receive and one send middleware,
so there is one mechanism for built-in and third-party behaviour.
"""

from __future__ import annotations

from typing import Any

from plugin.core.manager import MessageSessionManager
from plugin.core.model import Receipt
from plugin.hooks.hookspecs import hookimpl
from plugin.hooks.pipeline import Handler, MiddlewareRegistry, OutboundMessage, SendResult
from plugin.stores.base import Store, as_store

__all__ = ["SessionTrackingPlugin"]


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
            await self.manager.track_sent(result.message_id, recipient=result.to)
        return result

    @hookimpl
    def whatsapp_register_middlewares(self, register: MiddlewareRegistry) -> None:
        register.receive(self.receive)
        register.send(self.send)
