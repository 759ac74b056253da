"""The record codec: how one tracked message is packed into one ``int``, how recipients are
encoded and hashed, which message ids are accepted, and the message key an id is tracked by. One
definition for every store: the Redis store's scripts and arguments use the same constants and
functions.

A packed record: bits 0-2 the status, bits 3-19 the send time in seconds since the session's
start (a period is at most 25 h = 90,000 s < 2**17), bits 20-70 the recipient field (a 40-bit
keyed hash when recipients are redacted; otherwise the digits shifted left by one, or a hash with
the lowest bit set). Above them, only where needed, so that most records stay 60-bit ints: bit 71
says the send time is not known (a message adopted from a delivered or read receipt: it has no
delivery latency), bits 72-77 the message's tag index in its session (0: untagged).
"""

from __future__ import annotations

import hashlib
from typing import TypeGuard

__all__ = [
    "HASHED_FLAG",
    "MAX_DIGITS",
    "MAX_ERROR_CODES",
    "MAX_ERROR_CODE_LENGTH",
    "MAX_MESSAGE_ID_LENGTH",
    "MAX_TAGS",
    "MAX_TAG_LENGTH",
    "NO_SEND_TIME",
    "OFFSET_BITS",
    "OFFSET_MASK",
    "OFFSET_SHIFT",
    "OTHER_TAG",
    "RECIPIENT_BITS",
    "RECIPIENT_CACHE_SIZE",
    "RECIPIENT_HASH_BITS",
    "RECIPIENT_MASK",
    "RECIPIENT_SHIFT",
    "STATUS_BITS",
    "STATUS_MASK",
    "TAG_BITS",
    "TAG_SHIFT",
    "RecipientCodec",
    "check_message_id",
    "message_key",
    "normalize_recipient",
    "normalize_tag",
    "valid_message_id",
]

STATUS_BITS = 3
STATUS_MASK = (1 << STATUS_BITS) - 1
OFFSET_BITS = 17
OFFSET_SHIFT = STATUS_BITS
OFFSET_MASK = (1 << OFFSET_BITS) - 1
RECIPIENT_SHIFT = STATUS_BITS + OFFSET_BITS
#: Without redaction: the lowest bit of the recipient field, set when it holds a hash.
HASHED_FLAG = 1
#: The recipient field: up to 15 digits (below 2**50) shifted left by one.
RECIPIENT_BITS = 51
RECIPIENT_MASK = (1 << RECIPIENT_BITS) - 1
#: Set when the record's send time is not known (adopted from a delivered or read receipt).
NO_SEND_TIME = 1 << (RECIPIENT_SHIFT + RECIPIENT_BITS)
TAG_SHIFT = RECIPIENT_SHIFT + RECIPIENT_BITS + 1
TAG_BITS = 6
#: The tag index of messages past ``max_tags_per_session`` distinct tags.
OTHER_TAG = (1 << TAG_BITS) - 1
#: The most named tags a session can have (``max_tags_per_session``).
MAX_TAGS = OTHER_TAG - 1
#: Tags are cut to this many characters.
MAX_TAG_LENGTH = 64
RECIPIENT_HASH_BITS = 40
#: E.164: at most 15 digits, below 2**50.
MAX_DIGITS = 15

#: Ids longer than this (or not printable ASCII) are refused: the memory bound counts on it.
MAX_MESSAGE_ID_LENGTH = 128
#: Error codes are cut to this many characters.
MAX_ERROR_CODE_LENGTH = 128
#: Distinct error codes tallied per session; the rest are counted under "other".
MAX_ERROR_CODES = 32
#: Recipient hashes remembered (bots write to the same people again and again).
RECIPIENT_CACHE_SIZE = 1024

_STRIP = str.maketrans("", "", "+ -().\t")


def valid_message_id(message_id: object) -> TypeGuard[str]:
    """An id every store and adapter accepts: 1 to 128 printable ASCII characters (so no control
    character and no lone surrogate)."""
    return (
        isinstance(message_id, str)
        and 0 < len(message_id) <= MAX_MESSAGE_ID_LENGTH
        and message_id.isascii()
        and message_id.isprintable()
    )


def check_message_id(message_id: object) -> str:
    """``message_id`` if :func:`valid_message_id`, else ``ValueError``."""
    if not valid_message_id(message_id):
        raise ValueError(
            f"message id must be 1 to {MAX_MESSAGE_ID_LENGTH} printable ASCII characters: "
            f"{message_id!r:.80}"
        )
    return message_id


def normalize_recipient(recipient: str) -> str:
    """One spelling per number: ``"+1 650-555-1234"`` and ``"16505551234"`` hash alike."""
    return recipient.translate(_STRIP)


def normalize_tag(tag: object) -> str | None:
    """A tag as sessions count it: printable text, at most 64 characters; None for no tag."""
    if tag is None:
        return None
    text = "".join(ch for ch in str(tag) if ch.isprintable()).strip()[:MAX_TAG_LENGTH]
    return text or None


class RecipientCodec:
    """Encodes recipients for packed records and events; ``key`` keys the hash."""

    __slots__ = ("_cache", "key", "redact_recipients")

    def __init__(self, key: bytes, redact_recipients: bool) -> None:
        self.key = key[:64]
        self.redact_recipients = redact_recipients
        self._cache: dict[str, int] = {}

    def keyed_hash(self, recipient: str) -> int:
        """A 40-bit keyed hash of the normalized number."""
        digest = hashlib.blake2b(
            normalize_recipient(recipient).encode("utf-8", "surrogatepass"),
            digest_size=8,
            key=self.key,
        ).digest()
        return int.from_bytes(digest) >> (64 - RECIPIENT_HASH_BITS)

    def redact(self, recipient: str | None) -> str | None:
        """The keyed hash that logs, summaries and events carry instead of a phone number."""
        if not recipient:
            return None
        return f"~{self.keyed_hash(recipient):010x}"

    def field(self, recipient: str | None) -> int:
        """The recipient field of a packed record (0: no recipient)."""
        if not recipient:
            return 0
        if self.redact_recipients:
            cached = self._cache.get(recipient)
            if cached is None:
                if len(self._cache) >= RECIPIENT_CACHE_SIZE:
                    self._cache.clear()
                cached = self._cache[recipient] = self.keyed_hash(recipient) or 1
            return cached
        digits = normalize_recipient(recipient)
        if digits.isdigit() and digits.isascii() and len(digits) <= MAX_DIGITS and digits[0] != "0":
            return int(digits) << 1
        return (self.keyed_hash(recipient) << 1) | HASHED_FLAG

    def text(self, field: int) -> str | None:
        """The recipient as events show it, from a recipient field."""
        if field == 0:
            return None
        if self.redact_recipients:
            return f"~{field:010x}"
        if field & HASHED_FLAG:
            return f"~{field >> 1:010x}"
        return str(field >> 1)

    def event_text(self, recipient: str | None) -> str | None:
        """What :meth:`text` gives back for ``recipient`` after :meth:`field`."""
        return self.text(self.field(recipient))


# -- message keys ---------------------------------------------------------------------------------
#
# whatsapp-web.js and WAHA serialize a message id as ``<fromMe>_<chat>_<key>`` with an optional
# ``_<participant>`` in groups: ``true_16505551234@c.us_3EB0C767D71D4A0B6E8D``, its ``@lid`` form
# ``true_123456789012345@lid_3EB0…``, or ``false_120363025246125486@g.us_3EB0…_16505551234@c.us``.
# The chat part says where an ack was seen, not which message it is about (the same message is
# acked under ``@c.us`` and under ``@lid``), and it embeds a phone number. Such an id is tracked by
# its key alone (``3EB0…``), by the adapters and by the send path, so that a send and its acks
# meet whichever chat form each carries, and no number is kept in an id. Every other id (Meta
# ``wamid.…``, Twilio ``SM…``, Baileys ``key.id``) is its own key.

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
