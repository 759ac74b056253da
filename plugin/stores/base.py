"""The ``Store`` protocol: the whole contract between the edges (server, client, hooks, CLI) and
the state. Both stores implement it: :class:`~plugin.stores.memory.MemoryStore` (the in-memory
manager, made durable by snapshots) and :class:`~plugin.stores.redis.store.RedisStore` (shared by
replicas). Every method that touches the state is a coroutine, so the edges never ask which store
they hold; a store that cannot answer raises :class:`~plugin.core.errors.StoreUnavailable`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Protocol, runtime_checkable

from plugin.core.emitter import EventSink
from plugin.core.manager import MessageSessionManager
from plugin.core.model import CleanupReport, Outcome, Receipt
from plugin.core.options import ManagerOptions
from plugin.stores.idempotency import SendLedger

__all__ = ["Store", "as_store", "build_store"]

#: Extra state a durable store saves with its own (the server's webhook counters).
ExtraState = Callable[[], dict[str, Any]]


@runtime_checkable
class Store(Protocol):
    """What ``settings.store`` selects: ``"memory"`` or ``"redis"``."""

    @property
    def options(self) -> ManagerOptions:
        """The manager options the store applies."""

    @property
    def hook_errors(self) -> int:
        """Failed hook and middleware calls since start."""

    def attach_events(
        self, sink: EventSink | None, *, status_changed: bool = True, message_expired: bool = True
    ) -> None:
        """Send the store's events to ``sink`` (the hook system)."""

    def record_hook_error(self) -> None:
        """Count one failed hook or middleware call."""

    def redact(self, recipient: str | None) -> str | None:
        """The keyed hash that logs and events carry instead of a phone number."""

    def memory_bound_bytes(self) -> int:
        """An upper bound of what this process holds for the store."""

    def fault_counters(self) -> dict[str, int]:
        """Store faults this process saw, for the metrics: ``data_lost`` (times the backend
        was found to have lost its data)."""

    async def start(self) -> None:
        """Connect (StoreUnavailable when the backend does not answer)."""

    def background(self) -> list[Coroutine[Any, Any, None]]:
        """Coroutines the application runs while it serves (e.g. periodic snapshots)."""

    async def close(self) -> None:
        """Save what must survive a restart, then release connections."""

    async def ready(self) -> bool:
        """True when the store answers (``GET /readyz``)."""

    async def track_sent(
        self,
        message_id: str,
        recipient: str | None = None,
        sent_at: float | None = None,
        *,
        tag: str | None = None,
    ) -> bool:
        """Start tracking a sent message (``tag``: for the per-tag funnels)."""

    async def apply_receipt(self, receipt: Receipt) -> Outcome:
        """Apply one receipt; its one outcome."""

    async def apply_receipts(self, receipts: Sequence[Receipt]) -> list[Outcome]:
        """Apply a webhook's receipts in order; one outcome each."""

    async def cleanup(self, now: float | None = None) -> CleanupReport | None:
        """Periodic cleanup (None: another replica is doing it)."""

    async def get_all_stats(self) -> dict[str, Any]:
        """``get_all_stats()`` of DESIGN.md."""

    async def get_debug_info(self) -> dict[str, Any]:
        """``get_debug_info()`` of DESIGN.md."""

    def send_ledger(self) -> SendLedger:
        """The ledger of idempotent sends (:mod:`plugin.stores.idempotency`): shared by every
        client of this store, and by every replica when the store is shared."""


def build_store(settings: Any, clock: Callable[[], float] | None = None) -> Store:
    """The store ``settings.store`` names, built from the settings (not yet started). The
    in-memory store restores ``state_file`` here, so the restored manager is the one plugins
    see from the start."""
    from plugin.stores.memory import MemoryStore

    if getattr(settings, "store", "memory") == "redis":
        from plugin.stores.redis.store import RedisStore

        return RedisStore.from_settings(settings, clock=clock or time.time)
    return MemoryStore.from_settings(settings, clock=clock or time.time)


def as_store(value: Store | MessageSessionManager) -> Store:
    """``value`` as a :class:`Store`: an in-memory manager (what a host app or a test may pass)
    is wrapped once in a :class:`~plugin.stores.memory.MemoryStore`."""
    from plugin.stores.memory import MemoryStore

    if isinstance(value, MessageSessionManager):
        return MemoryStore.wrapping(value)
    return value
