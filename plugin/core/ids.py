"""Message ids as the stores track them: the provider's own message key.

whatsapp-web.js and WAHA serialize a message id as ``<fromMe>_<chat>_<key>`` with an optional
``_<participant>`` in groups: ``true_16505551234@c.us_3EB0C767D71D4A0B6E8D``, its ``@lid`` form
``true_123456789012345@lid_3EB0…``, or ``false_120363025246125486@g.us_3EB0…_16505551234@c.us``.
The chat part says where an ack was seen, not which message it is about (the same message is
acked under ``@c.us`` and under ``@lid``), and it embeds a phone number. Every such id is
therefore tracked by its key alone (``3EB0…``): by the adapters and by the send path, so that a
send and its acks meet whichever chat form each one carries, and no number is kept in an id.

Every other id (Meta ``wamid.…``, Twilio ``SM…``, Baileys ``key.id``) is its own key.
"""

from __future__ import annotations

__all__ = ["message_key"]

_SERIALIZED_PREFIXES = ("true_", "false_")


def message_key(provider: str, raw_id: str) -> str:
    """The key a message is tracked by: ``raw_id`` itself, or the key part of a serialized
    whatsapp-web.js / WAHA id (``""`` when a serialized id has an empty key: not usable).

    ``provider`` names where the id comes from; the serialized form is recognised for every
    provider (no provider's own ids look like it), so a bot that records a WAHA send under
    another provider name still meets its acks.
    """
    del provider  # one rule for all providers today; the parameter keeps call sites explicit
    if not raw_id.startswith(_SERIALIZED_PREFIXES):
        return raw_id
    _, _, rest = raw_id.partition("_")
    chat, _, key = rest.partition("_")
    if "@" not in chat:
        return raw_id  # "true_…" without a chat part: not a serialized id
    key, _, _participant = key.partition("_")
    return key
