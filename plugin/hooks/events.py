"""Event dispatch: the manager's events become hook calls.

The manager is synchronous and calls an :class:`~plugin.core.manager.EventSink`. :class:`HookEvents`
is that sink: inside a running event loop it queues events (bounded) for a background task, so the
receipt path never waits for a subscriber; outside one (the CLI, plain scripts) it dispatches at
once. Each implementation is called on its own: a coroutine is awaited, an exception is logged and
counted, and the others still run.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections import deque
from typing import TYPE_CHECKING, Any

import pluggy

from plugin.core.model import CleanupReport, MessageExpired, SessionSummary, StatusChange

if TYPE_CHECKING:
    from plugin.stores.base import Store

__all__ = ["HookEvents", "call_hook"]

log = logging.getLogger("plugin.hooks.events")


def _arguments(impl: pluggy.HookImpl, kwargs: dict[str, Any]) -> dict[str, Any]:
    """What ``impl`` accepts of ``kwargs`` (pluggy lets an implementation take a subset)."""
    if len(impl.argnames) == len(kwargs):  # the usual case: it takes them all
        return kwargs
    return {name: kwargs[name] for name in impl.argnames if name in kwargs}


def _report(name: str, impl: pluggy.HookImpl, errors: list[int]) -> None:
    errors[0] += 1
    log.exception("hook %s of plugin %r failed", name, impl.plugin_name)


async def call_hook(
    pm: pluggy.PluginManager, name: str, kwargs: dict[str, Any], on_error: Any = None
) -> int:
    """Call every implementation of hook ``name`` (last registered first), awaiting coroutines.
    Returns how many failed; ``on_error()`` is called once per failure."""
    errors = [0]
    for impl in reversed(getattr(pm.hook, name).get_hookimpls()):
        try:
            result = impl.function(**_arguments(impl, kwargs))
            if result is not None and inspect.isawaitable(result):
                await result
        except Exception:
            _report(name, impl, errors)
            if on_error is not None:
                on_error()
    return errors[0]


class HookEvents:
    """The manager's event sink, backed by a pluggy plugin manager."""

    def __init__(
        self,
        pm: pluggy.PluginManager,
        manager: Store | None = None,
        max_queue: int = 10_000,
    ) -> None:
        self.pm = pm
        self.manager = manager
        self.max_queue = max_queue
        self.dropped = 0
        self._queue: deque[tuple[str, dict[str, Any]]] = deque()
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._idle: asyncio.Event | None = None
        # hook name -> (plugin-manager generation, [(implementation, takes the payload)])
        self._listeners: dict[str, tuple[int, list[tuple[pluggy.HookImpl, bool]]]] = {}

    # -- what the manager calls -----------------------------------------------------------------

    def status_changed(self, change: StatusChange) -> None:
        self._emit("whatsapp_status_changed", "change", change)

    def message_expired(self, expired: MessageExpired) -> None:
        self._emit("whatsapp_message_expired", "expired", expired)

    def session_completed(self, summary: SessionSummary) -> None:
        self._emit("whatsapp_session_completed", "summary", summary)

    def cleanup_completed(self, report: CleanupReport) -> None:
        self._emit("whatsapp_cleanup_completed", "report", report)

    def listens(self, name: str) -> bool:
        return bool(getattr(self.pm.hook, name).get_hookimpls())

    def attach(self, manager: Store) -> None:
        """Become ``manager``'s sink; per-message events only if some plugin implements them."""
        self.manager = manager
        manager.attach_events(
            self,
            status_changed=self.listens("whatsapp_status_changed"),
            message_expired=self.listens("whatsapp_message_expired"),
        )

    # -- dispatch -------------------------------------------------------------------------------

    def _on_error(self) -> None:
        if self.manager is not None:
            self.manager.record_hook_error()

    def _emit(self, name: str, argument: str, payload: Any) -> None:
        if self._task is None:
            self._dispatch_now(name, payload)
            return
        if len(self._queue) >= self.max_queue:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning(
                    "event queue full (%d): %d events dropped", self.max_queue, self.dropped
                )
            return
        self._queue.append((name, {argument: payload}))
        assert self._wakeup is not None
        self._wakeup.set()

    def _implementations(self, name: str) -> list[tuple[pluggy.HookImpl, bool]]:
        """The implementations of an event hook (last registered first), and whether each
        takes the event's one argument; cached while no plugin is (un)registered, when the
        plugin manager counts that (``make_plugin_manager``'s does)."""
        generation = getattr(self.pm, "generation", None)
        cached = self._listeners.get(name)
        if cached is not None and generation is not None and cached[0] == generation:
            return cached[1]
        listeners = [
            (impl, bool(impl.argnames))
            for impl in reversed(getattr(self.pm.hook, name).get_hookimpls())
        ]
        if generation is not None:
            self._listeners[name] = (generation, listeners)
        return listeners

    def _dispatch_now(self, name: str, payload: Any) -> None:
        errors = [0]
        for impl, takes_payload in self._implementations(name):
            try:
                result = impl.function(payload) if takes_payload else impl.function()
                if result is not None and inspect.isawaitable(result):
                    self._run_coroutine(name, impl, result)
            except Exception:
                _report(name, impl, errors)
                self._on_error()

    def _run_coroutine(self, name: str, impl: pluggy.HookImpl, awaitable: Any) -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            try:
                asyncio.run(_await(awaitable))
            except Exception:
                _report(name, impl, [0])
                self._on_error()
            return
        # Inside a loop but without the dispatcher task: run it in the background, still
        # isolated and counted.
        task = asyncio.ensure_future(awaitable)

        def done(finished: asyncio.Future[Any]) -> None:
            if not finished.cancelled() and finished.exception() is not None:
                log.error(
                    "hook %s of plugin %r failed",
                    name,
                    impl.plugin_name,
                    exc_info=finished.exception(),
                )
                self._on_error()

        task.add_done_callback(done)

    async def start(self) -> None:
        """Queue events from now on and dispatch them from a background task."""
        if self._task is not None:
            return
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="whatsapp-events")

    async def _run(self) -> None:
        assert self._wakeup is not None and self._idle is not None
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            self._idle.clear()
            while self._queue:
                name, kwargs = self._queue.popleft()
                await call_hook(self.pm, name, kwargs, self._on_error)
            self._idle.set()

    async def flush(self) -> None:
        """Wait until every queued event has been dispatched."""
        while self._queue or (self._idle is not None and not self._idle.is_set()):
            if self._wakeup is not None:
                self._wakeup.set()
            await asyncio.sleep(0)

    async def stop(self) -> None:
        """Flush, then stop the background task; later events are dispatched at once."""
        if self._task is None:
            return
        await self.flush()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None


async def _await(awaitable: Any) -> None:
    await awaitable
