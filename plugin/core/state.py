"""The manager's full state as plain data (JSON), and a manager rebuilt from it.

Used by snapshots (``state_file``) and by the simulation's heap checkpoints. Saving has two steps
so that a server never stalls on it: :func:`copy_state` copies what can change (a few
milliseconds for 150,000 records: C-level copies of each session's dict and send order), then
:func:`encode_state` turns the copy into JSON text piece by piece, at most ``slice_size``
records per piece, so the caller can yield to its event loop between pieces.

The format is versioned (:data:`STATE_VERSION`); version 1 files (records as ``[id, packed]``
pairs) are migrated on restore, anything else is refused with :class:`StateError`. The restored
manager obeys the bounds of *its* options (a smaller cap or history applies at once).

Recipients: the layout records the redaction mode and, only when ``redaction_key`` is set, a
fingerprint of it (never the key). Hashes made with a random per-process key are kept as hashes
after a restart (they stay opaque ids); hashes from a different configured key are dropped (a
key rotation); switching redaction on hashes the stored numbers, switching it off keeps hashes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from plugin.core.latency import MAX_BUCKET
from plugin.core.manager import MessageSessionManager
from plugin.core.model import COUNTER_KEYS, OUTCOME_KEYS, SessionSummary
from plugin.core.records import (
    HASHED_FLAG,
    RECIPIENT_MASK,
    RECIPIENT_SHIFT,
    TAG_BITS,
    TAG_SHIFT,
    valid_message_id,
)
from plugin.core.session import MessageSession

__all__ = [
    "SLICE_SIZE",
    "STATE_FORMAT",
    "STATE_VERSION",
    "StateCopy",
    "StateError",
    "copy_state",
    "encode_state",
    "export_state",
    "restore",
]

log = logging.getLogger("plugin.core.state")

STATE_FORMAT = "wa-sessions-state"
STATE_VERSION = 2
#: Records (or tombstones) encoded per piece by :func:`encode_state`.
SLICE_SIZE = 10_000
_HISTORY_SLICE = 500
_SEPARATORS = (",", ":")
_RECIPIENT_BITS = RECIPIENT_MASK << RECIPIENT_SHIFT
_MAX_PACKED = 1 << (TAG_SHIFT + TAG_BITS)  # the widest record: its tag is on top
_MAX_STATUS = 5


class StateError(ValueError):
    """A state that cannot be restored: unknown format or version, or malformed."""


def _key_fingerprint(manager: MessageSessionManager) -> str | None:
    """A fingerprint of a configured redaction key; None for a random per-process key."""
    if not manager.options.redaction_key:
        return None
    # This module reads the manager's internals on purpose: it is the manager's persistence.
    return hashlib.sha256(manager._codec.key).hexdigest()[:16]


def _layout(manager: MessageSessionManager) -> dict[str, Any]:
    return {"redact": manager.options.redact_recipients, "key": _key_fingerprint(manager)}


@dataclass(slots=True)
class _SessionCopy:
    head: dict[str, Any]
    order: list[str]
    records: dict[str, int]


@dataclass(slots=True)
class StateCopy:
    """What :func:`copy_state` took: nothing in it changes when the manager does."""

    head: dict[str, Any]
    history: list[dict[str, Any]]
    sessions: list[_SessionCopy]
    tombstones: list[tuple[float, array[int]]]
    extra: dict[str, Any]


def copy_state(
    manager: MessageSessionManager, extra: dict[str, Any] | None = None
) -> StateCopy:
    """A consistent copy of the state, cheap enough for an event loop (C-level copies)."""
    m = manager
    sessions = [
        _SessionCopy(
            head={
                "session_id": s.session_id,
                "start": s.start,
                "end": s.end,
                "complete_at": s.complete_at,
                "counters": list(s.counters),
                "receipts": list(s.receipts),
                "errors": dict(s.errors),
                "tags": dict(s.tag_index),
                "tag_counters": {str(i): list(c) for i, c in s.tag_counters.items()},
                "latency": [
                    {str(b): n for b, n in histogram.items()} for histogram in s.histograms()
                ],
                "latency_sums": list(s.latency_sums),
            },
            order=list(s.order),
            records=dict(s.records),
        )
        for s in m._sessions
    ]
    head = {
        "format": STATE_FORMAT,
        "version": STATE_VERSION,
        "saved_at": m._clock(),
        "layout": _layout(m),
        "receipts": list(m._receipts),
        "hook_errors": m.hook_errors,
        "evicted_total": m._evicted_total,
    }
    history = [
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
    ]
    tombstones = [(at, array("Q", digests)) for at, digests in m._tombstones._buckets]
    return StateCopy(head, history, sessions, tombstones, dict(extra or {}))


def _record_slices(copy: _SessionCopy, size: int) -> Iterator[tuple[list[str], list[int]]]:
    """The session's live records in send order (each id once), ``size`` ids of the send
    order at a time; then any record the order lacks."""
    records, order, seen = copy.records, copy.order, set[str]()
    for first in range(0, len(order), size):
        ids = order[first:first + size]
        packed = list(map(records.get, ids))
        if None in packed or not seen.isdisjoint(ids) or len(set(ids)) != len(ids):
            # Released or repeated ids: each live record once, where it first appears.
            ids = [i for i in dict.fromkeys(ids) if i in records and i not in seen]
            packed = [records[i] for i in ids]
        seen.update(ids)
        yield ids, packed  # type: ignore[misc]
    if len(seen) != len(records):
        rest = [i for i in records if i not in seen]
        yield rest, [records[i] for i in rest]


def encode_state(copy: StateCopy, slice_size: int = SLICE_SIZE) -> Iterator[bytes]:
    """The JSON document of ``copy`` in pieces, each costing at most ``slice_size`` records'
    (or tombstones') work: records as two parallel arrays, ``ids`` and ``packed`` ints."""
    dumps = json.JSONEncoder(separators=_SEPARATORS).encode
    yield (dumps(copy.head)[:-1] + ',"history":[').encode()
    history = copy.history
    for first in range(0, len(history), _HISTORY_SLICE):
        comma = "," if first else ""
        yield (comma + dumps(history[first:first + _HISTORY_SLICE])[1:-1]).encode()
    yield b'],"sessions":['
    for number, session in enumerate(copy.sessions):
        yield (("," if number else "") + dumps(session.head)[:-1]
               + ',"records":{"ids":[').encode()
        packed_pieces: list[str] = []
        for ids, packed in _record_slices(session, slice_size):
            if ids:
                comma = "," if packed_pieces else ""
                packed_pieces.append(comma + dumps(packed)[1:-1])
                yield (comma + dumps(ids)[1:-1]).encode()
        yield b'],"packed":['
        for piece in packed_pieces:
            yield piece.encode()
        yield b"]}}"
    yield b'],"tombstones":['
    for number, (at, digests) in enumerate(copy.tombstones):
        yield f'{"," if number else ""}[{dumps(at)},['.encode()
        for first in range(0, len(digests), slice_size):
            comma = "," if first else ""
            yield (comma + dumps(digests[first:first + slice_size].tolist())[1:-1]).encode()
        yield b"]]"
    yield b'],"extra":' + dumps(copy.extra).encode() + b"}"


def export_state(
    manager: MessageSessionManager, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Everything needed to carry on after a restart, as plain data; ``extra`` is kept as
    given (the server's webhook counters)."""
    copy = copy_state(manager, extra)
    sessions = []
    for session in copy.sessions:
        ids: list[str] = []
        packed: list[int] = []
        for some_ids, some_packed in _record_slices(session, SLICE_SIZE):
            ids += some_ids
            packed += some_packed
        sessions.append({**session.head, "records": {"ids": ids, "packed": packed}})
    return {
        **copy.head,
        "history": copy.history,
        "sessions": sessions,
        "tombstones": [[at, list(digests)] for at, digests in copy.tombstones],
        "extra": copy.extra,
    }


# -- restore ----------------------------------------------------------------------------------


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
        log.warning("state of version 1 migrated to version %d (recipients kept only when "
                    "saved with the same redaction settings)", STATE_VERSION)
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
        if not isinstance(raw, dict) or not isinstance(raw.get("ids"), list) or not isinstance(
            raw.get("packed"), list
        ) or len(raw["ids"]) != len(raw["packed"]):
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


def _recipients(
    m: MessageSessionManager, state: dict[str, Any]
) -> Callable[[int], int] | None:
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
            str(raw["session_id"]), _finite(raw["start"], "start"), _finite(raw["end"], "end"),
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
