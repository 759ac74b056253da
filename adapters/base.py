"""What every adapter shares: the raw request it reads, the result it returns, its errors."""

from __future__ import annotations

import hmac
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from plugin.core.model import InboundMessage, Receipt
from plugin.core.records import MAX_MESSAGE_ID_LENGTH

__all__ = [
    "AdapterError",
    "MalformedBody",
    "ParseResult",
    "SignatureInvalid",
    "SignatureMissing",
    "WebhookRequest",
    "bare_address",
    "constant_time_equal",
    "epoch_seconds",
    "header",
    "is_message_id",
    "load_json",
    "verify_hex_hmac",
]

#: At most this many problem descriptions are kept per request (for logs), however many items
#: were malformed: the count is exact, the descriptions are a sample.
MAX_PROBLEMS = 20
#: An epoch value above this is in milliseconds (1e11 s is the year 5138; 1e11 ms is 1973).
MILLISECONDS_ABOVE = 1e11


class AdapterError(Exception):
    """A request the adapter refuses as a whole. ``http_status`` is the answer the server gives."""

    http_status = 400


class SignatureMissing(AdapterError):
    """A secret is configured but the request carries no signature."""

    http_status = 401


class SignatureInvalid(AdapterError):
    """The signature (or the verify token of a handshake) does not match."""

    http_status = 403


class MalformedBody(AdapterError):
    """The body cannot be read at all (not JSON, not a form, wrong envelope)."""

    http_status = 400


@dataclass(slots=True)
class WebhookRequest:
    """A raw webhook request, as any web framework can build it.

    ``url`` is the full URL as the server received it (scheme, host, path and query); adapters
    that sign URLs (Twilio) may be given the public URL the provider called instead.
    """

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes
    query: Mapping[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class ParseResult:
    """The normalized events of one request, and what could not be used.

    ``rejected`` counts malformed items (skipped, the rest kept); ``ignored`` counts well-formed
    items we do not track (unknown statuses, other event types, other webhook fields).
    """

    receipts: list[Receipt] = field(default_factory=list)
    inbound: list[InboundMessage] = field(default_factory=list)
    rejected: int = 0
    ignored: int = 0
    problems: list[str] = field(default_factory=list)

    def reject(self, problem: str) -> None:
        self.rejected += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(problem)


def header(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive header lookup that works on plain dicts and on multidicts."""
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    for key, candidate in headers.items():
        if key.lower() == lowered:
            return candidate
    return None


def verify_hex_hmac(
    body: bytes,
    signature: str | None,
    secret: str,
    *,
    digestmod: str,
    header_name: str,
    prefix: str = "",
) -> None:
    """Check a signature that is ``prefix`` + the hex HMAC of the raw body, in constant time;
    raise SignatureMissing when it is absent, SignatureInvalid when it does not match."""
    if not signature:
        raise SignatureMissing(f"{header_name} header is missing")
    expected = prefix + hmac.new(secret.encode(), body, digestmod).hexdigest()
    if not constant_time_equal(expected, signature.strip().lower()):
        raise SignatureInvalid(f"{header_name} does not match the body")


def constant_time_equal(expected: str, given: str) -> bool:
    """Compare two signatures without leaking where they differ."""
    return hmac.compare_digest(expected.encode(), given.encode())


def is_message_id(value: object) -> TypeGuard[str]:
    """A usable message id: a non-empty ASCII string of at most ``MAX_MESSAGE_ID_LENGTH``."""
    return type(value) is str and 0 < len(value) <= MAX_MESSAGE_ID_LENGTH and value.isascii()


def epoch_seconds(value: object) -> float | None:
    """Epoch seconds from a provider timestamp: a number or numeric string, seconds or ms.

    ``None`` (or ``""``) means absent; anything else that is not a finite, non-negative time
    raises ``ValueError`` (the caller rejects the item).
    """
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"timestamp {value!r} is not a number")
    try:
        seconds = float(value)
    except OverflowError:
        raise ValueError(f"timestamp {value!r} is out of range") from None
    if not 0.0 <= seconds < math.inf:
        raise ValueError(f"timestamp {value!r} is not a finite, non-negative time")
    if seconds > MILLISECONDS_ABOVE:
        seconds /= 1000.0
        if seconds > MILLISECONDS_ABOVE:  # not a time in seconds nor in milliseconds
            raise ValueError(f"timestamp {value!r} is out of range")
    return seconds


def bare_address(value: str) -> str:
    """The bare number of a WhatsApp address.

    ``whatsapp:+16505551234``, ``+16505551234``, ``16505551234@c.us`` and
    ``16505551234@s.whatsapp.net`` all become ``16505551234``; group and other ids stay as given.
    """
    if value.startswith("whatsapp:"):
        value = value[9:]
    if value.endswith("@c.us"):
        value = value[:-5]
    elif value.endswith("@s.whatsapp.net"):
        value = value[:-15]
    return value[1:] if value.startswith("+") else value


def load_json(body: bytes) -> Any:
    """The parsed JSON body, or ``MalformedBody``."""
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise MalformedBody(f"body is not JSON: {exc}") from None
