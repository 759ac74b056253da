"""The receive and send pipelines: aiogram-style middleware chains.

A middleware is ``async def mw(handler, event, data)``; it may act before and after
``await handler(event, data)``, or not call it at all to stop the event. The first middleware in a
chain is the outermost.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

__all__ = [
    "Handler",
    "Middleware",
    "MiddlewareRegistry",
    "OutboundMessage",
    "SendError",
    "SendResult",
    "build_chain",
]

Handler = Callable[[Any, dict[str, Any]], Awaitable[Any]]
Middleware = Callable[[Handler, Any, dict[str, Any]], Awaitable[Any]]


@dataclass(slots=True)
class OutboundMessage:
    """A message on its way out: the recipient, the provider's JSON payload and the tag its
    tracking counts it under (None: in no tag)."""

    to: str
    payload: dict[str, Any]
    provider: str = "meta"
    tag: str | None = None


@dataclass(slots=True)
class SendResult:
    """What the provider answered: the id later receipts will carry.

    ``replayed`` is True when an idempotent send answered from an earlier send with the same
    key instead of calling the provider (``raw`` is then empty unless the earlier send ran in
    this process).
    """

    message_id: str
    to: str
    provider: str = "meta"
    raw: dict[str, Any] = field(default_factory=dict)
    replayed: bool = False


class MiddlewareRegistry:
    """What ``whatsapp_register_middlewares`` implementations receive."""

    def __init__(self) -> None:
        self.receive_middlewares: list[Middleware] = []
        self.send_middlewares: list[Middleware] = []

    def receive(self, middleware: Middleware) -> Middleware:
        self.receive_middlewares.append(middleware)
        return middleware

    def send(self, middleware: Middleware) -> Middleware:
        self.send_middlewares.append(middleware)
        return middleware


def build_chain(middlewares: Sequence[Middleware], handler: Handler) -> Handler:
    """Wrap ``handler`` so that ``middlewares[0]`` runs first."""
    for middleware in reversed(middlewares):
        handler = partial(middleware, handler)
    return handler


class SendError(Exception):
    """A send the provider refused, or that never reached it.

    ``code`` and ``details`` are the provider's (Graph API ``error.code``,
    ``error.error_data.details``); ``http_status`` is ``None`` when no answer came back.
    """

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        http_status: int | None = None,
        details: str | None = None,
        provider: str = "meta",
        trace_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.http_status = http_status
        self.details = details
        self.provider = provider
        self.trace_id = trace_id

    def __str__(self) -> str:
        parts = [self.message]
        if self.code is not None:
            parts.append(f"code {self.code}")
        if self.http_status is not None:
            parts.append(f"HTTP {self.http_status}")
        return f"{parts[0]} ({', '.join(parts[1:])})" if len(parts) > 1 else parts[0]
