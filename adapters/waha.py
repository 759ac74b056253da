"""WAHA (WhatsApp HTTP API) webhooks: ``message.ack``, ``message.ack.group`` and ``message``.

One event per request: ``{"event": "message.ack", "timestamp": <ms>, "payload": {"id":
"true_16505551234@c.us_3EB0…", "ack": 3, "fromMe": true, …}}``. The ack time is the envelope's
``timestamp`` (the payload's is the message's own). Incoming ``message`` events (``fromMe``
false) become ``InboundMessage``; every other event is ignored. Optional signing:
``X-Webhook-Hmac`` = hex HMAC-SHA512(key, raw body), ``X-Webhook-Hmac-Algorithm: sha512``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from adapters.base import (
    MalformedBody,
    ParseResult,
    SignatureInvalid,
    WebhookRequest,
    bare_address,
    epoch_seconds,
    header,
    is_message_id,
    load_json,
    verify_hex_hmac,
)
from plugin.core.model import InboundMessage, Receipt, ReceiptError, Status

__all__ = [
    "ACK_NAMES",
    "ACK_STATUSES",
    "ALGORITHM_HEADER",
    "PROVIDER",
    "SIGNATURE_HEADER",
    "ack_receipt",
    "handle",
    "parse",
    "verify_signature",
]

PROVIDER = "waha"
SIGNATURE_HEADER = "X-Webhook-Hmac"
ALGORITHM_HEADER = "X-Webhook-Hmac-Algorithm"
ACK_EVENTS = frozenset({"message.ack", "message.ack.group"})

#: whatsapp-web.js ``MessageAck`` numbering, which WAHA uses for every engine.
ACK_STATUSES: Mapping[int, Status] = {
    -1: Status.FAILED,  # ACK_ERROR
    0: Status.QUEUED,  # ACK_PENDING
    1: Status.SENT,  # ACK_SERVER
    2: Status.DELIVERED,  # ACK_DEVICE
    3: Status.READ,  # ACK_READ
    4: Status.PLAYED,  # ACK_PLAYED
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


def verify_signature(
    body: bytes, signature: str | None, key: str, algorithm: str | None = None
) -> None:
    """Check ``X-Webhook-Hmac`` (hex HMAC-SHA512 of the raw body); raise if absent or wrong."""
    if signature and algorithm is not None and algorithm.strip().lower() != "sha512":
        raise SignatureInvalid(f"{ALGORITHM_HEADER} {algorithm!r:.20} is not sha512")
    verify_hex_hmac(body, signature, key, digestmod="sha512", header_name=SIGNATURE_HEADER)


def handle(request: WebhookRequest, secret: str | None) -> ParseResult:
    """Authenticate (when ``secret``, the HMAC key, is set), then parse."""
    if secret is not None:
        headers = request.headers
        verify_signature(
            request.body,
            header(headers, SIGNATURE_HEADER),
            secret,
            header(headers, ALGORITHM_HEADER),
        )
    return parse(request.body)


def parse(body: bytes) -> ParseResult:
    """The receipt or inbound message of one WAHA event; other events are ignored."""
    document = load_json(body)
    if type(document) is not dict:
        raise MalformedBody("body is not a JSON object")
    event = document.get("event")
    if type(event) is not str:
        raise MalformedBody("not a WAHA event: no event name")
    result = ParseResult()
    payload = document.get("payload")
    if event in ACK_EVENTS:
        if type(payload) is not dict:
            result.reject(f"{event} without a payload object")
        else:
            _parse_ack(payload, document.get("timestamp"), result)
    elif event == "message":
        if type(payload) is not dict:
            result.reject("message without a payload object")
        elif payload.get("fromMe") is False:
            _parse_message(payload, result)
        else:
            result.ignored += 1
    else:
        result.ignored += 1
    return result


def ack_receipt(
    item: Mapping[str, Any],
    statuses: Mapping[int, Status],
    stamp: object,
    recipient: object,
    provider: str,
    result: ParseResult,
) -> None:
    """Append the receipt of one numbered ack to ``result`` (or count it rejected/ignored).

    Shared with the bridge adapter, whose acks use the same numbering or Baileys'.
    """
    message_id = item.get("id")
    if not is_message_id(message_id):
        result.reject(f"ack with an unusable id {message_id!r:.60}")
        return
    ack = item.get("ack")
    if type(ack) is not int:
        result.reject(f"ack {message_id}: ack is not an integer")
        return
    status = statuses.get(ack)
    if status is None:
        result.ignored += 1
        return
    try:
        timestamp = epoch_seconds(stamp)
    except ValueError as exc:
        result.reject(f"ack {message_id}: {exc}")
        return
    if recipient is not None and type(recipient) is not str:
        result.reject(f"ack {message_id}: recipient is not a string")
        return
    error = ACK_ERROR if status is Status.FAILED else None
    result.receipts.append(
        Receipt(
            message_id,
            status,
            timestamp,
            bare_address(recipient) if recipient else None,
            provider,
            error,
        )
    )


def _parse_ack(payload: dict[str, Any], stamp: object, result: ParseResult) -> None:
    if "ack" not in payload and type(name := payload.get("ackName")) is str:
        if name not in ACK_NAMES:
            result.ignored += 1
            return
        payload = {**payload, "ack": ACK_NAMES[name]}
    ack_receipt(payload, ACK_STATUSES, stamp, _recipient(payload), PROVIDER, result)


def _recipient(payload: dict[str, Any]) -> object:
    """The chat the message went to: ``to``, else the chat inside a serialized id
    (``true_<chat>_<hash>``), else ``from`` (WAHA puts the chat there for acks)."""
    to = payload.get("to")
    if to:
        return to
    message_id = payload.get("id")
    if type(message_id) is str and message_id.startswith(("true_", "false_")):
        parts = message_id.split("_", 2)
        if len(parts) == 3 and "@" in parts[1]:
            return parts[1]
    return payload.get("from")


def _parse_message(payload: dict[str, Any], result: ParseResult) -> None:
    message_id = payload.get("id")
    sender = payload.get("from")
    if not is_message_id(message_id) or type(sender) is not str or not sender:
        result.reject("message without a usable id or from")
        return
    try:
        timestamp = epoch_seconds(payload.get("timestamp"))
    except ValueError as exc:
        result.reject(f"message {message_id}: {exc}")
        return
    body = payload.get("body")
    result.inbound.append(
        InboundMessage(
            message_id=message_id,
            sender=bare_address(sender),
            timestamp=timestamp,
            type="media" if payload.get("hasMedia") else "text",
            text=body if type(body) is str else None,
            provider=PROVIDER,
            raw=payload,
        )
    )
