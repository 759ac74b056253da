"""The manager's full state as plain data (JSON-able), and a manager rebuilt from it.

Used by snapshots (``state_file``) and by the simulation's heap checkpoints. The format is
versioned; :func:`restore` refuses what it does not understand with :class:`StateError`, and the
restored manager obeys the bounds of *its* options (a smaller cap or history applies at once).
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

from plugin.core.latency import MAX_BUCKET
from plugin.core.manager import MessageSessionManager
from plugin.core.model import COUNTER_KEYS, OUTCOME_KEYS, SessionSummary
from plugin.core.records import RECIPIENT_MASK, RECIPIENT_SHIFT
from plugin.core.session import MessageSession

__all__ = ["STATE_FORMAT", "STATE_VERSION", "StateError", "export_state", "restore"]

STATE_FORMAT = "wa-sessions-state"
STATE_VERSION = 1


class StateError(ValueError):
    """A state that cannot be restored: unknown format or version, or malformed."""


def _layout(manager: MessageSessionManager) -> str:
    """What packed recipients depend on: the redaction mode and key."""
    # This module reads the manager's internals on purpose: it is the manager's persistence.
    key = hashlib.sha256(manager._codec.key).hexdigest()[:16]
    return f"redact={manager.options.redact_recipients};key={key}"


def export_state(
    manager: MessageSessionManager, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Everything needed to carry on after a restart, as plain data; ``extra`` is kept as
    given (the server's webhook counters)."""
    m = manager
    sessions = []
    for session in m._sessions:
        # Send order, without ids the deque still holds for records already released.
        order = dict.fromkeys(mid for mid in session.order if mid in session.records)
        order.update(dict.fromkeys(session.records))
        sessions.append({
            "session_id": session.session_id,
            "start": session.start,
            "end": session.end,
            "complete_at": session.complete_at,
            "counters": list(session.counters),
            "receipts": list(session.receipts),
            "errors": dict(session.errors),
            "tags": dict(session.tag_index),
            "tag_counters": {str(i): list(c) for i, c in session.tag_counters.items()},
            "latency": [
                {str(b): n for b, n in histogram.items()} for histogram in session.histograms()
            ],
            "latency_sums": list(session.latency_sums),
            "records": [[mid, session.records[mid]] for mid in order],
        })
    return {
        "format": STATE_FORMAT,
        "version": STATE_VERSION,
        "saved_at": m._clock(),
        "layout": _layout(m),
        "receipts": list(m._receipts),
        "hook_errors": m.hook_errors,
        "evicted_total": m._evicted_total,
        "sessions": sessions,
        "history": [
            {
                "session_id": h.session_id,
                "started_at": h.started_at,
                "ended_at": h.ended_at,
                "completed_at": h.completed_at,
                "counters": h.counters,
                "receipts": h.receipts,
                "errors": h.errors,
                "tags": h.tags,
                "latency": h.latency,
            }
            for h in m.history
        ],
        "tombstones": m._tombstones.export(),
        "extra": extra or {},
    }


def _ints(value: Any, length: int, what: str) -> list[int]:
    if not isinstance(value, list) or len(value) != length or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        raise StateError(f"{what}: expected {length} integers")
    return list(value)


def _fill_insights(session: MessageSession, raw: dict[str, Any]) -> None:
    """A session's tags and latency histograms (absent from older snapshots)."""
    session.tag_index = {str(tag): int(index) for tag, index in dict(raw.get("tags", {})).items()}
    session.tag_counters = {
        int(index): _ints(counters, len(COUNTER_KEYS), "tag counters")
        for index, counters in dict(raw.get("tag_counters", {})).items()
    }
    delivered, read = raw.get("latency") or ({}, {})
    pairs: tuple[tuple[list[int], Any], ...] = (
        (session.delivered_latency, delivered),
        (session.read_latency, read),
    )
    for histogram, counts in pairs:
        for bucket, count in dict(counts).items():
            histogram[min(max(int(bucket), 0), MAX_BUCKET)] += int(count)
    sums = raw.get("latency_sums") or [0.0, 0.0]
    session.latency_sums = [float(sums[0]), float(sums[1])]


def restore(state: Any, **manager_kwargs: Any) -> MessageSessionManager:
    """A manager built with ``manager_kwargs`` (options, clock, events) holding ``state``."""
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise StateError("not a wa-sessions state")
    version = state.get("version")
    if version != STATE_VERSION:
        raise StateError(f"state version {version!r} is not supported (this is {STATE_VERSION})")
    manager = MessageSessionManager(**manager_kwargs)
    try:
        _fill(manager, state)
    except StateError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise StateError(f"malformed state: {exc!r}") from exc
    return manager


def _fill(m: MessageSessionManager, state: dict[str, Any]) -> None:
    keep_recipients = state.get("layout") == _layout(m)
    # Without the same layout the recipient fields are dropped (status, offset, flags, tag kept).
    recipient_mask = -1 if keep_recipients else ~(RECIPIENT_MASK << RECIPIENT_SHIFT)
    m._receipts = _ints(state["receipts"], len(OUTCOME_KEYS), "receipts")
    m.hook_errors = int(state.get("hook_errors", 0))
    m._evicted_total = int(state.get("evicted_total", 0))
    sessions = []
    for raw in state["sessions"]:
        session = MessageSession(
            str(raw["session_id"]), float(raw["start"]), float(raw["end"]),
            float(raw["complete_at"]),
        )
        session.counters = _ints(raw["counters"], len(COUNTER_KEYS), "counters")
        session.receipts = _ints(raw["receipts"], len(OUTCOME_KEYS), "session receipts")
        session.errors = {str(k): int(v) for k, v in dict(raw["errors"]).items()}
        _fill_insights(session, raw)
        for message_id, packed in raw["records"]:
            if not isinstance(message_id, str) or not isinstance(packed, int) or packed < 0:
                raise StateError("records: expected [id, packed int] pairs")
            session.records[message_id] = packed & recipient_mask
            session.order.append(message_id)
        sessions.append(session)
    sessions.sort(key=lambda s: s.start)
    m._sessions = sessions
    m._newest_first = sessions[::-1]
    m._tracked = sum(len(s.records) for s in sessions)
    for raw in state["history"]:
        summary = SessionSummary(
            session_id=str(raw["session_id"]),
            started_at=float(raw["started_at"]),
            ended_at=float(raw["ended_at"]),
            completed_at=float(raw["completed_at"]),
            counters={k: int(raw["counters"][k]) for k in COUNTER_KEYS},
            receipts={k: int(raw["receipts"][k]) for k in OUTCOME_KEYS},
            errors={str(k): int(v) for k, v in dict(raw["errors"]).items()},
            tags={
                str(tag): {key: int(funnel[key]) for key in COUNTER_KEYS}
                for tag, funnel in dict(raw.get("tags", {})).items()
            },
            latency=dict(raw.get("latency") or {}),
        )
        if m.options.history_limit > 0:
            m._history.append(summary)  # the deque's maxlen applies the current limit
    m._tombstones.load(state["tombstones"])
    # The current caps apply at once: oldest records and tombstones first.
    while m._tracked > m._cap:
        m._evict_one()
    m._peak_sessions = len(sessions)
    m._peak_tracked = m._tracked
    m._next_due = -math.inf  # anything due while we were down happens on the next call
