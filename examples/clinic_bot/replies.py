"""The clinic bot's answers to patients, as a plugin: ``whatsapp_message_received`` replies
through the application's client."""

from __future__ import annotations

import logging

from plugin import InboundMessage, hookimpl
from plugin.client import SendError, WhatsAppClient

log = logging.getLogger("clinic_bot.replies")

CONFIRMED = "Thank you, your appointment is confirmed. See you soon!"
CANCELLED = "Your appointment is cancelled. Call us to book another time."
HELP = "Reply YES to confirm your appointment or NO to cancel it."


def answer(text: str | None) -> str:
    """The reply to a patient's message."""
    word = (text or "").strip().lower()
    if word in {"yes", "y", "si", "sí", "1"}:
        return CONFIRMED
    if word in {"no", "n", "2"}:
        return CANCELLED
    return HELP


@hookimpl
async def whatsapp_message_received(message: InboundMessage, client: WhatsAppClient | None) -> None:
    if client is None:
        log.warning("cannot reply: sending is not configured (meta.access_token)")
        return
    try:
        await client.send_text(message.sender, answer(message.text))
    except SendError as exc:  # already reported through whatsapp_send_failed
        log.warning("reply to message %s failed: %s", message.message_id, exc)
