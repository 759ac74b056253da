"""Hook specifications of the ``whatsapp`` pluggy project.

Event hooks (``whatsapp_status_changed``, ``whatsapp_message_expired``,
``whatsapp_session_completed``, ``whatsapp_cleanup_completed``, ``whatsapp_message_received``,
``whatsapp_send_failed``) may be implemented as plain functions or as coroutines: the framework
awaits what is awaitable, and one failing implementation never stops the others (it is logged and
counted in ``hook_errors``). Implementations may accept any subset of the arguments.

Delivery: at least once, never exactly once. No event is dropped while the process lives
(producers wait for room in the event queue instead); a coroutine implementation is cancelled
after ``hook_timeout`` and counted in ``hook_errors``; events still queued at shutdown past
``shutdown_timeout`` are logged and counted (``wa_sessions_events_lost_total``), except a
``session_completed`` of the Redis store, which stays pending in its Stream. An event may be
delivered again (a restart from an older snapshot, a Redis replica taking over), so each payload
carries ``event_id``: a deterministic digest of what the event is about, to make a hook
idempotent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from plugin.core.model import (
        CleanupReport,
        InboundMessage,
        MessageExpired,
        SessionSummary,
        StatusChange,
    )
    from plugin.hooks.pipeline import MiddlewareRegistry, OutboundMessage

__all__ = [
    "PROJECT",
    "hookimpl",
    "hookspec",
    "whatsapp_cleanup_completed",
    "whatsapp_message_expired",
    "whatsapp_message_received",
    "whatsapp_register_middlewares",
    "whatsapp_send_failed",
    "whatsapp_session_completed",
    "whatsapp_status_changed",
]

PROJECT = "whatsapp"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def whatsapp_status_changed(change: StatusChange) -> Any:
    """A receipt moved a message up the ladder (or started tracking it: ``change.outcome`` is
    ``adopted``).

    :param change: message id, session id, old and new status, outcome, redacted recipient,
        provider, the receipt's timestamp and, for failures, the provider's error;
        ``event_id`` digests (session, message, new status).
    """


@hookspec
def whatsapp_message_expired(expired: MessageExpired) -> Any:
    """A message was released while neither delivered nor failed: a reminder that never arrived.

    :param expired: message id, session id, last status, redacted recipient, when it was sent,
        and ``reason`` (``"window"``: its ack window ended; ``"session"``: its session completed);
        ``event_id`` digests (session, message).
    """


@hookspec
def whatsapp_session_completed(summary: SessionSummary) -> Any:
    """A session completed; delivered at least once per session (never dropped while the
    process lives), with the same ``summary.event_id`` each time. With the Redis store it is
    delivered from a Redis Stream that the completing script appends to, and acknowledged only
    after the hooks ran: when a replica dies first, another one delivers it again (after
    ``claim_idle``); only entries trimmed by ``event_stream_maxlen`` before that are lost, and
    counted (``wa_sessions_events_lost_total``).

    :param summary: the session's funnel counters, receipt outcomes and error-code tallies;
        ``event_id`` digests the session id.
    """


@hookspec
def whatsapp_cleanup_completed(report: CleanupReport) -> Any:
    """A periodic (or explicit) cleanup ran.

    :param report: expired messages, completed sessions, history trimmed and remaining,
        tombstones dropped; ``event_id`` digests the cleanup's time and completed sessions.
    """


@hookspec
def whatsapp_message_received(message: InboundMessage, client: Any) -> Any:
    """A user sent the bot a message. Bots implement this to reply.

    :param message: the normalized inbound message.
    :param client: the application's ``WhatsAppClient`` (or ``None`` when sending is not
        configured), to answer with.
    """


@hookspec
def whatsapp_send_failed(message: OutboundMessage, error: Exception) -> Any:
    """Sending a message failed at the provider (the send call also raises).

    :param message: what was to be sent.
    :param error: the exception, carrying the provider's error when it gave one.
    """


@hookspec
def whatsapp_register_middlewares(register: MiddlewareRegistry) -> None:
    """Contribute aiogram-style middlewares, ``async def mw(handler, event, data)``.

    :param register: call ``register.receive(mw)`` for the receive path (one call per
        normalized event: a ``Receipt`` or an ``InboundMessage``) and ``register.send(mw)`` for
        the send path (one call per ``OutboundMessage``). A middleware that does not await
        ``handler(event, data)`` stops the event.
    """
