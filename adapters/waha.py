"""WAHA (WhatsApp HTTP API) webhooks: ``message.ack``, ``message.ack.group`` and ``message``.

One event per request: ``{"event": "message.ack", "timestamp": <ms>, "payload": {"id":
"true_16505551234@c.us_3EB0…", "ack": 3, "fromMe": true, …}}``. The ack time is the envelope's
``timestamp`` (the payload's is the message's own). Incoming ``message`` events (``fromMe``
false) become ``InboundMessage``; every other event is ignored. Optional signing:
``X-Webhook-Hmac`` = hex HMAC-SHA512(key, raw body), ``X-Webhook-Hmac-Algorithm: sha512``.
"""

from __future__ import annotations

from typing import Any

from adapters.acks import ACK_ERROR, ACK_NAMES, ACK_STATUSES, ack_receipt, chat_of
from adapters.base import (
    MalformedBody,
    ParseResult,
    Secrets,
    SignatureInvalid,
    WebhookRequest,
    address,
    clean_text,
    epoch_seconds,
    header,
    is_message_id,
    load_json,
    shown,
    verify_hex_hmac,
)
from plugin.core.model import InboundMessage

__all__ = [
    "ACK_ERROR",
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


def verify_signature(
    body: bytes, signature: str | None, key: Secrets, algorithm: str | None = None
) -> None:
    """Check ``X-Webhook-Hmac`` (hex HMAC-SHA512 of the raw body); raise if absent or wrong."""
    if signature and algorithm is not None and algorithm.strip().lower() != "sha512":
        raise SignatureInvalid(f"{ALGORITHM_HEADER} {shown(algorithm, 20)} is not sha512")
    verify_hex_hmac(body, signature, key, digestmod="sha512", header_name=SIGNATURE_HEADER)


def handle(request: WebhookRequest, secret: Secrets | None) -> ParseResult:
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
    return chat_of(payload.get("id")) or payload.get("from")


def _parse_message(payload: dict[str, Any], result: ParseResult) -> None:
    message_id = payload.get("id")
    try:
        if not is_message_id(message_id):
            raise ValueError("unusable id")
        sender = address(payload.get("from"))
        timestamp = epoch_seconds(payload.get("timestamp"))
    except ValueError as exc:
        result.reject(f"message {shown(message_id)}: {exc}")
        return
    result.inbound.append(
        InboundMessage(
            message_id=message_id,
            sender=sender,
            timestamp=timestamp,
            type="media" if payload.get("hasMedia") else "text",
            text=clean_text(payload.get("body")),
            provider=PROVIDER,
            raw=payload,
        )
    )
