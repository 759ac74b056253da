"""When an event counts as delivered: its ``on_delivered`` callback (the Redis store acknowledges
a completed session in its Stream then) runs once every hook ran for it, coroutine hooks run in
the background included, and never for an event whose hook was cancelled."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

__all__ = ["notify_delivered", "notify_when_finished"]

log = logging.getLogger("plugin.hooks.events")


def notify_delivered(done: Callable[[], None]) -> None:
    """Call an event's ``on_delivered``; a failing one is logged, never raised to the hooks."""
    try:
        done()
    except Exception:
        log.exception("on_delivered callback failed")


def notify_when_finished(tasks: list[asyncio.Task[None]], done: Callable[[], None]) -> None:
    """Call ``done`` once every task finished, unless one was cancelled (its hook never ran to
    its end: the event is not delivered)."""
    if not tasks:
        notify_delivered(done)
        return
    waiting = set(tasks)
    cancelled = False

    def finished(task: asyncio.Task[None]) -> None:
        nonlocal cancelled
        cancelled = cancelled or task.cancelled()
        waiting.discard(task)
        if not waiting and not cancelled:
            notify_delivered(done)

    for task in tasks:
        task.add_done_callback(finished)
