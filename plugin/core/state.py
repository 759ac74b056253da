"""The manager's full state as plain data (JSON); :mod:`plugin.core.restore` rebuilds a manager
from it.

Used by snapshots (``state_file``) and by the simulation's heap checkpoints. Saving has two steps
so that a server never stalls on it: :func:`copy_state` copies what can change (a few
milliseconds for 150,000 records: C-level copies of each session's dict and send order), then
:func:`encode_state` turns the copy into JSON text piece by piece, at most ``slice_size``
records per piece, so the caller can yield to its event loop between pieces. A piece is
C-level work too (about 0.15 ms per 1,000 records): records are popped from the copy a slice
at a time, ids quoted with one ``join`` (``json.dumps`` only when an id holds a character JSON
escapes), the packed ints written by the JSON encoder.

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
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import repeat
from typing import Any

from plugin.core.manager import MessageSessionManager
from plugin.core.records import (
    RECIPIENT_MASK,
    RECIPIENT_SHIFT,
    TAG_BITS,
    TAG_SHIFT,
)

__all__ = [
    "SLICE_SIZE",
    "STATE_FORMAT",
    "STATE_VERSION",
    "StateCopy",
    "StateError",
    "copy_state",
    "encode_state",
    "export_state",
]

log = logging.getLogger("plugin.core.state")

STATE_FORMAT = "wa-sessions-state"
STATE_VERSION = 2
#: Records (or tombstones) encoded per piece by :func:`encode_state`: a few milliseconds of
#: work each, the event loop free between pieces.
SLICE_SIZE = 2_500
_HISTORY_SLICE = 500
_SEPARATORS = (",", ":")
#: What JSON escapes in a string of printable ASCII (and control characters, never in an id).
_ESCAPED = bytes(range(0x20)) + b'"\\'
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


def copy_state(manager: MessageSessionManager, extra: dict[str, Any] | None = None) -> StateCopy:
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
    """The session's live records in send order, each id once (where it first appears),
    ``size`` ids of the send order at a time; then any record the order lacks.

    Consumes ``copy.records``: each record is popped as it is taken, so one C-level pass over
    a slice looks the ids up and drops repeats (a repeated or released id pops nothing)."""
    records, order = copy.records, copy.order
    take, nothing = records.pop, repeat(None)
    for first in range(0, len(order), size):
        ids = order[first : first + size]
        left = len(records)
        packed = list(map(take, ids, nothing))
        if len(records) != left - len(ids):  # released or repeated ids in this slice
            kept = [(i, p) for i, p in zip(ids, packed, strict=True) if p is not None]
            ids, packed = [i for i, _ in kept], [p for _, p in kept]
        yield ids, packed  # type: ignore[misc]
    rest = list(records)
    for first in range(0, len(rest), size):
        ids = rest[first : first + size]
        yield ids, list(map(take, ids))


def _strings(ids: list[str]) -> bytes:
    """``ids`` as the elements of a JSON array, byte for byte what ``json.dumps`` writes, at a
    fraction of its cost: message ids are printable ASCII, so quoting them is enough when none
    holds a quote, a backslash or a control character (one C-level scan checks it)."""
    text = '","'.join(ids)
    if text.isascii():
        raw = text.encode()
        if len(raw.translate(None, _ESCAPED)) == len(raw) - 2 * (len(ids) - 1):
            return b'"' + raw + b'"'
    return json.dumps(ids, separators=_SEPARATORS)[1:-1].encode()


def encode_state(copy: StateCopy, slice_size: int = SLICE_SIZE) -> Iterator[bytes]:
    """The JSON document of ``copy`` in pieces, each costing at most ``slice_size`` records'
    (or tombstones') work: records as two parallel arrays, ``ids`` and ``packed`` ints.
    A copy is encoded once (its records are consumed)."""
    dumps = json.JSONEncoder(separators=_SEPARATORS).encode
    yield (dumps(copy.head)[:-1] + ',"history":[').encode()
    history = copy.history
    for first in range(0, len(history), _HISTORY_SLICE):
        comma = "," if first else ""
        yield (comma + dumps(history[first : first + _HISTORY_SLICE])[1:-1]).encode()
    yield b'],"sessions":['
    for number, session in enumerate(copy.sessions):
        yield (("," if number else "") + dumps(session.head)[:-1] + ',"records":{"ids":[').encode()
        packed_pieces: list[bytes] = []
        for ids, packed in _record_slices(session, slice_size):
            if ids:
                between = b"," if packed_pieces else b""
                packed_pieces.append(between + dumps(packed)[1:-1].encode())
                yield between + _strings(ids)
        yield b'],"packed":['
        yield from packed_pieces
        yield b"]}}"
    yield b'],"tombstones":['
    for number, (at, digests) in enumerate(copy.tombstones):
        yield f"{',' if number else ''}[{dumps(at)},[".encode()
        for first in range(0, len(digests), slice_size):
            comma = "," if first else ""
            yield (comma + dumps(digests[first : first + slice_size].tolist())[1:-1]).encode()
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
