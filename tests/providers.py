"""Builders of provider webhook payloads, signed as each provider signs them.

Shared by the adapter tests and the end-to-end HTTP tests: ``from tests.providers import …``.
The signing functions are written from the providers' documentation, independently of
``adapters/``, so that a test using them checks the adapters against the spec, not against
themselves. Bodies are returned as the exact bytes to POST.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

from adapters.base import WebhookRequest

# --- Public test vectors (PROVIDERS.md) -------------------------------------------------------

#: Meta, from the pywa test-suite.
META_VECTOR_SECRET = "1222e786b144d0e85b9f365372d93676"
META_VECTOR_BODY = (
    b'{"object":"whatsapp_business_account","entry":[{"id":"264937493375603","changes":[{"value":'
    b'{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550953877",'
    b'"phone_number_id":"277321005464405"},"contacts":[{"profile":{"name":"PyWa Tests"},'
    b'"wa_id":"972544401243"}],"messages":[{"from":"972544401243","id":'
    b'"wamid.HBgMOTcyNTQ0NDAxMjQzFQIAEhggM0RFQTNCMEEwRTY3QzUwODYzMDc4NjQ4QzM4ODAxM0YA",'
    b'"timestamp":"1730231903","text":{"body":"Hey there! I am using PyWa."},"type":"text"}]},'
    b'"field":"messages"}]}]}'
)
META_VECTOR_SIGNATURE = "sha256=54edfa1d7259e0eb13c677cc7d73d1b5c86cfa12433d19156e058ab9251bc441"

#: Twilio, from the twilio-python test-suite.
TWILIO_VECTOR_TOKEN = "12345"
TWILIO_VECTOR_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
TWILIO_VECTOR_PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Caller": "+14158675309",
    "Digits": "1234",
    "From": "+14158675309",
    "To": "+18005551212",
}
TWILIO_VECTOR_SIGNATURE = "RSOYDt4T1cUTdK1PDd93/VVr8B8="

DEFAULT_TIMESTAMP = 1750030073  # seconds
DEFAULT_NUMBER = "16505551234"


def webhook_request(
    body: bytes,
    headers: Mapping[str, str] | None = None,
    url: str = "https://bot.example.com/webhooks/test",
    query: Mapping[str, str] | None = None,
) -> WebhookRequest:
    """A POST as a web framework would hand it to an adapter."""
    return WebhookRequest("POST", url, dict(headers or {}), body, dict(query or {}))


# --- Meta Cloud API (also 360dialog, Gupshup v3) -----------------------------------------------


def sign_meta(body: bytes, secret: str) -> str:
    """``X-Hub-Signature-256`` of a body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def meta_status(
    message_id: str,
    status: str = "delivered",
    timestamp: str | int | float | None = str(DEFAULT_TIMESTAMP),
    recipient_id: str | None = DEFAULT_NUMBER,
    **extra: Any,
) -> dict[str, Any]:
    """One ``value.statuses[]`` item; ``None`` leaves a field out."""
    item: dict[str, Any] = {"id": message_id, "status": status}
    if timestamp is not None:
        item["timestamp"] = timestamp
    if recipient_id is not None:
        item["recipient_id"] = recipient_id
    item.update(extra)
    return item


def meta_failed_status(
    message_id: str,
    code: int = 131049,
    title: str = "This message was not delivered to maintain healthy ecosystem engagement.",
    details: str = "In order to maintain a healthy ecosystem engagement, the message failed.",
    **extra: Any,
) -> dict[str, Any]:
    """A failed status as Meta sends it since 2026: errors, no recipient_id, no contacts."""
    error = {
        "code": code,
        "title": title,
        "message": title,
        "error_data": {"details": details},
        "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/",
    }
    extra.setdefault("recipient_id", None)
    return meta_status(message_id, "failed", errors=[error], **extra)


def meta_inbound(
    message_id: str, sender: str = DEFAULT_NUMBER, text: str = "hello", **extra: Any
) -> dict[str, Any]:
    """One ``value.messages[]`` text message."""
    return {
        "from": sender,
        "id": message_id,
        "timestamp": str(DEFAULT_TIMESTAMP),
        "type": "text",
        "text": {"body": text},
        **extra,
    }


def meta_change(
    statuses: Sequence[Any] | None = None,
    messages: Sequence[Any] | None = None,
    field: str = "messages",
    with_contacts: bool = True,
    **value_extra: Any,
) -> dict[str, Any]:
    """One ``entry[].changes[]`` item."""
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
    }
    if with_contacts:
        value["contacts"] = [{"profile": {"name": "Test User"}, "wa_id": DEFAULT_NUMBER}]
    if statuses is not None:
        value["statuses"] = list(statuses)
    if messages is not None:
        value["messages"] = list(messages)
    value.update(value_extra)
    return {"value": value, "field": field}


def meta_body(*entries: Sequence[dict[str, Any]], **document_extra: Any) -> bytes:
    """A notification; each positional argument is one entry's list of changes."""
    document = {
        "object": "whatsapp_business_account",
        "entry": [
            {"id": f"10229012934039{index}", "changes": list(changes)}
            for index, changes in enumerate(entries)
        ],
        **document_extra,
    }
    return json.dumps(document, separators=(",", ":")).encode()


def meta_status_body(statuses: Sequence[dict[str, Any]], entries: int = 1) -> bytes:
    """A notification carrying ``statuses``, split evenly over ``entries`` entries."""
    size = -(-len(statuses) // entries) if statuses else 0
    chunks = [statuses[i * size : (i + 1) * size] for i in range(entries)] if size else [[]]
    return meta_body(*[[meta_change(statuses=chunk)] for chunk in chunks])


def meta_statuses(
    count: int, status: str = "delivered", prefix: str = "wamid.T"
) -> list[dict[str, Any]]:
    """``count`` distinct, well-formed statuses."""
    return [meta_status(f"{prefix}{index:08d}", status) for index in range(count)]


# --- Twilio -------------------------------------------------------------------------------------


def sign_twilio(url: str, params: Mapping[str, str] | Iterable[tuple[str, str]], token: str) -> str:
    """``X-Twilio-Signature``: base64 HMAC-SHA1 of the URL + sorted names and their values."""
    pairs = params.items() if isinstance(params, Mapping) else params
    data = url + "".join(name + value for name, value in sorted(pairs))
    return base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()).decode()


def twilio_form(
    message_sid: str = "SM0123456789abcdef0123456789abcdef",
    status: str = "delivered",
    to: str | None = f"whatsapp:+{DEFAULT_NUMBER}",
    **extra: str,
) -> dict[str, str]:
    """The fields of one status callback (``None`` values left out)."""
    form = {
        "AccountSid": "AC0123456789abcdef0123456789abcdef",
        "ApiVersion": "2010-04-01",
        "ChannelPrefix": "whatsapp",
        "From": "whatsapp:+14155238886",
        "MessageSid": message_sid,
        "MessageStatus": status,
        "SmsSid": message_sid,
        "SmsStatus": status,
    }
    if to is not None:
        form["To"] = to
    form.update(extra)
    return form


def twilio_body(form: Mapping[str, str]) -> bytes:
    """The form-encoded body of a callback."""
    return urlencode(form).encode()


# --- WAHA ---------------------------------------------------------------------------------------


def sign_waha(body: bytes, key: str) -> str:
    """``X-Webhook-Hmac``: hex HMAC-SHA512 of the body."""
    return hmac.new(key.encode(), body, hashlib.sha512).hexdigest()


def waha_headers(body: bytes, key: str) -> dict[str, str]:
    """The signing headers WAHA sends."""
    return {
        "X-Webhook-Hmac": sign_waha(body, key),
        "X-Webhook-Hmac-Algorithm": "sha512",
        "X-Webhook-Request-Id": "req_01",
        "X-Webhook-Timestamp": str(DEFAULT_TIMESTAMP * 1000),
    }


def waha_event(
    event: str, payload: Any, timestamp_ms: int | None = DEFAULT_TIMESTAMP * 1000
) -> bytes:
    """Any WAHA event envelope."""
    document: dict[str, Any] = {
        "id": "evt_01",
        "event": event,
        "session": "default",
        "engine": "WEBJS",
        "payload": payload,
    }
    if timestamp_ms is not None:
        document["timestamp"] = timestamp_ms
    return json.dumps(document).encode()


def waha_ack_body(
    message_id: str = f"true_{DEFAULT_NUMBER}@c.us_3EB0C767D71D4A0B6E8D",
    ack: int = 3,
    event: str = "message.ack",
    timestamp_ms: int | None = DEFAULT_TIMESTAMP * 1000,
    **payload_extra: Any,
) -> bytes:
    """A ``message.ack`` (or ``message.ack.group``) event."""
    payload: dict[str, Any] = {
        "id": message_id,
        "from": f"{DEFAULT_NUMBER}@c.us",
        "participant": None,
        "fromMe": True,
        "ack": ack,
        **payload_extra,
    }
    return waha_event(event, payload, timestamp_ms)


def waha_message_body(
    message_id: str = f"false_{DEFAULT_NUMBER}@c.us_AAAA1111BBBB2222",
    sender: str = f"{DEFAULT_NUMBER}@c.us",
    body: str = "hello",
    from_me: bool = False,
) -> bytes:
    """A ``message`` event."""
    payload = {
        "id": message_id,
        "timestamp": DEFAULT_TIMESTAMP,
        "from": sender,
        "fromMe": from_me,
        "body": body,
        "hasMedia": False,
    }
    return waha_event("message", payload)


# --- Bridge (whatsapp-web.js / Baileys) ---------------------------------------------------------


def sign_bridge(body: bytes, secret: str) -> str:
    """``X-Bridge-Signature`` of a body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def bridge_ack(
    message_id: str,
    ack: int,
    timestamp: int | float | None = None,
    to: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """One ack of the bridge format (``None`` leaves a field out)."""
    item: dict[str, Any] = {"id": message_id, "ack": ack}
    if timestamp is not None:
        item["timestamp"] = timestamp
    if to is not None:
        item["to"] = to
    item.update(extra)
    return item


def bridge_body(acks: Sequence[Any], library: str | None = "whatsapp-web.js") -> bytes:
    """A bridge request carrying ``acks`` in ``library``'s numbering."""
    document: dict[str, Any] = {"acks": list(acks)}
    if library is not None:
        document["library"] = library
    return json.dumps(document).encode()
