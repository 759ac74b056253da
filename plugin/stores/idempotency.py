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
    "ENTRY_BOUND_BYTES",
    "Claim",
    "MemorySendLedger",
    "SendLedger",
    "SendRecord",
    "key_digest",
]

#: Most idempotency entries a ledger keeps (oldest dropped over it).
DEFAULT_CAPACITY = 10_000
#: Bytes one entry of :class:`MemorySendLedger` may take, a message id of the longest accepted
#: length (128) included: measured 431 with tracemalloc, table overallocation included.
ENTRY_BOUND_BYTES = 512


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


#: One entry: (expires_at, the claimer's token, None) while pending, then (expires_at, message
#: id, provider). Tuples under 16-byte keys: about 300 bytes an entry plus the message id.
_Entry: TypeAlias = tuple[float, str, str | None]


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
        self._entries: OrderedDict[bytes, _Entry] = OrderedDict()

    @property
    def window(self) -> float:
        return self._window

    def __len__(self) -> int:
        return len(self._entries)

    def memory_bound_bytes(self) -> int:
        """An upper bound of what the ledger holds at its cap."""
        return self.capacity * ENTRY_BOUND_BYTES

    def digest(self, key: str) -> str:
        return key_digest(key, self._secret)

    def _live(self, name: bytes, now: float) -> _Entry | None:
        # Expired entries at the front go first (amortised); any other one when it is looked at.
        entries = self._entries
        while entries:
            first = next(iter(entries.values()))
            if first[0] > now:
                break
            entries.popitem(last=False)
        entry = entries.get(name)
        if entry is not None and entry[0] <= now:
            del entries[name]
            return None
        return entry

    def _put(self, name: bytes, entry: _Entry) -> None:
        self._entries[name] = entry
        self._entries.move_to_end(name)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)
            self.dropped += 1

    @staticmethod
    def _answer(entry: _Entry) -> Literal["pending"] | SendRecord:
        _, message_id, provider = entry
        return "pending" if provider is None else SendRecord(message_id, provider)

    async def claim(self, digest: str, token: str, pending_ttl: float) -> Claim:
        name, now = bytes.fromhex(digest), self._clock()
        entry = self._live(name, now)
        if entry is not None:
            return self._answer(entry)
        self._put(name, (now + pending_ttl, token, None))
        return "claimed"

    async def lookup(self, digest: str) -> Literal["pending"] | SendRecord | None:
        entry = self._live(bytes.fromhex(digest), self._clock())
        return None if entry is None else self._answer(entry)

    async def complete(self, digest: str, token: str, record: SendRecord) -> None:
        name, now = bytes.fromhex(digest), self._clock()
        entry = self._live(name, now)
        if entry is None or (entry[2] is None and entry[1] == token):
            self._put(name, (now + self._window, record.message_id, record.provider))

    async def release(self, digest: str, token: str) -> None:
        name = bytes.fromhex(digest)
        entry = self._entries.get(name)
        if entry is not None and entry[2] is None and entry[1] == token:
            del self._entries[name]
