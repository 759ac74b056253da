"""How the stores hand their events to the hook system: a sink protocol (the core never imports
pluggy) and the per-message callbacks, set only when somebody listens."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from plugin.core.model import CleanupReport, MessageExpired, SessionSummary, StatusChange

__all__ = ["EventEmitter", "EventSink"]

# The seed's log lines come from the manager's logger, whichever store writes them.
log = logging.getLogger("plugin.core.manager")


class EventSink(Protocol):
    """Where the manager sends its events. The hook system implements it; the manager never
    imports pluggy.

    ``session_completed`` may get ``on_delivered``: a callback to call once every hook has
    run for that event (the Redis store acknowledges the event in its Stream only then, so an
    event a crash interrupted is delivered again). A sink that drops the event must not call it.
    """

    def status_changed(self, change: StatusChange) -> None: ...

    def message_expired(self, expired: MessageExpired) -> None: ...

    def session_completed(
        self, summary: SessionSummary, *, on_delivered: Callable[[], None] | None = None
    ) -> None: ...

    def cleanup_completed(self, report: CleanupReport) -> None: ...


class EventEmitter:
    """What the stores share about events: the sink, the per-message callbacks (None when
    nobody listens, so the receipt path skips building them) and the hook-error count."""

    def __init__(self) -> None:
        self.hook_errors = 0
        self._events: EventSink | None = None
        self._on_status: Callable[[StatusChange], None] | None = None
        self._on_expired: Callable[[MessageExpired], None] | None = None

    def attach_events(
        self, sink: EventSink | None, *, status_changed: bool = True, message_expired: bool = True
    ) -> None:
        """Send events to ``sink``. Per-message events cost time on the receipt path, so the
        caller says whether anyone listens to them."""
        self._events = sink
        self._on_status = sink.status_changed if sink is not None and status_changed else None
        self._on_expired = sink.message_expired if sink is not None and message_expired else None

    def record_hook_error(self) -> None:
        self.hook_errors += 1

    async def room_for_background(self) -> None:
        """Before a slice of background work (expiry, completion): wait for room in the event
        queue when the sink applies backpressure (``HookEvents.room_for_background``), so a
        burst's events never overflow it; at once for a sink that does not."""
        room = getattr(self._events, "room_for_background", None)
        if room is not None:
            await room()

    def announce_completion(
        self,
        summary: SessionSummary,
        cleared: int,
        *,
        on_delivered: Callable[[], None] | None = None,
    ) -> None:
        """A session completed: the seed's log lines, then ``session_completed``.
        ``on_delivered`` is called once the hooks ran (at once when no sink listens)."""
        log.info("MessageSession cleaned up (cleared_messages=%d)", cleared)
        log.info("Session completed and moved to history (date=%s)", summary.session_id)
        if self._events is None:
            if on_delivered is not None:
                on_delivered()
        elif on_delivered is None:
            self._events.session_completed(summary)
        else:
            self._events.session_completed(summary, on_delivered=on_delivered)

    def announce_cleanup(self, report: CleanupReport) -> CleanupReport:
        """A cleanup ran: the seed's log line, then ``cleanup_completed``; returns ``report``."""
        log.info(
            "Periodic cleanup completed (history_trimmed=%d, remaining_history=%d)",
            report.history_trimmed,
            report.remaining_history,
        )
        if self._events is not None:
            self._events.cleanup_completed(report)
        return report
