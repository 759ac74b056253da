"""Numbered acks, as whatsapp-web.js, WAHA and Baileys report them: the numbering, and how one
ack becomes a receipt. Shared by the WAHA and bridge adapters.

whatsapp-web.js ``MessageAck`` (WAHA uses it for every engine): -1 ERROR → failed, 0 PENDING →
queued, 1 SERVER → sent, 2 DEVICE → delivered, 3 READ → read, 4 PLAYED → played. Baileys
``WAMessageStatus`` is that number + 1 (0 ERROR … 5 PLAYED).

Ids are tracked by their message key (:func:`plugin.core.records.message_key`): an ack for
``true_16505551234@c.us_3EB0…`` and one for ``true_123456789012345@lid_3EB0…`` are both about
``3EB0…``. The chat of a serialized id still names the recipient when the ack carries no other.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from adapters.base import ParseResult, epoch_seconds, is_message_id, recipient_number, shown
from plugin.core.model import Receipt, ReceiptError, Status
from plugin.core.records import message_key

__all__ = [
    "ACK_ERROR",
    "ACK_NAMES",
    "ACK_STATUSES",
    "BAILEYS_STATUSES",
    "ack_receipt",
    "chat_of",
]

#: whatsapp-web.js ``MessageAck`` numbering, which WAHA uses for every engine.
ACK_STATUSES: Mapping[int, Status] = {
    -1: Status.FAILED,  # ACK_ERROR
    0: Status.QUEUED,  # ACK_PENDING
    1: Status.SENT,  # ACK_SERVER
    2: Status.DELIVERED,  # ACK_DEVICE
    3: Status.READ,  # ACK_READ
    4: Status.PLAYED,  # ACK_PLAYED
}
#: Baileys ``WAMessageStatus``: the same ladder, numbered from 0.
BAILEYS_STATUSES: Mapping[int, Status] = {
    number + 1: status for number, status in ACK_STATUSES.items()
}
#: WAHA's ``ackName``, used when ``ack`` is absent.
ACK_NAMES: Mapping[str, int] = {
    "ERROR": -1,
    "PENDING": 0,
    "SERVER": 1,
    "DEVICE": 2,
    "READ": 3,
    "PLAYED": 4,
}
#: What a failed ack says: the libraries give no reason.
ACK_ERROR = ReceiptError(None, "ERROR", None)


def chat_of(raw_id: object) -> str | None:
    """The chat inside a serialized id (``true_<chat>_<key>``), or None."""
    if type(raw_id) is str and raw_id.startswith(("true_", "false_")):
        parts = raw_id.split("_", 2)
        if len(parts) == 3 and "@" in parts[1]:
            return parts[1]
    return None


#: Acks are small integers; a number past this is garbage (refused), not a future ack value.
_ACK_RANGE = 1 << 31


def ack_receipt(
    item: Mapping[str, Any],
    statuses: Mapping[int, Status],
    stamp: object,
    recipient: object,
    provider: str,
    result: ParseResult,
) -> None:
    """Append the receipt of one numbered ack to ``result`` (or count it rejected/ignored).

    Every field is validated here: the id (then reduced to its message key), the ack number,
    the timestamp and the recipient; a bad one rejects this ack only.
    """
    raw_id = item.get("id")
    if not is_message_id(raw_id):
        result.reject(f"ack with an unusable id {shown(raw_id)}")
        return
    message_id = message_key(provider, raw_id)
    if not is_message_id(message_id):
        result.reject(f"ack with an unusable id {shown(raw_id)}")
        return
    ack = item.get("ack")
    if type(ack) is not int or not -_ACK_RANGE < ack < _ACK_RANGE:
        result.reject(f"ack {message_id}: ack is not an integer of the library's numbering")
        return
    status = statuses.get(ack)
    if status is None:
        result.ignored += 1
        return
    try:
        timestamp = epoch_seconds(stamp)
        number = recipient_number(recipient)
    except ValueError as exc:
        result.reject(f"ack {message_id}: {exc}")
        return
    error = ACK_ERROR if status is Status.FAILED else None
    result.receipts.append(Receipt(message_id, status, timestamp, number, provider, error))
