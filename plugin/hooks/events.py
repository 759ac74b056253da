"""Event dispatch: the manager's events become hook calls, none dropped.

The manager is synchronous and calls an :class:`~plugin.core.manager.EventSink`. :class:`HookEvents`
is that sink. Inside a running event loop it queues events for a background task, so the receipt
path never waits for a subscriber; outside one (the CLI, plain scripts) it dispatches at once.

Delivery guarantee (DESIGN.md, "Hooks"): the queue never drops. A synchronous producer cannot
wait, so its events are always queued; the asynchronous side applies backpressure instead: the
receive path and the expiry drain ``await room()`` before their next slice of work whenever
``max_queue`` events are waiting, so the queue stays within ``max_queue`` plus one slice.
Lifecycle events (``session_completed``, ``cleanup_completed``) are never refused. Each hook
call that returns a coroutine is bounded by ``hook_timeout`` (cancelled, logged and counted in
``hook_errors`` past it), so a hung hook delays the queue by at most that much per event.
``stop()`` waits ``shutdown_timeout`` for the queue to drain; what is still queued then is
logged and counted in :attr:`HookEvents.lost` (``wa_sessions_events_lost_total``), except
events with an ``on_delivered`` callback (the Redis store's ``session_completed``): their source
keeps them until that callback runs, after the hooks, so they are delivered again instead.
Delivery is at least once per process lifetime (across processes for those); each event carries
an ``event_id`` so a hook can be idempotent.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import deque
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

import pluggy

from plugin.core.durations import format_duration
from plugin.core.model import CleanupReport, MessageExpired, SessionSummary, StatusChange
from plugin.hooks.delivery import notify_delivered, notify_when_finished

if TYPE_CHECKING:
    from plugin.stores.base import Store

__all__ = ["HookEvents", "call_hook"]

log = logging.getLogger("plugin.hooks.events")

DEFAULT_HOOK_TIMEOUT = 10.0
DEFAULT_SHUTDOWN_TIMEOUT = 10.0


def _arguments(impl: pluggy.HookImpl, kwargs: dict[str, Any]) -> dict[str, Any]:
    """What ``impl`` accepts of ``kwargs`` (pluggy lets an implementation take a subset)."""
    if len(impl.argnames) == len(kwargs):  # the usual case: it takes them all
        return kwargs
    return {name: kwargs[name] for name in impl.argnames if name in kwargs}


def _report(name: str, impl: pluggy.HookImpl) -> None:
    log.exception("hook %s of plugin %r failed", name, impl.plugin_name)


def _report_timeout(name: str, impl: pluggy.HookImpl, timeout: float | None) -> None:
    log.error(
        "hook %s of plugin %r did not finish within hook_timeout (%s): cancelled",
        name,
        impl.plugin_name,
        "none" if timeout is None else format_duration(timeout),
    )


async def _bounded(awaitable: Any, timeout: float | None) -> None:
    async with asyncio.timeout(timeout):
        await awaitable


async def call_hook(
    pm: pluggy.PluginManager,
    name: str,
    kwargs: dict[str, Any],
    on_error: Callable[[], None] | None = None,
    timeout: float | None = None,
) -> int:
    """Call every implementation of hook ``name`` (last registered first), awaiting coroutines
    (each for at most ``timeout`` seconds). Returns how many failed; ``on_error()`` is called
    once per failure."""
    errors = 0
    for impl in reversed(getattr(pm.hook, name).get_hookimpls()):
        try:
            result = impl.function(**_arguments(impl, kwargs))
            if result is not None and inspect.isawaitable(result):
                await _bounded(result, timeout)
        except TimeoutError:
            _report_timeout(name, impl, timeout)
        except Exception:
            _report(name, impl)
        else:
            continue
        errors += 1
        if on_error is not None:
            on_error()
    return errors


class HookEvents:
    """The manager's event sink, backed by a pluggy plugin manager."""

    def __init__(
        self,
        pm: pluggy.PluginManager,
        manager: Store | None = None,
        max_queue: int = 10_000,
        *,
        hook_timeout: float | None = DEFAULT_HOOK_TIMEOUT,
        shutdown_timeout: float | None = DEFAULT_SHUTDOWN_TIMEOUT,
    ) -> None:
        self.pm = pm
        self.manager = manager
        self.max_queue = max(1, max_queue)
        self.hook_timeout = hook_timeout
        self.shutdown_timeout = shutdown_timeout
        self.lost = 0  # events still queued when stop() gave up (shutdown_timeout)
        self.delivered = 0  # events dispatched by the background task
        self.peak = 0  # most events ever waiting at once
        self.waits = 0  # times a producer waited for room
        # (hook name, payload, on_delivered: called once the hooks ran, or None)
        self._queue: deque[tuple[str, Any, Callable[[], None] | None]] = deque()
        self._wakeup: asyncio.Event | None = None  # set when the queue gets an event
        self._drained: asyncio.Event | None = None  # set when the queue is empty and idle
        self._room: asyncio.Event | None = None  # set while fewer than max_queue wait
        self._low: asyncio.Event | None = None  # set while fewer than half of max_queue wait
        self._task: asyncio.Task[None] | None = None
        self._in_flight = False
        self._in_flight_kept = False  # the event in flight stays pending at its source
        self._background: set[asyncio.Task[None]] = set()  # coroutines run without the task
        # hook name -> (plugin-manager generation, [(implementation, takes the payload)])
        self._listeners: dict[str, tuple[int, list[tuple[pluggy.HookImpl, bool]]]] = {}

    # -- what the manager calls -----------------------------------------------------------------

    def status_changed(self, change: StatusChange) -> None:
        self._emit("whatsapp_status_changed", change)

    def message_expired(self, expired: MessageExpired) -> None:
        self._emit("whatsapp_message_expired", expired)

    def session_completed(
        self, summary: SessionSummary, *, on_delivered: Callable[[], None] | None = None
    ) -> None:
        """Queue (or dispatch) ``session_completed``; ``on_delivered()`` once every hook ran
        for it, including coroutine hooks run in the background (never for an event dropped
        at shutdown: the Redis store then leaves it pending in its Stream)."""
        self._emit("whatsapp_session_completed", summary, on_delivered)

    def cleanup_completed(self, report: CleanupReport) -> None:
        self._emit("whatsapp_cleanup_completed", report)

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

    # -- backpressure ---------------------------------------------------------------------------

    @property
    def backlog(self) -> int:
        """Events waiting for the background task."""
        return len(self._queue)

    @property
    def full(self) -> bool:
        """Whether producers should wait (``await room()``) before their next slice of work."""
        return len(self._queue) >= self.max_queue and self._task is not None

    async def room(self) -> None:
        """Return once fewer than ``max_queue`` events wait (at once when not queueing)."""
        while self.full:
            assert self._room is not None
            self.waits += 1
            if self.waits == 1 or self.waits % 1000 == 0:
                log.warning(
                    "event queue full (%d events): producers wait for the hook "
                    "subscribers (%d waits so far)",
                    self.max_queue,
                    self.waits,
                )
            self._room.clear()
            await self._room.wait()

    async def room_for_background(self) -> None:
        """Return once fewer than half of ``max_queue`` events wait: background work (the
        expiry drain) leaves the other half to the receive path, so that a burst's events
        do not hold back the webhooks."""
        while self._task is not None and len(self._queue) >= max(1, self.max_queue // 2):
            assert self._low is not None
            self._low.clear()
            await self._low.wait()

    # -- dispatch -------------------------------------------------------------------------------

    def _on_error(self) -> None:
        if self.manager is not None:
            self.manager.record_hook_error()

    def _emit(self, name: str, payload: Any, done: Callable[[], None] | None = None) -> None:
        if self._task is None:
            self._dispatch_now(name, payload, done)
            return
        queue = self._queue
        queue.append((name, payload, done))
        waiting = len(queue)
        if waiting > self.peak:
            self.peak = waiting
        if waiting == 1:
            assert self._wakeup is not None and self._drained is not None
            self._wakeup.set()
            self._drained.clear()

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

    async def _dispatch(self, name: str, payload: Any) -> None:
        """Every implementation of ``name`` on its own: coroutines bounded by hook_timeout."""
        for impl, takes_payload in self._implementations(name):
            try:
                result = impl.function(payload) if takes_payload else impl.function()
                if result is not None and inspect.isawaitable(result):
                    async with asyncio.timeout(self.hook_timeout):
                        await result
                continue
            except TimeoutError:
                _report_timeout(name, impl, self.hook_timeout)
            except Exception:
                _report(name, impl)
            self._on_error()

    def _dispatch_now(
        self, name: str, payload: Any, done: Callable[[], None] | None = None
    ) -> None:
        running: list[asyncio.Task[None]] = []
        for impl, takes_payload in self._implementations(name):
            try:
                result = impl.function(payload) if takes_payload else impl.function()
                if result is not None and inspect.isawaitable(result):
                    task = self._run_coroutine(name, impl, result)
                    if task is not None:
                        running.append(task)
            except Exception:
                _report(name, impl)
                self._on_error()
        if done is not None:
            notify_when_finished(running, done)

    def _run_coroutine(
        self, name: str, impl: pluggy.HookImpl, awaitable: Any
    ) -> asyncio.Task[None] | None:
        bounded = self._guarded(name, impl, awaitable)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            asyncio.run(bounded)
            return None
        # Inside a loop but without the dispatcher task: run it in the background, kept (so it
        # is neither collected mid-flight nor forgotten at flush()), still isolated and counted.
        task = loop.create_task(bounded)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    def _guarded(
        self, name: str, impl: pluggy.HookImpl, awaitable: Any
    ) -> Coroutine[Any, Any, None]:
        async def guarded() -> None:
            try:
                await _bounded(awaitable, self.hook_timeout)
            except TimeoutError:
                _report_timeout(name, impl, self.hook_timeout)
                self._on_error()
            except Exception:
                _report(name, impl)
                self._on_error()

        return guarded()

    async def start(self) -> None:
        """Queue events from now on and dispatch them from a background task."""
        if self._task is not None:
            return
        self._wakeup = asyncio.Event()
        self._drained = asyncio.Event()
        self._room = asyncio.Event()
        self._low = asyncio.Event()
        if self._queue:
            self._wakeup.set()
        else:
            self._drained.set()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="whatsapp-events")

    async def _run(self) -> None:
        assert self._wakeup is not None and self._drained is not None
        assert self._room is not None and self._low is not None
        queue, room, low = self._queue, self._room, self._low
        half = max(1, self.max_queue // 2)
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while queue:
                name, payload, done = queue.popleft()
                waiting = len(queue)
                if waiting < self.max_queue and not room.is_set():
                    room.set()  # wakes the producers waiting in room()
                if waiting < half and not low.is_set():
                    low.set()  # and those in room_for_background()
                self._in_flight, self._in_flight_kept = True, done is not None
                await self._dispatch(name, payload)
                self._in_flight = False
                self.delivered += 1
                if done is not None:
                    notify_delivered(done)
            self._drained.set()

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued event has been dispatched and every background hook call
        has finished, for at most ``timeout`` seconds (None: no limit). True if they all were."""
        try:
            async with asyncio.timeout(timeout):
                while self._queue or self._in_flight or self._background:
                    if self._background:
                        await asyncio.wait(set(self._background))
                    elif self._task is not None:
                        assert self._drained is not None
                        await self._drained.wait()
                    else:  # not started: nothing will drain the queue
                        return False
        except TimeoutError:
            return False
        return True

    async def stop(self, timeout: float | None = None) -> None:
        """Deliver what is queued (for at most ``timeout``, default ``shutdown_timeout``), then
        stop the background task; later events are dispatched at once. Events still queued
        then are lost: logged and counted in :attr:`lost`."""
        timeout = self.shutdown_timeout if timeout is None else timeout
        await self.flush(timeout)
        # Queued events with an on_delivered callback stay pending at their source (the Redis
        # Stream), which delivers them again: they are not lost.
        kept = sum(1 for _, _, done in self._queue if done is not None)
        kept += int(self._in_flight and self._in_flight_kept)
        lost = len(self._queue) + int(self._in_flight) + len(self._background) - kept
        for task in list(self._background):
            task.cancel()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        self._in_flight = False
        for event in (self._room, self._low):
            if event is not None:
                event.set()  # nobody waits for room any longer
        if lost:
            self.lost += lost
            log.error(
                "shutdown_timeout (%s) passed with %d hook events undelivered: %d lost",
                "none" if timeout is None else format_duration(timeout),
                lost,
                lost,
            )
        if kept:
            log.warning(
                "shutdown_timeout passed with %d session_completed event(s) from the Redis "
                "Stream undelivered: they stay pending there and another replica claims them",
                kept,
            )
        self._queue.clear()
