"""What every adapter shares: the raw request it reads, the result it returns, its errors."""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field

from plugin.model import InboundMessage, Receipt

__all__ = [
    "AdapterError",
    "MalformedBody",
    "ParseResult",
    "SignatureInvalid",
    "SignatureMissing",
    "WebhookRequest",
    "constant_time_equal",
    "header",
]

#: At most this many problem descriptions are kept per request (for logs), however many items
#: were malformed: the count is exact, the descriptions are a sample.
MAX_PROBLEMS = 20


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


def constant_time_equal(expected: str, given: str) -> bool:
    """Compare two signatures without leaking where they differ."""
    return hmac.compare_digest(expected.encode(), given.encode())
