"""The seed-compatible views, ``get_all_stats()`` and ``get_debug_info()``: one definition for
every store, so the stores only gather their state."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from plugin.core.failures import failures_by_kind, sum_failures
from plugin.core.latency import LatencyTotals, latency_view, merge
from plugin.core.model import COUNTER_KEYS, OUTCOME_KEYS, SessionSummary
from plugin.core.options import ManagerOptions

__all__ = ["all_stats", "manager_stats", "session_stats"]


def session_stats(
    session_id: str,
    start: float,
    end: float,
    complete_at: float,
    tracked: int,
    counters: Mapping[str, int],
    receipts: Mapping[str, int],
    errors: Mapping[str, int],
    *,
    tags: Mapping[str, Mapping[str, int]],
    latency: Mapping[str, Any],
) -> dict[str, Any]:
    """One active session as ``get_all_stats()["sessions"]`` shows it."""
    return {
        "session_id": session_id,
        "started_at": start,
        "ends_at": end,
        "completes_at": complete_at,
        "tracked_messages": tracked,
        **counters,
        "receipts": dict(receipts),
        "errors": dict(errors),
        "failures": failures_by_kind(errors),
        "tags": {tag: dict(funnel) for tag, funnel in tags.items()},
        "latency": dict(latency),
    }


def all_stats(
    sessions: Sequence[dict[str, Any]],
    history: Sequence[SessionSummary],
    *,
    tracked_messages: int,
    receipts: Sequence[int] | Mapping[str, int],
    latency: tuple[Sequence[Mapping[int, int]], Sequence[Mapping[int, int]]] = ((), ()),
) -> dict[str, Any]:
    """``get_all_stats()``: the summary adds up the active sessions' funnels (``latency``: their
    delivered and read histograms); ``receipts`` counts every receipt since start by outcome
    (by index or by name)."""
    if isinstance(receipts, Mapping):
        outcomes = {key: int(receipts.get(key, 0)) for key in OUTCOME_KEYS}
    else:
        outcomes = dict(zip(OUTCOME_KEYS, receipts, strict=True))
    summary: dict[str, Any] = {
        "active_sessions": len(sessions),
        "historical_sessions": len(history),
        "tracked_messages": tracked_messages,
        **{key: sum(s[key] for s in sessions) for key in COUNTER_KEYS},
        "receipts": outcomes,
        "failures": sum_failures(s["failures"] for s in sessions),
        "latency": latency_view(merge(latency[0]), merge(latency[1])),
    }
    history_view = [h.as_dict() for h in history]
    return {"summary": summary, "sessions": list(sessions), "history": history_view}


def manager_stats(
    options: ManagerOptions,
    *,
    active_sessions: Sequence[str],
    history_size: int,
    tracked_messages: int,
    memory_bound_bytes: int,
    hook_errors: int,
    tombstones: int,
    evicted_total: int,
    max_active_sessions: int,
    last_cleanup_at: float | None,
    peaks: dict[str, int],
    latency: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """``get_debug_info()["manager_stats"]``: the seed's keys (durations in milliseconds as the
    seed reported them), then the state's and the options' own."""
    return {
        "active_session_count": len(active_sessions),
        "history_size": history_size,
        "ack_tracking_window": round(options.ack_tracking_window * 1000),
        "auto_expire_enabled": True,  # lazy expiry is always on; the timer only adds to it
        "max_history_size": options.history_limit,
        "keep_history": options.keep_history,
        "tracked_messages": tracked_messages,
        "max_tracked_messages": options.max_tracked_messages,
        "memory_bound_bytes": memory_bound_bytes,
        "hook_errors": hook_errors,
        "tombstones": tombstones,
        "max_tombstones": options.max_tracked_messages,
        "evicted_total": evicted_total,
        "max_active_sessions": max_active_sessions,
        "profile": options.profile,
        "session_period": round(options.session_period * 1000),
        "max_session_age": round(options.max_session_age * 1000),
        "cleanup_interval": round(options.cleanup_interval * 1000),
        "timezone": options.timezone,
        "track_unknown_receipts": options.track_unknown_receipts,
        "redact_recipients": options.redact_recipients,
        "last_cleanup_at": last_cleanup_at,
        "active_sessions": list(active_sessions),
        "peaks": peaks,
        # Every latency observed since start: the Prometheus histogram's data.
        "latency": dict(latency) if latency is not None else LatencyTotals().as_dict(),
    }
