"""The Redis store's views: ``get_all_stats()`` and ``get_debug_info()`` shaped exactly as the
in-memory manager's, from one atomic read of the keys (the ``VIEWS`` script), and the estimate
of the memory the keys can take in Redis."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from plugin.core.latency import MAX_BUCKET, LatencyTotals, latency_view
from plugin.core.model import COUNTER_KEYS, OUTCOME_KEYS, SessionSummary
from plugin.core.options import ManagerOptions
from plugin.core.records import (
    MAX_ERROR_CODE_LENGTH,
    MAX_ERROR_CODES,
    MAX_MESSAGE_ID_LENGTH,
    MAX_TAG_LENGTH,
    OTHER_TAG,
)
from plugin.core.views import all_stats as shape_all_stats
from plugin.core.views import manager_stats, session_stats

__all__ = [
    "PROCESS_BOUND_BYTES",
    "all_stats",
    "debug_info",
    "parse_views",
    "redis_memory_bound_bytes",
    "summary_of",
]

#: What a process holds for the store: options, scripts, caches; the state is in Redis.
PROCESS_BOUND_BYTES = 256 * 1024


def _pairs(flat: Sequence[Any]) -> dict[str, Any]:
    return {flat[i]: flat[i + 1] for i in range(0, len(flat), 2)}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []  # cjson writes an empty array as {}


def parse_views(raw: str) -> dict[str, Any]:
    """The VIEWS script's JSON: sessions as field dicts (oldest first), meta, history, tombs."""
    data: dict[str, Any] = json.loads(raw)
    sessions = [(_pairs(fields), int(tracked)) for fields, tracked in _list(data.get("sessions"))]
    sessions.sort(key=lambda entry: float(entry[0]["start"]))
    return {
        "sessions": sessions,
        "meta": _pairs(_list(data.get("meta"))),
        "history": [json.loads(item) for item in reversed(_list(data.get("history")))],
        "tombstones": int(data.get("tombstones", 0)),
        "format": int(data["format"]) if data.get("format") else None,
        "events": int(data.get("events", 0)),
        "events_pending": int(data.get("events_pending", 0)),
    }


def _histogram(fields: Mapping[str, str], prefix: str) -> dict[int, int]:
    return {int(k[len(prefix) :]): int(v) for k, v in fields.items() if k.startswith(prefix)}


def histograms(fields: Mapping[str, str]) -> tuple[dict[int, int], dict[int, int]]:
    """A session's delivered and read latency histograms (fields ``ld:<bucket>``,
    ``lr:<bucket>``)."""
    return _histogram(fields, "ld:"), _histogram(fields, "lr:")


def tags_of(fields: Mapping[str, str]) -> dict[str, dict[str, int]]:
    """A session's tag funnels: fields ``g:<index>:<counter>``, names in ``gn:<index>``."""
    names = {k[3:]: v for k, v in fields.items() if k.startswith("gn:")}
    names[str(OTHER_TAG)] = "other"
    funnels: dict[str, dict[str, int]] = {}
    for key, value in sorted(fields.items()):
        if key.startswith("g:"):
            index, counter = key[2:].split(":", 1)
            funnel = funnels.setdefault(names.get(index, index), dict.fromkeys(COUNTER_KEYS, 0))
            funnel[counter] = int(value)
    return funnels


def latency_totals(data: dict[str, Any]) -> dict[str, Any]:
    """Every latency observed since start: the completed sessions' histograms, added up in the
    meta hash (``Ld:<bucket>``, ``Lr:<bucket>``, sums ``Ls:d``, ``Ls:r``), plus the active
    sessions' (``ld:``/``lr:`` fields, sums ``ls:d``, ``ls:r``)."""
    totals = LatencyTotals()
    meta = data["meta"]
    parts = [(meta, "L")] + [(fields, "l") for fields, _ in data["sessions"]]
    for fields, letter in parts:
        delivered = _histogram(fields, f"{letter}d:")
        read = _histogram(fields, f"{letter}r:")
        counts = [[0] * (MAX_BUCKET + 1), [0] * (MAX_BUCKET + 1)]
        for kind, histogram in enumerate((delivered, read)):
            for bucket, count in histogram.items():
                counts[kind][min(max(bucket, 0), MAX_BUCKET)] += count
        sums = [float(fields.get(f"{letter}s:d", 0)), float(fields.get(f"{letter}s:r", 0))]
        totals.add(counts, sums)
    return totals.as_dict()


def summary_of(fields: Mapping[str, str]) -> SessionSummary:
    """A completed session's summary from its hash fields (plus ``completed_at``)."""
    return SessionSummary(
        session_id=fields["session_id"],
        started_at=float(fields["start"]),
        ended_at=float(fields["end"]),
        completed_at=float(fields["completed_at"]),
        counters={key: int(fields.get(key, 0)) for key in COUNTER_KEYS},
        receipts={key: int(fields.get(f"o:{key}", 0)) for key in OUTCOME_KEYS},
        errors={k[2:]: int(v) for k, v in fields.items() if k.startswith("x:")},
        tags=tags_of(fields),
        latency=latency_view(*histograms(fields)),
    )


def _session_stats(fields: Mapping[str, str], tracked: int) -> dict[str, Any]:
    return session_stats(
        fields["session_id"],
        float(fields["start"]),
        float(fields["end"]),
        float(fields["complete_at"]),
        tracked,
        {key: int(fields.get(key, 0)) for key in COUNTER_KEYS},
        {key: int(fields.get(f"o:{key}", 0)) for key in OUTCOME_KEYS},
        {k[2:]: int(v) for k, v in fields.items() if k.startswith("x:")},
        tags=tags_of(fields),
        latency=latency_view(*histograms(fields)),
    )


def _history(data: dict[str, Any], options: ManagerOptions) -> list[SessionSummary]:
    if options.history_limit <= 0:
        return []
    return [summary_of(fields) for fields in data["history"]]


def all_stats(data: dict[str, Any], options: ManagerOptions) -> dict[str, Any]:
    """``get_all_stats()`` of parsed views."""
    meta = data["meta"]
    return shape_all_stats(
        [_session_stats(fields, tracked) for fields, tracked in data["sessions"]],
        _history(data, options),
        tracked_messages=int(meta.get("tracked", 0)),
        receipts={key: int(meta.get(f"o:{key}", 0)) for key in OUTCOME_KEYS},
        latency=(
            [histograms(fields)[0] for fields, _ in data["sessions"]],
            [histograms(fields)[1] for fields, _ in data["sessions"]],
        ),
    )


def debug_info(
    data: dict[str, Any],
    options: ManagerOptions,
    *,
    hook_errors: int,
    max_sessions: int,
    prefix: str,
    stream_maxlen: int = 0,
) -> dict[str, Any]:
    """``get_debug_info()`` of parsed views: the manager's keys, then the Redis-side ones."""
    meta = data["meta"]
    opts = options
    history_size = len(_history(data, options))
    last_cleanup = meta.get("last_cleanup")
    stats = manager_stats(
        opts,
        active_sessions=[fields["session_id"] for fields, _ in data["sessions"]],
        history_size=history_size,
        tracked_messages=int(meta.get("tracked", 0)),
        memory_bound_bytes=PROCESS_BOUND_BYTES,
        hook_errors=hook_errors,
        tombstones=data["tombstones"],
        evicted_total=int(meta.get("evicted_total", 0)),
        max_active_sessions=max_sessions,
        last_cleanup_at=None if last_cleanup is None else float(last_cleanup),
        latency=latency_totals(data),
        peaks={
            "active_sessions": int(meta.get("peak_sessions", 0)),
            "tracked_messages": int(meta.get("peak_tracked", 0)),
            "history_size": history_size,
        },
    )
    return {
        "manager_stats": {
            **stats,
            # Redis-side: where the state lives and its bound.
            "store": "redis",
            "redis_prefix": prefix,
            "redis_memory_bound_bytes": redis_memory_bound_bytes(
                opts, max_sessions, len(prefix) + 2, stream_maxlen
            ),
            "lost_records": int(meta.get("lost", 0)),
            # The Stream of completed sessions: its length, entries read but not yet
            # acknowledged, and entries trimmed by event_stream_maxlen before that (fleet-wide).
            "event_stream_length": data["events"],
            "events_pending": data["events_pending"],
            "events_lost": int(meta.get("events_lost", 0)),
        }
    }


# Redis's own overhead per key and per sorted-set member, generously rounded (jemalloc classes,
# dict entries, the expires table); measured with MEMORY USAGE on Redis 7.
_KEY_OVERHEAD = 96
_RECORD_FIELDS = 96  # listpack of s, st, t, r
_ZSET_MEMBER = 96  # skiplist node + dict entry, besides the member string
_TOMB_BYTES = 16  # a tombstone's digest
_SESSION_BYTES = 4096 + MAX_ERROR_CODES * (MAX_ERROR_CODE_LENGTH + 32)
_SUMMARY_BYTES = 2048 + MAX_ERROR_CODES * (MAX_ERROR_CODE_LENGTH + 32)
_STREAM_ENTRY = 160  # id, field names, the released count, a pending-list entry


def redis_memory_bound_bytes(
    options: ManagerOptions, max_sessions: int, base_length: int, stream_maxlen: int = 0
) -> int:
    """An estimate of the most memory the store's keys can take in Redis at the caps
    (``stream_maxlen``: event_stream_maxlen, each entry a summary)."""
    cap = options.max_tracked_messages
    id_bytes = MAX_MESSAGE_ID_LENGTH + 16
    record = _KEY_OVERHEAD + base_length + 3 + id_bytes + _RECORD_FIELDS + 32
    index = _ZSET_MEMBER + id_bytes
    tombstones = cap * (_ZSET_MEMBER + _TOMB_BYTES)
    # Tags: a name field and an index field (each up to 4 bytes a character), 8 counter fields;
    # latency: a field per histogram bucket, twice.
    tags = (options.max_tags_per_session + 1) * (2 * (4 * MAX_TAG_LENGTH + 32) + 8 * 48)
    latency = 2 * (MAX_BUCKET + 1) * 48
    sessions = (max_sessions + 1) * (_SESSION_BYTES + tags + latency)
    summary = _SUMMARY_BYTES + tags + latency
    history = options.history_limit * summary
    stream = stream_maxlen * (summary + _STREAM_ENTRY)
    return cap * (record + index) + tombstones + sessions + history + stream
