"""The seed-compatible ``get_debug_info()`` view, one definition for every store."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from plugin.core.options import ManagerOptions

__all__ = ["manager_stats"]


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
    }
