"""Twilio status callbacks (WhatsApp through Programmable Messaging).

One form-encoded callback per status change: ``MessageSid``, ``MessageStatus``, ``To``,
``ErrorCode``… (no timestamp: the manager uses the arrival time). An incoming-message webhook
pointed at the same URL (``SmsStatus=received``, no ``MessageStatus``) yields an
``InboundMessage``. Authentication: ``X-Twilio-Signature`` = base64(HMAC-SHA1(auth_token, URL +
each parameter name and value, names sorted)), where the URL is the public one Twilio called;
like twilio-python, the signature is accepted with or without the default port.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from adapters.base import (
    MalformedBody,
    ParseResult,
    SignatureInvalid,
    SignatureMissing,
    WebhookRequest,
    address,
    clean_text,
    constant_time_equal,
    header,
    is_message_id,
    receipt_error,
    recipient_number,
    secret_bytes,
    shown,
)
from plugin.core.model import InboundMessage, Receipt, Status

__all__ = [
    "PROVIDER",
    "SIGNATURE_HEADER",
    "STATUSES",
    "compute_signature",
    "handle",
    "join_public_url",
    "parse",
    "parse_form",
    "signed_url",
    "verify_signature",
]

PROVIDER = "twilio"
SIGNATURE_HEADER = "X-Twilio-Signature"

#: Twilio message statuses. ``received``/``receiving`` are inbound; others are ignored.
STATUSES: Mapping[str, Status] = {
    "queued": Status.QUEUED,
    "accepted": Status.QUEUED,
    "scheduled": Status.QUEUED,
    "sending": Status.QUEUED,
    "sent": Status.SENT,
    "delivered": Status.DELIVERED,
    "read": Status.READ,
    "failed": Status.FAILED,
    "undelivered": Status.FAILED,
    "canceled": Status.FAILED,
}
_DEFAULT_PORTS = {"https": 443, "http": 80}


def parse_form(body: bytes) -> list[tuple[str, str]]:
    """The form fields of a callback body, in order (repeated names kept)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedBody("form body is not UTF-8") from None
    return parse_qsl(text, keep_blank_values=True)


def compute_signature(url: str, params: Iterable[tuple[str, str]], auth_token: str) -> str:
    """Twilio's signature of a request: what ``X-Twilio-Signature`` should carry."""
    values: dict[str, set[str]] = {}
    for name, value in params:
        values.setdefault(name, set()).add(value)
    payload = url + "".join(
        name + value for name in sorted(values) for value in sorted(values[name])
    )
    # A URL path aiohttp decoded from non-UTF-8 bytes carries surrogates: never an error here.
    digest = hmac.new(
        secret_bytes(auth_token), payload.encode("utf-8", "surrogatepass"), hashlib.sha1
    ).digest()
    return base64.b64encode(digest).decode()


def _url_variants(url: str) -> tuple[str, str]:
    """The URL without its port and with its port (the scheme's default when absent)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return url, url
    host = parts.netloc.rpartition(":")[0] if port is not None else parts.netloc
    if port is None:
        port = _DEFAULT_PORTS.get(parts.scheme.lower())
        if port is None:
            return url, url
    without_port = urlunsplit(parts._replace(netloc=host))
    with_port = urlunsplit(parts._replace(netloc=f"{host}:{port}"))
    return without_port, with_port


def verify_signature(
    url: str, params: Iterable[tuple[str, str]], signature: str | None, auth_token: str
) -> None:
    """Check ``X-Twilio-Signature`` for ``url`` and the POST parameters; raise if absent/wrong."""
    if not signature:
        raise SignatureMissing(f"{SIGNATURE_HEADER} header is missing")
    if not signature.isascii():
        raise SignatureInvalid(f"{SIGNATURE_HEADER} is not ASCII")
    params = list(params)
    given = signature.strip()
    # Both candidates are always computed and compared, so timing does not tell which matched.
    matches = [
        constant_time_equal(compute_signature(candidate, params, auth_token), given)
        for candidate in _url_variants(url)
    ]
    if not any(matches):
        raise SignatureInvalid(f"{SIGNATURE_HEADER} does not match")


def join_public_url(public_url: str, path_and_query: str) -> str:
    """``public_url`` (scheme, host, optional port, optional path prefix) followed by the raw
    path and query of a request (``/webhooks/twilio?x=1``), joined as text: nothing of the
    request's ``Host`` is used, and nothing is parsed that could fail."""
    return public_url.rstrip("/") + path_and_query


def signed_url(request: WebhookRequest, public_url: str | None) -> str:
    """The URL Twilio signed: ``public_url`` (scheme, host, optional port, optional path
    prefix) + the request's path and query; ``request.url`` when no public URL is configured."""
    if not public_url:
        return request.url
    try:
        own = urlsplit(request.url)
    except ValueError:  # an unparsable URL (e.g. from a bad Host): its path is not signed
        return public_url
    path = own.path + (f"?{own.query}" if own.query else "")
    return join_public_url(public_url, path)


def handle(
    request: WebhookRequest, secret: str | None, public_url: str | None = None
) -> ParseResult:
    """Authenticate (when ``secret``, the auth token, is set), then parse."""
    params = parse_form(request.body)
    if secret is not None:
        signature = header(request.headers, SIGNATURE_HEADER)
        verify_signature(signed_url(request, public_url), params, signature, secret)
    return _parse_params(params)


def parse(body: bytes) -> ParseResult:
    """The receipt (or inbound message) of one callback."""
    return _parse_params(parse_form(body))


def _parse_params(params: list[tuple[str, str]]) -> ParseResult:
    fields = dict(params)  # the last value wins for a repeated name
    name = fields.get("MessageStatus") or fields.get("SmsStatus")
    if not name:
        raise MalformedBody("not a Twilio message callback: no MessageStatus")
    result = ParseResult()
    message_id = fields.get("MessageSid") or fields.get("SmsSid")
    if name in ("received", "receiving"):
        _parse_inbound(fields, message_id, result)
        return result
    status = STATUSES.get(name)
    if status is None:
        result.ignored += 1
        return result
    if not is_message_id(message_id):
        result.reject(f"callback with an unusable MessageSid {shown(message_id)}")
        return result
    try:
        recipient = recipient_number(fields.get("To") or fields.get("ChannelToAddress"))
        error = None
        if status is Status.FAILED:
            error = receipt_error(
                fields.get("ErrorCode"),
                fields.get("ErrorMessage") or name,
                fields.get("ChannelStatusMessage"),
            )
    except ValueError as exc:
        result.reject(f"callback {message_id}: {exc}")
        return result
    result.receipts.append(Receipt(message_id, status, None, recipient, PROVIDER, error))
    return result


def _parse_inbound(fields: dict[str, str], message_id: str | None, result: ParseResult) -> None:
    try:
        sender = address(fields.get("From"))
    except ValueError:
        sender = None
    if not is_message_id(message_id) or sender is None:
        result.reject("incoming message without a usable MessageSid or From")
        return
    media = fields.get("NumMedia", "0")
    kind = fields.get("MessageType") or ("text" if media in ("", "0") else "media")
    result.inbound.append(
        InboundMessage(
            message_id=message_id,
            sender=sender,
            timestamp=None,
            type=kind[:64],
            text=clean_text(fields.get("Body")),
            provider=PROVIDER,
            raw=dict(fields),
        )
    )
