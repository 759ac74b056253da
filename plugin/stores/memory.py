"""The in-memory store: the pure manager behind the :class:`~plugin.stores.base.Store` protocol,
made durable by snapshots when ``state_file`` is set (restored when the store is built, saved
every ``snapshot_interval`` and when it closes)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from plugin.core.emitter import EventSink
from plugin.core.manager import MessageSessionManager
from plugin.core.model import CleanupReport, Outcome, Receipt
from plugin.core.options import ManagerOptions
from plugin.stores.idempotency import MemorySendLedger
from plugin.stores.snapshot import load_snapshot, save_snapshot, save_snapshot_async

__all__ = ["MemoryStore"]

log = logging.getLogger("plugin.stores.memory")


class MemoryStore:
    """A :class:`MessageSessionManager` as a store. ``manager`` stays reachable for in-process
    use; ``restored`` is the extra state the snapshot carried (the server's counters)."""

    def __init__(
        self,
        manager: MessageSessionManager,
        *,
        state_file: str | None = None,
        snapshot_interval: float = 60.0,
        restored: dict[str, Any] | None = None,
    ) -> None:
        self.manager = manager
        self.state_file = state_file
        self.snapshot_interval = snapshot_interval
        self.restored = restored or {}
        #: What the server saves beside the manager's state (its webhook counters).
        self.extra_state: Callable[[], dict[str, Any]] = dict
        self._send_ledger: MemorySendLedger | None = None
        self._wake: asyncio.Event | None = None  # set when a call left due releases

    @classmethod
    def from_settings(cls, settings: Any, clock: Callable[[], float] = time.time) -> MemoryStore:
        state_file = getattr(settings, "state_file", None) or None
        interval = float(getattr(settings, "snapshot_interval", 60.0))
        if state_file:
            options = getattr(settings, "manager", None)
            manager, restored = load_snapshot(state_file, options=options, clock=clock)
            return cls(
                manager, state_file=state_file, snapshot_interval=interval, restored=restored
            )
        return cls(MessageSessionManager.from_settings(settings, clock=clock))

    @classmethod
    def wrapping(cls, manager: MessageSessionManager) -> MemoryStore:
        """The one store of ``manager`` (so every edge handed the manager shares it)."""
        store = _WRAPPED.get(manager)
        if store is None:
            store = _WRAPPED[manager] = cls(manager)
        return store

    # -- what the manager has ---------------------------------------------------------------------

    @property
    def options(self) -> ManagerOptions:
        return self.manager.options

    @property
    def hook_errors(self) -> int:
        return self.manager.hook_errors

    @hook_errors.setter
    def hook_errors(self, value: int) -> None:
        self.manager.hook_errors = value

    def attach_events(
        self, sink: EventSink | None, *, status_changed: bool = True, message_expired: bool = True
    ) -> None:
        self.manager.attach_events(
            sink, status_changed=status_changed, message_expired=message_expired
        )

    # -- bounded expiry ---------------------------------------------------------------------------

    async def drain(self) -> None:
        """Apply every release due now (expiries, completions), one slice at a time: between
        slices the loop runs, and the next slice waits for room in the event queue when the
        sink applies backpressure (``HookEvents.room_for_background``): no event is dropped."""
        # The manager's sink, however it was attached (through this store or directly). The
        # drain waits for half the queue to be free: the other half is the receive path's.
        while True:
            await self.manager.room_for_background()  # the queue holds one slice more at most
            if not self.manager.settle_slice():
                return
            await asyncio.sleep(0)

    async def _drainer(self) -> None:
        # Woken by a call that left a backlog; otherwise looks once a second (completions and
        # expiries become due with no traffic too).
        self._wake = wake = asyncio.Event()  # of this loop: a store may outlive one
        self.manager.background_drain = True  # calls leave a backlog to this task
        try:
            while True:
                try:
                    await self.drain()
                except Exception:
                    log.exception("expiry drain failed")
                wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), 1.0)
        finally:
            self.manager.background_drain = False
            self._wake = None

    def _left_work(self) -> None:
        if self._wake is not None and self.manager.backlogged:
            self._wake.set()

    def record_hook_error(self) -> None:
        self.manager.record_hook_error()

    def redact(self, recipient: str | None) -> str | None:
        return self.manager.redact(recipient)

    def fault_counters(self) -> dict[str, int]:
        """No backend to lose: the state is this process's own."""
        return {"data_lost": 0}

    def memory_bound_bytes(self) -> int:
        ledger = self._send_ledger  # once idempotent sends are used
        return self.manager.memory_bound_bytes() + (
            ledger.memory_bound_bytes() if ledger is not None else 0
        )

    def send_ledger(self) -> MemorySendLedger:
        """The ledger of idempotent sends, in this process (keyed with ``redaction_key``)."""
        if self._send_ledger is None:
            options = self.manager.options
            self._send_ledger = MemorySendLedger(
                options.ack_tracking_window, secret=options.redaction_key.encode()
            )
        return self._send_ledger

    # -- lifecycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        return None

    def background(self) -> list[Coroutine[Any, Any, None]]:
        return [self._drainer(), *([self._snapshots()] if self.state_file else [])]

    async def _snapshots(self) -> None:
        # A crash loses at most what happened since the last of these.
        assert self.state_file
        while True:
            await asyncio.sleep(self.snapshot_interval)
            try:
                await save_snapshot_async(self.manager, self.state_file, self.extra_state())
            except Exception:
                log.exception("snapshot to %s failed", self.state_file)

    async def close(self) -> None:
        if self.state_file:
            try:
                save_snapshot(self.manager, self.state_file, self.extra_state())
            except Exception:
                log.exception("final snapshot to %s failed", self.state_file)

    async def ready(self) -> bool:
        return True

    # -- the state --------------------------------------------------------------------------------

    async def track_sent(
        self,
        message_id: str,
        recipient: str | None = None,
        sent_at: float | None = None,
        *,
        tag: str | None = None,
    ) -> bool:
        tracked = self.manager.track_sent(message_id, recipient, sent_at, tag=tag)
        self._left_work()
        return tracked

    async def apply_receipt(self, receipt: Receipt) -> Outcome:
        outcome = self.manager.apply_receipt(receipt)
        self._left_work()
        return outcome

    async def apply_receipts(self, receipts: Sequence[Receipt]) -> list[Outcome]:
        apply = self.manager.apply_receipt
        outcomes: list[Outcome] = []
        items = iter(receipts)
        while True:
            try:
                for receipt in items:
                    outcomes.append(apply(receipt))
                self._left_work()
                return outcomes
            except Exception:  # one receipt never takes its batch down
                log.exception("applying a receipt failed")
                self.manager.record_hook_error()

    # The views and cleanup drain what is due in slices first, so that the synchronous call
    # that settles the rest and reports is short.

    async def cleanup(self, now: float | None = None) -> CleanupReport | None:
        if now is None:
            await self.drain()
        return self.manager.cleanup(now)

    async def get_all_stats(self) -> dict[str, Any]:
        await self.drain()
        return self.manager.get_all_stats()

    async def get_debug_info(self) -> dict[str, Any]:
        await self.drain()
        return self.manager.get_debug_info()


#: The store of each manager handed to an edge, so that they all share one.
_WRAPPED: weakref.WeakKeyDictionary[MessageSessionManager, MemoryStore] = (
    weakref.WeakKeyDictionary()
)
