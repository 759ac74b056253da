"""What a manager reports about its state: the seed-compatible views (``get_all_stats()``,
``get_debug_info()``), the Prometheus latency totals, the bounds and peaks, and the settling that
makes the views exact. The state and its lifecycle are in :mod:`plugin.core.lifecycle`; the
receipt and send paths in :mod:`plugin.core.manager`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from plugin.core.ladder import STATUSES
from plugin.core.latency import LatencyTotals
from plugin.core.lifecycle import EXPIRY_SLICE, SessionBook
from plugin.core.memory_bound import max_active_sessions, memory_bound_bytes
from plugin.core.model import SessionSummary, Status
from plugin.core.records import (
    OFFSET_MASK,
    OFFSET_SHIFT,
    RECIPIENT_MASK,
    RECIPIENT_SHIFT,
    STATUS_MASK,
)
from plugin.core.session import MessageSession
from plugin.core.views import all_stats, manager_stats

__all__ = ["ManagerReports"]


class ManagerReports(SessionBook):
    """The views of a manager's state (see the module docstring)."""

    @property
    def history_size(self) -> int:
        return len(self._history) if self.options.history_limit > 0 else 0

    @property
    def tracked_messages(self) -> int:
        return self._tracked

    @property
    def sessions(self) -> list[MessageSession]:
        """Active sessions, oldest first (a copy)."""
        return list(self._sessions)

    @property
    def history(self) -> list[SessionSummary]:
        return list(self._history) if self.options.history_limit > 0 else []

    @property
    def tombstone_count(self) -> int:
        return len(self._tombstones)

    def records(self) -> Iterator[tuple[str, str, Status, float, str | None]]:
        """Every tracked record as (message id, session id, status, sent_at, recipient as the
        events show it): for debugging and snapshots, not for the hot path."""
        for session in self._sessions:
            for message_id, packed in session.records.items():
                yield (
                    message_id,
                    session.session_id,
                    STATUSES[packed & STATUS_MASK],
                    session.start + ((packed >> OFFSET_SHIFT) & OFFSET_MASK),
                    self._codec.text((packed >> RECIPIENT_SHIFT) & RECIPIENT_MASK),
                )

    def max_active_sessions(self) -> int:
        """Most sessions that can be active at once with these options."""
        return max_active_sessions(self.options, self._calendar.fixed_offset)

    def memory_bound_bytes(self) -> int:
        """An upper bound of the heap this manager can hold, computed from its options."""
        return memory_bound_bytes(self.options, self.max_active_sessions())

    def peaks(self) -> dict[str, int]:
        """High-water marks since start: what the bounds are checked against."""
        return {
            "active_sessions": self._peak_sessions,
            "tracked_messages": self._peak_tracked,
            "history_size": self.history_size,  # history never shrinks
        }

    def settle(self, now: float | None = None) -> None:
        """Apply every completion and expiry due by ``now``, exactly (the views call it)."""
        self._run_due(self._clock() if now is None else now)

    def settle_slice(self, limit: int = EXPIRY_SLICE) -> bool:
        """Apply at most ``limit`` of the releases due now (expiries, then completions);
        True while more are due. A server calls it from a background task, yielding between
        slices, so that no call does unbounded work on its event loop."""
        now = self._clock()
        if now < self._next_due and not self._backlog:
            return False
        self._run_due(now, limit)
        return self._backlog

    @property
    def backlogged(self) -> bool:
        """Whether due releases are waiting (a burst larger than one slice)."""
        return self._backlog

    def get_all_stats(self) -> dict[str, Any]:
        self.settle()
        return all_stats(
            [s.stats() for s in self._sessions],
            self.history,
            tracked_messages=self._tracked,
            receipts=self._receipts,
            latency=(
                [s.histograms()[0] for s in self._sessions],
                [s.histograms()[1] for s in self._sessions],
            ),
        )

    def latency_totals(self) -> dict[str, Any]:
        """Every latency observed since start (the Prometheus histogram's data)."""
        totals = LatencyTotals()
        totals.add(self._latency_completed.buckets, self._latency_completed.sums)
        for session in self._sessions:
            totals.add((session.delivered_latency, session.read_latency), session.latency_sums)
        return totals.as_dict()

    def get_debug_info(self) -> dict[str, Any]:
        self.settle()
        return {
            "manager_stats": manager_stats(
                self.options,
                active_sessions=[s.session_id for s in self._sessions],
                history_size=self.history_size,
                tracked_messages=self._tracked,
                memory_bound_bytes=self.memory_bound_bytes(),
                hook_errors=self.hook_errors,
                tombstones=len(self._tombstones),
                evicted_total=self._evicted_total,
                max_active_sessions=self.max_active_sessions(),
                last_cleanup_at=self._last_cleanup,
                peaks=self.peaks(),
                latency=self.latency_totals(),
            )
        }
