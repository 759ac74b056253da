"""Acks forwarded by a Node bot running whatsapp-web.js or Baileys (``POST {webhook_path}/bridge``).

The format (ours; ``examples/bridge/forward-acks.js`` produces it)::

    POST {webhook_path}/bridge
    Content-Type: application/json
    X-Bridge-Signature: sha256=<lowercase hex HMAC-SHA256(secret, raw body)>

    {"library": "whatsapp-web.js",          # or "baileys": which numbering "ack" uses
     "acks": [{"id": "true_16505551234@c.us_3EB0…",  # msg.id._serialized, or Baileys key.id
               "ack": 3,                     # the library's own number (see below)
               "timestamp": 1750030073,      # optional: seconds or milliseconds
               "to": "16505551234@c.us",     # optional: recipient JID
               "library": "baileys"}]}       # optional: overrides the top-level library

A single ack object may stand at the top level instead of ``"acks"``:
``{"library": "baileys", "id": "3EB0…", "ack": 4}``.

Numbering: whatsapp-web.js ``MessageAck`` -1 ERROR → failed, 0 PENDING → queued, 1 SERVER →
sent, 2 DEVICE → delivered, 3 READ → read, 4 PLAYED → played. Baileys ``WAMessageStatus`` is
that number + 1 (0 ERROR … 5 PLAYED). Other numbers are ignored; acks without a usable id,
integer ack or known library are rejected one by one.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

from adapters.acks import ACK_STATUSES, BAILEYS_STATUSES, ack_receipt
from adapters.base import (
    MalformedBody,
    ParseResult,
    Secrets,
    WebhookRequest,
    header,
    load_json,
    shown,
    verify_hex_hmac,
)
from plugin.core.model import Status

__all__ = [
    "LIBRARIES",
    "PROVIDER",
    "SIGNATURE_HEADER",
    "handle",
    "parse",
    "sign",
    "verify_signature",
]

PROVIDER = "bridge"
SIGNATURE_HEADER = "X-Bridge-Signature"

#: Each library's ack numbering.
LIBRARIES: Mapping[str, Mapping[int, Status]] = {
    "whatsapp-web.js": ACK_STATUSES,
    "baileys": BAILEYS_STATUSES,
}


def sign(body: bytes, secret: str) -> str:
    """The ``X-Bridge-Signature`` value of a body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(body: bytes, signature: str | None, secret: Secrets) -> None:
    """Check ``X-Bridge-Signature`` against the raw body; raise if it is absent or wrong."""
    verify_hex_hmac(
        body, signature, secret, digestmod="sha256", header_name=SIGNATURE_HEADER, prefix="sha256="
    )


def handle(request: WebhookRequest, secret: Secrets | None) -> ParseResult:
    """Authenticate (when ``secret`` is set), then parse."""
    if secret is not None:
        verify_signature(request.body, header(request.headers, SIGNATURE_HEADER), secret)
    return parse(request.body)


def parse(body: bytes) -> ParseResult:
    """The receipts of one bridge request (many acks or a single one)."""
    document = load_json(body)
    if type(document) is not dict:
        raise MalformedBody("body is not a JSON object")
    library = document.get("library")
    if library is not None and (type(library) is not str or library not in LIBRARIES):
        raise MalformedBody(f"library {shown(library, 40)} is not one of {sorted(LIBRARIES)}")
    acks = document.get("acks")
    if acks is None:
        if "id" not in document or "ack" not in document:
            raise MalformedBody('neither "acks" nor a single ack ("id", "ack")')
        acks = [document]
    elif type(acks) is not list:
        raise MalformedBody('"acks" is not a list')
    result = ParseResult()
    for item in acks:
        if type(item) is not dict:
            result.reject("ack is not an object")
            continue
        _parse_ack(item, library, result)
    return result


def _parse_ack(item: dict[str, Any], default_library: object, result: ParseResult) -> None:
    library = item.get("library", default_library)
    statuses = LIBRARIES.get(library) if type(library) is str else None
    if statuses is None:
        result.reject(f"ack {shown(item.get('id'))}: unknown library {shown(library, 40)}")
        return
    ack_receipt(item, statuses, item.get("timestamp"), item.get("to"), PROVIDER, result)
