"""Failure kinds: what a provider's error code means for the message, and what to do about it.

Every :class:`~plugin.core.model.ReceiptError` carries a ``kind``:

* ``recipient``: the number cannot receive WhatsApp messages (call the patient);
* ``window``: outside the 24-hour customer-service window (send an approved template);
* ``limit``: a rate, quality or ecosystem limit (retry later, send less);
* ``template``: the template is missing, paused or filled in wrongly (fix the template);
* ``account``: the business account, its payment, token or phone number (alert whoever runs it);
* ``provider``: a transient error on the provider's side (retry later);
* ``unknown``: anything else, a missing code included.

The tables come from Meta's "WhatsApp error codes" page (Cloud API, also sent through 360dialog
and Gupshup) and Twilio's error dictionary; docs/insights.md cites each source. The two code
spaces do not overlap (a test checks it), so a code means the same kind whichever provider sent
it: the per-session tallies, which count codes without their provider, give the same kinds as
the events.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

__all__ = [
    "FAILURE_ADVICE",
    "FAILURE_KINDS",
    "META_KINDS",
    "TWILIO_KINDS",
    "failure_kind",
    "failures_by_kind",
    "sum_failures",
]

#: Every kind, in the order the views and the status page list them.
FAILURE_KINDS: Final[tuple[str, ...]] = (
    "recipient",
    "window",
    "limit",
    "template",
    "account",
    "provider",
    "unknown",
)

#: What to do about a failure of each kind (the status page and the docs show this).
FAILURE_ADVICE: Final[Mapping[str, str]] = {
    "recipient": "The number cannot receive WhatsApp messages: call the patient and check the "
    "number on file.",
    "window": "Outside the 24-hour customer-service window: send an approved template instead.",
    "limit": "A rate, quality or ecosystem limit: retry later and send less at once.",
    "template": "The template is missing, paused or filled in wrongly: fix it in WhatsApp "
    "Manager (or the Twilio Content editor).",
    "account": "The business account (payment, token, phone number or policy) needs attention: "
    "alert whoever runs the WhatsApp account.",
    "provider": "A transient error at the provider: retry later.",
    "unknown": "No known code: look at the error title and details in the logs.",
}


def _table(groups: Mapping[str, Iterable[int]]) -> dict[str, str]:
    return {str(code): kind for kind, codes in groups.items() for code in codes}


#: Meta Cloud API codes (developers.facebook.com, "WhatsApp error codes"), with the on-premises
#: API's 470-472 that Twilio's mapping table still lists. The whole 132xxx range is ``template``
#: (see :func:`failure_kind`).
META_KINDS: Final[Mapping[str, str]] = _table(
    {
        "recipient": (
            131026,  # Message undeliverable (not on WhatsApp, old app, terms not accepted)
            131021,  # Recipient cannot be sender
            131050,  # The user stopped marketing messages from this business
        ),
        "window": (
            131047,  # Re-engagement message: more than 24 hours since the user last replied
            470,  # on-premises: outside the support window for freeform messages
        ),
        "limit": (
            4,  # Too many API calls
            80007,  # Rate limit issues (WhatsApp Business Account)
            130429,  # Rate limit hit (Cloud API throughput)
            130472,  # The user's number is part of an experiment
            131048,  # Spam rate limit hit (quality-based)
            131049,  # Not delivered to maintain healthy ecosystem engagement
            131056,  # (Business, consumer) pair rate limit hit
            471,  # on-premises: spam rate limit
            472,  # on-premises: the user's number is part of an experiment
        ),
        "account": (
            0,  # AuthException
            3,  # API method: capability or permissions issue
            10,  # Permission denied
            33,  # The business phone number has been deleted
            190,  # Access token has expired
            *range(200, 300),  # API permission
            368,  # Temporarily blocked for policy violations
            130497,  # Business account restricted from messaging users in this country
            131005,  # Access denied
            131030,  # Recipient not in the test number's allowed list
            131031,  # Business account has been locked
            131042,  # Business eligibility payment issue
            131045,  # Incorrect certificate (phone number registration)
            131057,  # Business account in maintenance mode
            133010,  # Phone number not registered on the Cloud API
        ),
        "provider": (
            1,  # API unknown (possible server error)
            2,  # API service: temporary downtime or overload
            131000,  # Something went wrong
            131016,  # Service unavailable
        ),
    }
)

#: Twilio codes (twilio.com/docs/api/errors, and the Twilio/WhatsApp code mapping table).
TWILIO_KINDS: Final[Mapping[str, str]] = _table(
    {
        "recipient": (
            21211,  # Invalid 'To' phone number
            21610,  # Attempt to send to an unsubscribed recipient
            21614,  # 'To' number is not a valid mobile number
            30003,  # Unreachable destination handset
            30005,  # Unknown destination handset
            30006,  # Landline or unreachable carrier
            63003,  # Channel could not find To address
            63024,  # Invalid message recipient
        ),
        "window": (
            63016,  # Outside the messaging window: use a template
        ),
        "limit": (
            20429,  # Too many requests
            63017,  # Rate limit exceeded (account)
            63018,  # Rate limit exceeded for channel (WhatsApp messaging limit)
            63032,  # The user's number is part of an experiment (WhatsApp 472)
            63038,  # Account exceeded the daily messages limit
        ),
        "template": (
            63027,  # Template does not exist for a language and locale
            63028,  # Number of parameters does not match the template
        ),
        "account": (
            20003,  # Authentication failed
            63001,  # Channel could not authenticate the request
            63007,  # No channel with the 'From' address
            63020,  # Business eligibility payment issue (WhatsApp 402)
            63062,  # Marketing Messages API terms of service not accepted
        ),
        "provider": (
            30500,  # Twilio internal error
            63010,  # Twilio's platform error processing WhatsApp messages (WhatsApp 1022)
            63012,  # Channel provider returned an internal service error (WhatsApp 500)
        ),
    }
)

_META_PROVIDERS = frozenset({"meta", "360dialog", "gupshup"})
_TABLES: Final[Mapping[str, Mapping[str, str]]] = {
    **dict.fromkeys(_META_PROVIDERS, META_KINDS),
    "twilio": TWILIO_KINDS,
}


def _normalize(code: object) -> str | None:
    if code is None or isinstance(code, bool):
        return None
    text = str(code).strip()
    if text.startswith("#"):  # "(#131026)" as some titles spell it
        text = text[1:]
    return text if text.isascii() and text.isdigit() else None


def _meta_range(code: str) -> str | None:
    if len(code) == 6 and code.startswith("132"):
        return "template"  # 132000-132999: template errors
    return None


def failure_kind(code: object, provider: str | None = None) -> str:
    """The kind of error ``code``; ``provider`` picks the table to read first (``meta``,
    ``360dialog``, ``gupshup``, ``twilio``). Unknown codes, and no code, are ``unknown``."""
    normal = _normalize(code)
    if normal is None:
        return "unknown"
    normal = str(int(normal))  # "0131026" is 131026
    first = _TABLES.get(provider or "")
    if first is not None and normal in first:
        return first[normal]
    kind = META_KINDS.get(normal) or TWILIO_KINDS.get(normal) or _meta_range(normal)
    return kind or "unknown"


def failures_by_kind(errors: Mapping[str, int]) -> dict[str, int]:
    """Failed messages by kind from a per-session error-code tally (``{"131026": 3, …}``): kinds
    with a count of 0 left out, in :data:`FAILURE_KINDS` order. The tally's ``"unknown"`` (no
    code) and ``"other"`` (codes over its cap) count as ``unknown``."""
    counts = dict.fromkeys(FAILURE_KINDS, 0)
    for code, count in errors.items():
        counts[failure_kind(code)] += int(count)
    return {kind: count for kind, count in counts.items() if count}


def sum_failures(parts: Iterable[Mapping[str, int]]) -> dict[str, int]:
    """Several ``failures`` objects added up (the summary over the active sessions)."""
    counts = dict.fromkeys(FAILURE_KINDS, 0)
    for part in parts:
        for kind, count in part.items():
            counts[kind if kind in counts else "unknown"] += int(count)
    return {kind: count for kind, count in counts.items() if count}
