"""The normalized model: what every provider's receipts become, and what the manager reports."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Any

from plugin.core.failures import failure_kind, failures_by_kind

__all__ = [
    "COUNTER_KEYS",
    "OUTCOME_KEYS",
    "CleanupReport",
    "InboundMessage",
    "MessageExpired",
    "Outcome",
    "Receipt",
    "ReceiptError",
    "SessionSummary",
    "Status",
    "StatusChange",
    "event_digest",
]


class Status(IntEnum):
    """The delivery ladder. QUEUED < SENT < DELIVERED < READ < PLAYED; FAILED stands apart.

    An int (the hot path and the packed records compare and store it as one) that prints as its
    name: ``str(Status.DELIVERED) == f"{Status.DELIVERED}" == "delivered"``; a numeric format
    (``f"{status:d}"``) and ``int(status)`` still give the number.
    """

    QUEUED = 0
    SENT = 1
    DELIVERED = 2
    READ = 3
    PLAYED = 4
    FAILED = 5

    @property
    def label(self) -> str:
        return self.name.lower()

    def __str__(self) -> str:
        return self.name.lower()

    def __format__(self, spec: str) -> str:
        if spec and spec[-1] in _NUMERIC_FORMATS:
            return int.__format__(self, spec)
        return format(self.name.lower(), spec)


_NUMERIC_FORMATS = frozenset("bcdoxXneEfFgG%")


class Outcome(StrEnum):
    """What applying one receipt did. Every receipt has exactly one."""

    APPLIED = "applied"
    DUPLICATE = "duplicate"
    STALE = "stale"
    LATE = "late"
    UNKNOWN = "unknown"
    ADOPTED = "adopted"


#: Funnel counters of a session, in the order the stats views print them.
COUNTER_KEYS: tuple[str, ...] = (
    "sent",
    "delivered",
    "read",
    "played",
    "failed",
    "pending",
    "expired",
    "evicted",
)
#: Receipt outcome keys, in the order the stats views print them.
OUTCOME_KEYS: tuple[str, ...] = tuple(o.value for o in Outcome)


@dataclass(slots=True, frozen=True)
class ReceiptError:
    """Why a provider says a message failed.

    ``kind`` (``recipient``, ``window``, ``limit``, ``template``, ``account``, ``provider`` or
    ``unknown``) is derived from ``code`` when not given: see :mod:`plugin.core.failures`.
    """

    code: str | None = None
    title: str | None = None
    details: str | None = None
    kind: str = ""

    def __post_init__(self) -> None:
        if not self.kind:
            object.__setattr__(self, "kind", failure_kind(self.code))


# Not frozen on purpose: a frozen dataclass sets each field through object.__setattr__, which
# makes construction about four times slower, and receipts are built once per status update.
@dataclass(slots=True)
class Receipt:
    """One delivery receipt (ack), normalized from any provider.

    ``timestamp`` is epoch seconds (``None`` when the provider sends none: the manager then
    uses the arrival time).
    """

    message_id: str
    status: Status
    timestamp: float | None = None
    recipient: str | None = None
    provider: str = "meta"
    error: ReceiptError | None = None


@dataclass(slots=True)
class InboundMessage:
    """A message a user sent to the bot, normalized from any provider."""

    message_id: str
    sender: str
    timestamp: float | None
    type: str
    text: str | None = None
    provider: str = "meta"
    raw: dict[str, Any] = field(default_factory=dict)


def event_digest(kind: str, *parts: object) -> str:
    """A deterministic id of what an event is about: the same event (delivered again after a
    restart, or by another replica) has the same id, different events have different ones."""
    text = "\x1f".join((kind, *map(str, parts)))
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


# Not frozen, like Receipt: one is built per applied receipt when anyone listens. Its event_id
# is computed when asked for, so the receipt path pays nothing for it.
@dataclass(slots=True)
class StatusChange:
    """Payload of the ``status changed`` event: a receipt moved a message up the ladder."""

    message_id: str
    session_id: str
    old_status: Status | None
    new_status: Status
    outcome: Outcome
    recipient: str | None
    provider: str
    timestamp: float
    error: ReceiptError | None = None

    @property
    def event_id(self) -> str:
        """Digest of (kind, session, message, new status): a message reaches a status once."""
        return event_digest(
            "status_changed", self.session_id, self.message_id, self.new_status.label
        )


@dataclass(slots=True, frozen=True)
class MessageExpired:
    """Payload of the ``message expired`` event: released before it was delivered or failed."""

    message_id: str
    session_id: str
    status: Status
    recipient: str | None
    sent_at: float
    reason: str  # "window" (its ack window ended) or "session" (its session completed first)

    @property
    def event_id(self) -> str:
        """Digest of (kind, session, message): a message is released once."""
        return event_digest("message_expired", self.session_id, self.message_id)


_NO_LATENCY = {
    kind: {"count": 0, "p50": None, "p90": None, "p99": None} for kind in ("delivered", "read")
}


@dataclass(slots=True, frozen=True)
class SessionSummary:
    """What is kept of a completed session: its funnel and its receipt outcomes."""

    session_id: str
    started_at: float
    ended_at: float
    completed_at: float
    counters: dict[str, int]
    receipts: dict[str, int]
    errors: dict[str, int]
    #: Each tag's funnel (``"other"`` past ``max_tags_per_session``).
    tags: dict[str, dict[str, int]] = field(default_factory=dict)
    #: ``{"delivered": {"count", "p50", "p90", "p99"}, "read": {…}}`` in seconds.
    latency: dict[str, Any] = field(default_factory=dict)

    @property
    def event_id(self) -> str:
        """Digest of (kind, session): a session completes once."""
        return event_digest("session_completed", self.session_id)

    def as_dict(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "completed_at": self.completed_at,
            **self.counters,
            "receipts": dict(self.receipts),
            "errors": dict(self.errors),
            "failures": self.failures,
            "tags": {tag: dict(funnel) for tag, funnel in self.tags.items()},
            "latency": self.latency or _NO_LATENCY,
        }

    @property
    def failures(self) -> dict[str, int]:
        """Failed messages by kind, from the error-code tally (kinds with 0 left out)."""
        return failures_by_kind(self.errors)


@dataclass(slots=True, frozen=True)
class CleanupReport:
    """What one ``cleanup()`` did."""

    at: float
    expired_messages: int
    completed_sessions: tuple[str, ...]
    history_trimmed: int
    remaining_history: int
    tombstones_dropped: int

    @property
    def event_id(self) -> str:
        """Digest of (kind, time of the cleanup, sessions it completed)."""
        return event_digest("cleanup_completed", repr(self.at), *self.completed_sessions)

    def as_dict(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "expired_messages": self.expired_messages,
            "completed_sessions": list(self.completed_sessions),
            "history_trimmed": self.history_trimmed,
            "remaining_history": self.remaining_history,
            "tombstones_dropped": self.tombstones_dropped,
        }
