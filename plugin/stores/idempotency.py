"""Idempotent sends: the ledger of idempotency keys, in memory or in the shared store.

The client asks the ledger of its store (:func:`send_ledger`) before a send with an
``idempotency_key``. The ledger only ever sees a keyed digest of the key (a key may carry patient
data) and keeps, per digest, either a *pending* marker (a send is under way: who claimed it, until
when) or the *record* of the send (the provider's message id and the provider's name, never the
recipient), for ``ack_tracking_window``. Entries are capped (oldest dropped) and expire.

* :meth:`SendLedger.claim` either claims the digest for the caller (it then sends), or answers
  what is there: ``"pending"`` or the :class:`SendRecord`.
* :meth:`SendLedger.complete` stores the record of the claimed send; :meth:`SendLedger.release`
  frees the digest after a failed send so that a retry can send.
* :meth:`SendLedger.lookup` is how a caller waiting on another's pending send polls.

Every store has one (``store.send_ledger()``, part of the ``Store`` protocol): the in-memory
store a :class:`MemorySendLedger` (one process), the Redis store
:class:`~plugin.stores.redis.idempotency.RedisSendLedger` (every replica). Every method may raise
:class:`~plugin.core.errors.StoreUnavailable`.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol, TypeAlias

__all__ = [
    "DEFAULT_CAPACITY",
    "Claim",
    "MemorySendLedger",
    "SendLedger",
    "SendRecord",
    "key_digest",
]

#: Most idempotency entries a ledger keeps (oldest dropped over it).
DEFAULT_CAPACITY = 10_000


@dataclass(frozen=True, slots=True)
class SendRecord:
    """What a ledger keeps of a send: enough to answer a duplicate, no recipient."""

    message_id: str
    provider: str


#: ``"claimed"`` (the caller sends), ``"pending"`` (another caller is sending) or the record.
Claim: TypeAlias = Literal["claimed", "pending"] | SendRecord


def key_digest(key: str, secret: bytes = b"") -> str:
    """The name a ledger files ``key`` under: a keyed BLAKE2b digest (hex, 128 bits)."""
    data = key.encode("utf-8", "surrogatepass")
    digest = hashlib.blake2b(data, digest_size=16, key=secret[:64], person=b"wa-idempotency")
    return digest.hexdigest()


class SendLedger(Protocol):
    """The idempotency capability of a store."""

    @property
    def window(self) -> float:
        """How long (seconds) a completed send answers duplicates."""

    def digest(self, key: str) -> str:
        """The digest this ledger files ``key`` under."""

    async def claim(self, digest: str, token: str, pending_ttl: float) -> Claim:
        """Claim ``digest`` for the caller (``token``) for ``pending_ttl`` seconds, unless an
        entry is there: then answer it."""

    async def lookup(self, digest: str) -> Literal["pending"] | SendRecord | None:
        """What is filed under ``digest`` (None: nothing, e.g. released or expired)."""

    async def complete(self, digest: str, token: str, record: SendRecord) -> None:
        """File the record of the send claimed by ``token`` for :attr:`window` seconds."""

    async def release(self, digest: str, token: str) -> None:
        """Free ``digest`` if ``token`` still holds it (its send failed)."""


@dataclass(slots=True)
class _Entry:
    expires_at: float
    token: str  # the claimer's, while pending
    record: SendRecord | None = None


class MemorySendLedger:
    """The ledger of one process: an ordered dict of digests, capped, entries expiring."""

    def __init__(
        self,
        window: float,
        *,
        secret: bytes = b"",
        capacity: int = DEFAULT_CAPACITY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._window = float(window)
        self._secret = secret or os.urandom(16)
        self.capacity = capacity
        self.dropped = 0  # entries dropped over the cap before they expired
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()

    @property
    def window(self) -> float:
        return self._window

    def __len__(self) -> int:
        return len(self._entries)

    def digest(self, key: str) -> str:
        return key_digest(key, self._secret)

    def _live(self, digest: str, now: float) -> _Entry | None:
        # Expired entries at the front go first (amortised); any other one when it is looked at.
        entries = self._entries
        while entries:
            first = next(iter(entries.values()))
            if first.expires_at > now:
                break
            entries.popitem(last=False)
        entry = entries.get(digest)
        if entry is not None and entry.expires_at <= now:
            del entries[digest]
            return None
        return entry

    def _put(self, digest: str, entry: _Entry) -> None:
        self._entries[digest] = entry
        self._entries.move_to_end(digest)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)
            self.dropped += 1

    async def claim(self, digest: str, token: str, pending_ttl: float) -> Claim:
        now = self._clock()
        entry = self._live(digest, now)
        if entry is not None:
            return entry.record if entry.record is not None else "pending"
        self._put(digest, _Entry(now + pending_ttl, token))
        return "claimed"

    async def lookup(self, digest: str) -> Literal["pending"] | SendRecord | None:
        entry = self._live(digest, self._clock())
        if entry is None:
            return None
        return entry.record if entry.record is not None else "pending"

    async def complete(self, digest: str, token: str, record: SendRecord) -> None:
        entry = self._live(digest, self._clock())
        if entry is None or (entry.record is None and entry.token == token):
            self._put(digest, _Entry(self._clock() + self._window, token, record))

    async def release(self, digest: str, token: str) -> None:
        entry = self._entries.get(digest)
        if entry is not None and entry.record is None and entry.token == token:
            del self._entries[digest]
