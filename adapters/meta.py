"""Meta WhatsApp Cloud API webhooks (and the BSPs that forward its format: 360dialog, Gupshup v3).

Envelope: ``{"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "messages",
"value": {"statuses": [...], "messages": [...]}}]}]}``. Every entry, change and status of a batch
is read. Only ``field == "messages"`` carries message receipts (``calls`` has its own statuses):
other fields count once per change in ``ignored``. Authentication: ``X-Hub-Signature-256:
sha256=<hex HMAC-SHA256(app_secret, raw body)>``; 360dialog uses a shared-secret header instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from adapters.base import (
    MalformedBody,
    ParseResult,
    Secrets,
    SignatureInvalid,
    SignatureMissing,
    WebhookRequest,
    address,
    clean_text,
    constant_time_equal,
    epoch_seconds,
    header,
    is_message_id,
    load_json,
    receipt_error,
    recipient_number,
    shown,
    verify_hex_hmac,
)
from plugin.core.model import InboundMessage, Receipt, ReceiptError, Status
from plugin.core.records import MAX_MESSAGE_ID_LENGTH

__all__ = [
    "PROVIDER",
    "SIGNATURE_HEADER",
    "STATUSES",
    "handle",
    "parse",
    "verify_handshake",
    "verify_signature",
]

PROVIDER = "meta"
SIGNATURE_HEADER = "X-Hub-Signature-256"
OBJECT = "whatsapp_business_account"
_FAILED = Status.FAILED
_MAX_NUMBER = 2**63  # a recipient_id integer: 19 digits at most, as JSON parsers read it alike

#: Meta statuses, plus Gupshup v3's ``enqueued``. Anything else (``deleted``, …) is ignored.
STATUSES: Mapping[str, Status] = {
    "enqueued": Status.QUEUED,
    "sent": Status.SENT,
    "delivered": Status.DELIVERED,
    "read": Status.READ,
    "played": Status.PLAYED,
    "failed": Status.FAILED,
}


def verify_signature(body: bytes, signature: str | None, app_secret: Secrets) -> None:
    """Check ``X-Hub-Signature-256`` against the raw body; raise if it is absent or wrong.
    ``app_secret`` may list two secrets during a rotation: a signature by either is valid."""
    verify_hex_hmac(
        body,
        signature,
        app_secret,
        digestmod="sha256",
        header_name=SIGNATURE_HEADER,
        prefix="sha256=",
    )


def verify_handshake(query: Mapping[str, str], verify_token: str | None) -> str:
    """Answer Meta's subscription handshake: the challenge when mode and token match."""
    if query.get("hub.mode") != "subscribe":
        raise SignatureInvalid("hub.mode is not 'subscribe'")
    given = query.get("hub.verify_token")
    if verify_token is None or given is None or not constant_time_equal(verify_token, given):
        raise SignatureInvalid("hub.verify_token does not match")
    challenge = query.get("hub.challenge")
    if challenge is None:
        raise MalformedBody("hub.challenge is missing")
    if not challenge.isprintable() or len(challenge) > 1024:
        raise MalformedBody("hub.challenge is not printable text")
    return challenge


def handle(
    request: WebhookRequest,
    secret: Secrets | None,
    *,
    shared_secret_header: tuple[str, str] | None = None,
) -> ParseResult:
    """Authenticate (app-secret signature and/or a 360dialog-style header), then parse."""
    if secret is not None:
        verify_signature(request.body, header(request.headers, SIGNATURE_HEADER), secret)
    if shared_secret_header is not None:
        name, expected = shared_secret_header
        given = header(request.headers, name)
        if not given:
            raise SignatureMissing(f"{name} header is missing")
        if not given.isascii() or not constant_time_equal(expected, given):
            raise SignatureInvalid(f"{name} does not match")
    return parse(request.body)


def parse(body: bytes) -> ParseResult:
    """Every receipt and inbound message of a notification (all entries, changes, items)."""
    document = load_json(body)
    if type(document) is not dict:
        raise MalformedBody("body is not a JSON object")
    kind = document.get("object")
    if kind is not None and kind != OBJECT:
        raise MalformedBody(f"object is {shown(kind, 40)}, expected {OBJECT!r}")
    entries = document.get("entry")
    if type(entries) is not list:
        raise MalformedBody("entry is not a list")
    result = ParseResult()
    for entry in entries:
        changes = entry.get("changes") if type(entry) is dict else None
        if type(changes) is not list:
            result.reject("entry without a changes list")
            continue
        for change in changes:
            if type(change) is not dict:
                result.reject("change is not an object")
            elif change.get("field") != "messages":
                result.ignored += 1
            elif type(value := change.get("value")) is not dict:
                result.reject("change without a value object")
            else:
                _parse_value(value, result)
    return result


def _parse_value(value: dict[str, Any], result: ParseResult) -> None:
    statuses = value.get("statuses")
    messages = value.get("messages")
    if statuses is None and messages is None:
        result.ignored += 1  # e.g. a value carrying only errors: nothing to track
        return
    if statuses is not None:
        if type(statuses) is list:
            _parse_statuses(statuses, value, result)
        else:
            result.reject("statuses is not a list")
    if messages is not None:
        if type(messages) is list:
            _parse_messages(messages, result)
        else:
            result.reject("messages is not a list")


def _parse_statuses(statuses: list[Any], value: dict[str, Any], result: ParseResult) -> None:
    # Hot path (up to 1000 items per POST): type checks and dict lookups, no exceptions unless
    # an item is malformed. Every field handed on is validated here: a bad item is rejected and
    # counted, never raised further (one bad item never takes its batch down).
    append = result.receipts.append
    for item in statuses:
        if type(item) is not dict:
            result.reject("status item is not an object")
            continue
        try:
            receipt = _status(item, value, result)
        except ValueError as exc:
            result.reject(f"status {shown(item.get('id'))}: {exc}")
            continue
        if receipt is not None:
            append(receipt)


def _status(item: dict[str, Any], value: dict[str, Any], result: ParseResult) -> Receipt | None:
    """The receipt of one status item; None when it is ignored; ValueError when malformed."""
    name = item.get("status")
    if type(name) is not str:
        if name is None and "id" not in item and type(item.get("type")) is str:
            result.ignored += 1  # Gupshup control event, e.g. {"type": "set-callback"}
            return None
        raise ValueError("status item without a status")
    status = STATUSES.get(name)
    if status is None:
        result.ignored += 1
        return None
    message_id = item.get("id")
    # the core's rule (valid_message_id), inline: this runs for every status
    if not (
        type(message_id) is str
        and 0 < len(message_id) <= MAX_MESSAGE_ID_LENGTH
        and message_id.isascii()
        and message_id.isprintable()
    ) and not is_message_id(message_id):  # a str subclass, say: the rule itself decides
        raise ValueError("unusable id")
    stamp = item.get("timestamp")
    if type(stamp) is str and len(stamp) < 12 and stamp.isascii() and stamp.isdecimal():
        timestamp: float | None = float(stamp)  # the usual case: seconds as a string
    else:
        timestamp = epoch_seconds(stamp)
    recipient = item.get("recipient_id")
    if (
        type(recipient) is str
        and 0 < len(recipient) <= 20
        and recipient.isascii()
        and (recipient.isdigit())
    ):
        pass  # the usual case: the number, as digits
    elif type(recipient) is int and 0 < recipient < _MAX_NUMBER:
        recipient = str(recipient)
    elif recipient:
        recipient = recipient_number(recipient)
    else:  # since 2026, users with a username may come with a business-scoped user id only
        recipient = _user_id(item.get("recipient_user_id"))
    if status is _FAILED:
        return Receipt(message_id, status, timestamp, recipient, PROVIDER, _failure(item, value))
    return Receipt(message_id, status, timestamp, recipient, PROVIDER)


def _user_id(value: object) -> str | None:
    """A business-scoped user id (``US.13491208655302741918``): printable ASCII, no spaces."""
    if value is None or value == "":
        return None
    if (
        type(value) is str
        and 0 < len(value) <= 64
        and value.isascii()
        and value.isprintable()
        and (" " not in value)
    ):
        return value
    raise ValueError("recipient_user_id is not a user id")


def _failure(item: dict[str, Any], value: dict[str, Any]) -> ReceiptError | None:
    """Why a message failed: ``status.errors[0]``, else ``value.errors[0]``, else Gupshup's
    ``code``/``reason`` on the status itself."""
    for errors in (item.get("errors"), value.get("errors")):
        if type(errors) is list and errors and type(errors[0]) is dict:
            return _error(errors[0])
    code, reason = item.get("code"), item.get("reason")
    if code or reason:
        return receipt_error(code, reason, None)
    return None


def _error(error: dict[str, Any]) -> ReceiptError:
    data = error.get("error_data")
    details = data.get("details") if type(data) is dict else None
    if type(details) is not str:
        details = error.get("message")
    return receipt_error(error.get("code"), error.get("title"), details)


def _parse_messages(messages: list[Any], result: ParseResult) -> None:
    for item in messages:
        if type(item) is not dict:
            result.reject("message item is not an object")
            continue
        try:
            message = _message(item)
        except ValueError as exc:
            result.reject(f"message {shown(item.get('id'))}: {exc}")
            continue
        result.inbound.append(message)


def _message(item: dict[str, Any]) -> InboundMessage:
    message_id = item.get("id")
    if not is_message_id(message_id):
        raise ValueError("unusable id")
    sender = address(item.get("from") or item.get("from_user_id"))
    kind = item.get("type", "unknown")
    if type(kind) is not str or not kind.isprintable() or len(kind) > 64:
        raise ValueError("type is not a short string")
    text = item.get("text")
    return InboundMessage(
        message_id=message_id,
        sender=sender,
        timestamp=epoch_seconds(item.get("timestamp")),
        type=kind,
        text=clean_text(text.get("body")) if type(text) is dict else None,
        provider=PROVIDER,
        raw=item,
    )
