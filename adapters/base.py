"""What every adapter shares: the raw request it reads, the result it returns, its errors."""

from __future__ import annotations

import hmac
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeGuard

import orjson

from plugin.core.model import InboundMessage, Receipt, ReceiptError
from plugin.core.records import MAX_MESSAGE_ID_LENGTH, valid_message_id

__all__ = [
    "AdapterError",
    "MalformedBody",
    "ParseResult",
    "Secrets",
    "SignatureInvalid",
    "SignatureMissing",
    "WebhookRequest",
    "address",
    "bare_address",
    "clean_text",
    "constant_time_equal",
    "epoch_seconds",
    "error_code",
    "header",
    "is_message_id",
    "load_json",
    "receipt_error",
    "recipient_number",
    "secret_bytes",
    "secrets_of",
    "shown",
    "verify_hex_hmac",
]

#: At most this many problem descriptions are kept per request (for logs), however many items
#: were malformed: the count is exact, the descriptions are a sample.
MAX_PROBLEMS = 20
#: An epoch value above this is in milliseconds (1e11 s is the year 5138; 1e11 ms is 1973).
MILLISECONDS_ABOVE = 1e11
#: A recipient is a phone number of at most this many ASCII digits (E.164 allows 15).
MAX_RECIPIENT_DIGITS = 20
#: Error codes are ASCII digits, at most this many.
MAX_ERROR_CODE_DIGITS = 12
#: Error titles, details, inbound senders and texts are cut to this many characters.
MAX_TEXT_LENGTH = 1024
#: WhatsApp addresses (JIDs) that are not a phone number: groups, linked ids, channels. They are
#: kept as given when well-formed (digits and dashes, then the server).
NON_PHONE_SERVERS = ("@g.us", "@lid", "@newsletter", "@broadcast")

_BIG = 10**18
_DECIMAL = re.compile(r"[0-9]{1,20}(?:\.[0-9]{1,9})?", re.ASCII)

#: One secret, or the values accepted during a rotation (any of them signs validly).
Secrets = str | Sequence[str]


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


def secrets_of(secret: Secrets) -> tuple[str, ...]:
    """The accepted values of a secret setting: one string, or the two of a rotation."""
    return (secret,) if isinstance(secret, str) else tuple(secret)


def secret_bytes(secret: str) -> bytes:
    """A configured secret as bytes (an environment variable may carry undecodable bytes:
    ``os.environ`` keeps them as surrogates, which give back the original bytes here)."""
    return secret.encode("utf-8", "surrogateescape")


def verify_hex_hmac(
    body: bytes,
    signature: str | None,
    secret: Secrets,
    *,
    digestmod: str,
    header_name: str,
    prefix: str = "",
) -> None:
    """Check a signature that is ``prefix`` + the hex HMAC of the raw body, in constant time;
    raise SignatureMissing when it is absent, SignatureInvalid when it does not match (or is
    not ASCII: a header value aiohttp decoded from non-UTF-8 bytes carries surrogates).

    ``secret`` may list the values of a rotation: every one is computed and compared, and
    any match is accepted.
    """
    if not signature:
        raise SignatureMissing(f"{header_name} header is missing")
    if not signature.isascii():
        raise SignatureInvalid(f"{header_name} is not ASCII")
    given = signature.strip().lower().encode("ascii")
    matched = False
    for value in secrets_of(secret):
        expected = (
            prefix.encode() + hmac.new(secret_bytes(value), body, digestmod).hexdigest().encode()
        )
        matched |= hmac.compare_digest(expected, given)
    if not matched:
        raise SignatureInvalid(f"{header_name} does not match the body")


def constant_time_equal(expected: str, given: str) -> bool:
    """Compare two secrets or signatures without leaking where they differ. Never raises: text
    holding lone surrogates (a header aiohttp decoded from non-UTF-8 bytes) is compared too."""
    return hmac.compare_digest(_loose_bytes(expected), _loose_bytes(given))


def _loose_bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def is_message_id(value: object) -> TypeGuard[str]:
    """A usable message id: the core's rule (:func:`plugin.core.records.valid_message_id`)."""
    return valid_message_id(value)


def epoch_seconds(value: object) -> float | None:
    """Epoch seconds from a provider timestamp: a number or a decimal string of ASCII digits,
    in seconds or milliseconds.

    ``None`` (or ``""``) means absent; anything else that is not a finite time from 1970 to the
    year 5138 raises ``ValueError`` (the caller rejects the item).
    """
    if value is None or value == "":
        return None
    if isinstance(value, str):
        if not _DECIMAL.fullmatch(value):
            raise ValueError(f"timestamp {shown(value, 40)} is not a decimal number")
    elif type(value) is not int and type(value) is not float:
        raise ValueError(f"timestamp of type {type(value).__name__} is not a number")
    try:
        seconds = float(value)
    except OverflowError:
        raise ValueError(f"timestamp {shown(value, 40)} is out of range") from None
    if not 0.0 <= seconds < math.inf:
        raise ValueError(f"timestamp {shown(value, 40)} is not a finite, non-negative time")
    if seconds > MILLISECONDS_ABOVE:
        seconds /= 1000.0
        if seconds > MILLISECONDS_ABOVE:  # not a time in seconds nor in milliseconds
            raise ValueError(f"timestamp {shown(value, 40)} is out of range")
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


def recipient_number(value: object) -> str | None:
    """The recipient of a receipt, validated: ``None`` when absent; the bare phone number (ASCII
    digits only: ``"²"`` is no digit here) of ``16505551234``, ``+16505551234``,
    ``whatsapp:+…``, ``…@c.us``, ``…@s.whatsapp.net``; a well-formed group, linked-id or
    channel JID as given (it is no phone number). Anything else raises ``ValueError``."""
    if value is None or value == "":
        return None
    if type(value) is not str:
        raise ValueError(f"recipient of type {type(value).__name__} is not a string")
    if len(value) <= MAX_RECIPIENT_DIGITS and value.isdigit() and value.isascii():
        return value  # the usual case: Meta's recipient_id
    if value.endswith(NON_PHONE_SERVERS):
        user = value[: value.index("@")]
        if (
            0 < len(user) <= 2 * MAX_RECIPIENT_DIGITS
            and user.isascii()
            and (user.replace("-", "").isdigit())
        ):
            return value
        raise ValueError("recipient is not a well-formed WhatsApp address")
    number = bare_address(value)
    if not (0 < len(number) <= MAX_RECIPIENT_DIGITS and number.isascii() and number.isdigit()):
        raise ValueError("recipient is not a phone number")
    return number


def address(value: object) -> str:
    """The sender of an inbound message: its bare number, or a JID as given; ``ValueError``
    unless it is printable text (no control character, no lone surrogate) of sane length."""
    if type(value) is not str or not value or len(value) > MAX_MESSAGE_ID_LENGTH:
        raise ValueError("sender is not an address")
    if not value.isprintable():
        raise ValueError("sender is not printable text")
    return bare_address(value)


def error_code(value: object) -> str | None:
    """A provider error code: ASCII digits (from a string or an integer), at most
    ``MAX_ERROR_CODE_DIGITS``; ``None`` when absent; anything else raises ``ValueError``."""
    if value is None or value == "":
        return None
    if type(value) is int:
        if not 0 <= value < 10**MAX_ERROR_CODE_DIGITS:
            raise ValueError("error code is out of range")
        return str(value)
    if (
        type(value) is str
        and len(value) <= MAX_ERROR_CODE_DIGITS
        and value.isascii()
        and value.isdigit()
    ):
        return value
    raise ValueError("error code is not a number")


def clean_text(value: object) -> str | None:
    """Free text (an error title, a message body) fit to hand on: ``None`` unless a non-empty
    string (an integer is spelled out), cut to ``MAX_TEXT_LENGTH``, lone surrogates replaced."""
    if type(value) is int:
        return str(value) if -_BIG < value < _BIG else None
    if type(value) is not str or not value:
        return None
    text: str = value[:MAX_TEXT_LENGTH]
    if not text.isascii():
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def receipt_error(code: object, title: object, details: object) -> ReceiptError:
    """A validated ``ReceiptError`` (``ValueError`` for a code that is not a number)."""
    return ReceiptError(error_code(code), clean_text(title), clean_text(details))


def shown(value: object, limit: int = 60) -> str:
    """A short, safe spelling of a client's value for a log line: a string cut first, then
    ASCII-escaped (no lone surrogate reaches a log file); a number cut; any other value by its
    type only (a deeply nested one is never walked)."""
    if isinstance(value, str):
        return ascii(value[:limit])
    if value is None or type(value) is bool or type(value) is float:
        return repr(value)
    if type(value) is int:
        return repr(value) if -_BIG < value < _BIG else "<a huge integer>"
    return f"<{type(value).__name__}>"


def load_json(body: bytes) -> Any:
    """The parsed JSON body, or ``MalformedBody``.

    orjson first (about half the time of ``json.loads`` on a 50-status notification, the hot
    path); whatever it refuses (a lone surrogate escape, ``NaN``, a float that overflows,
    nesting past 1,024 levels, UTF-16, a byte-order mark) goes to ``json.loads``, which decides
    as before. The one value the two read differently is an integer past 64 bits (orjson: a
    float); every number the adapters read is range-checked, and both are refused alike
    (tests/adapters/test_json_parsing.py checks it leaf by leaf on every provider's payloads).
    Only an inbound message's ``raw`` object, handed on as parsed, shows such a float."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise MalformedBody(f"body is not JSON: {exc}") from None
