"""A manager rebuilt from its state (:mod:`plugin.core.state` has the format): every field
checked, version 1 migrated, recipients kept, hashed or dropped by the layout, and the bounds of
the new manager's options applied at once. Anything malformed is :class:`StateError`."""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Callable, Iterator
from typing import Any

from plugin.core.latency import MAX_BUCKET
from plugin.core.manager import MessageSessionManager
from plugin.core.model import COUNTER_KEYS, OUTCOME_KEYS, SessionSummary
from plugin.core.records import (
    HASHED_FLAG,
    RECIPIENT_SHIFT,
    valid_message_id,
)
from plugin.core.session import MessageSession
from plugin.core.state import (
    _MAX_PACKED,
    _MAX_STATUS,
    _RECIPIENT_BITS,
    STATE_FORMAT,
    STATE_VERSION,
    StateError,
    _key_fingerprint,
)

__all__ = ["restore"]

log = logging.getLogger("plugin.core.state")


def _ints(value: Any, length: int, what: str) -> list[int]:
    if (
        not isinstance(value, list)
        or len(value) != length
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
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
    session.latency_sums = [_finite(sums[0], "latency"), _finite(sums[1], "latency")]


def _finite(value: Any, what: str) -> float:
    number = float(value)
    if not math.isfinite(number):
        raise StateError(f"{what}: expected a finite number, not {value!r}")
    return number


def restore(state: Any, **manager_kwargs: Any) -> MessageSessionManager:
    """A manager built with ``manager_kwargs`` (options, clock, events) holding ``state``."""
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise StateError("not a wa-sessions state")
    version = state.get("version")
    if version not in (1, STATE_VERSION):
        raise StateError(f"state version {version!r} is not supported (this is {STATE_VERSION})")
    manager = MessageSessionManager(**manager_kwargs)
    try:
        _fill(manager, state)
    except StateError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
        raise StateError(f"malformed state: {exc!r}") from exc
    if version == 1:
        log.warning(
            "state of version 1 migrated to version %d (recipients kept only when "
            "saved with the same redaction settings)",
            STATE_VERSION,
        )
    return manager


def _records(raw: Any, version: int) -> Iterator[tuple[str, int]]:
    """The (id, packed) pairs of a saved session, checked."""
    if version == 1:
        pairs = raw
        if not isinstance(pairs, list) or not all(
            isinstance(p, list) and len(p) == 2 for p in pairs
        ):
            raise StateError("records: expected [id, packed int] pairs")
    else:
        if (
            not isinstance(raw, dict)
            or not isinstance(raw.get("ids"), list)
            or not isinstance(raw.get("packed"), list)
            or len(raw["ids"]) != len(raw["packed"])
        ):
            raise StateError('records: expected {"ids": [...], "packed": [...]} of one length')
        pairs = zip(raw["ids"], raw["packed"], strict=True)
    for message_id, packed in pairs:
        if (
            not valid_message_id(message_id)
            or packed.__class__ is not int
            or not 0 <= packed < _MAX_PACKED
            or packed & 7 > _MAX_STATUS
        ):
            raise StateError("records: expected ids and packed non-negative ints")
        yield message_id, packed


def _recipients(m: MessageSessionManager, state: dict[str, Any]) -> Callable[[int], int] | None:
    """How a saved record's recipient field becomes this manager's: a function of the
    packed record, or None to keep records as they are."""
    layout = state.get("layout")
    if state.get("version") == 1:  # "redact=…;key=<fingerprint of the key, random or not>"
        fingerprint = hashlib.sha256(m._codec.key).hexdigest()[:16]
        same = layout == f"redact={m.options.redact_recipients};key={fingerprint}"
        return None if same else _without_recipient
    if not isinstance(layout, dict) or not isinstance(layout.get("redact"), bool):
        raise StateError("layout: expected the redaction mode")
    saved_key, key = layout.get("key"), _key_fingerprint(m)
    redact = m.options.redact_recipients
    if saved_key is not None and key is not None and saved_key != key:
        return _without_recipient  # a rotated key: old hashes mean nothing
    if layout["redact"] == redact:
        return None
    if redact:  # numbers (or flagged hashes) saved without redaction: hash them now
        codec = m._codec

        def hashed(field: int) -> int:
            if field & HASHED_FLAG:
                return field >> 1
            return codec.field(str(field >> 1)) if field else 0

        return _with_field(hashed)
    # Hashes saved with redaction, read without it: still hashes, flagged as such.
    return _with_field(lambda field: (field << 1) | HASHED_FLAG if field else 0)


def _without_recipient(packed: int) -> int:
    return packed & ~_RECIPIENT_BITS  # status, offset, flags and tag kept


def _with_field(convert: Callable[[int], int]) -> Callable[[int], int]:
    """A record converter that maps the recipient field with ``convert``."""

    def converted(packed: int) -> int:
        field = (packed & _RECIPIENT_BITS) >> RECIPIENT_SHIFT
        return (packed & ~_RECIPIENT_BITS) | (convert(field) << RECIPIENT_SHIFT)

    return converted


def _fill(m: MessageSessionManager, state: dict[str, Any]) -> None:
    convert = _recipients(m, state)
    version = int(state["version"])
    m._receipts = _ints(state["receipts"], len(OUTCOME_KEYS), "receipts")
    m.hook_errors = int(state.get("hook_errors", 0))
    m._evicted_total = int(state.get("evicted_total", 0))
    sessions = []
    for raw in state["sessions"]:
        session = MessageSession(
            str(raw["session_id"]),
            _finite(raw["start"], "start"),
            _finite(raw["end"], "end"),
            _finite(raw["complete_at"], "complete_at"),
        )
        session.counters = _ints(raw["counters"], len(COUNTER_KEYS), "counters")
        session.receipts = _ints(raw["receipts"], len(OUTCOME_KEYS), "session receipts")
        session.errors = {str(k): int(v) for k, v in dict(raw["errors"]).items()}
        _fill_insights(session, raw)
        records, order = session.records, session.order
        for message_id, packed in _records(raw["records"], version):
            records[message_id] = packed if convert is None else convert(packed)
            order.append(message_id)
        sessions.append(session)
    sessions.sort(key=lambda s: s.start)
    m._sessions = sessions
    m._newest_first = sessions[::-1]
    m._tracked = sum(len(s.records) for s in sessions)
    for raw in state["history"]:
        summary = SessionSummary(
            session_id=str(raw["session_id"]),
            started_at=_finite(raw["started_at"], "started_at"),
            ended_at=_finite(raw["ended_at"], "ended_at"),
            completed_at=_finite(raw["completed_at"], "completed_at"),
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
    m._tombstones.load((_finite(at, "tombstones"), digests) for at, digests in state["tombstones"])
    # The current caps apply at once: oldest records and tombstones first.
    while m._tracked > m._cap:
        m._evict_one()
    m._peak_sessions = len(sessions)
    m._peak_tracked = m._tracked
    m._next_due = -math.inf  # anything due while we were down happens on the next call
