"""The send path's bounded helpers on their own: the in-memory idempotency ledger (digests,
capped, expiring) and the queue of writes deferred while the store is away (capped, retried
with backoff, everything counted)."""

from __future__ import annotations

import asyncio
import tracemalloc

import pytest

from plugin.core.errors import StoreUnavailable
from plugin.core.manager import MessageSessionManager
from plugin.stores.deferred import DeferredWrites, deferred_writes
from plugin.stores.idempotency import (
    ENTRY_BOUND_BYTES,
    MemorySendLedger,
    SendRecord,
    key_digest,
)
from plugin.stores.memory import MemoryStore
from tests.serving import Clock


def test_keys_are_filed_under_keyed_digests():
    digest = key_digest("reminder:+16505551234:2026-12-01", b"secret")
    assert len(digest) == 32 and "1650555" not in digest
    assert digest == key_digest("reminder:+16505551234:2026-12-01", b"secret")
    assert digest != key_digest("reminder:+16505551234:2026-12-01", b"other")
    assert key_digest("\ud800") != key_digest("")  # any str, lone surrogates included


async def test_the_memory_ledger_claims_records_releases_and_expires():
    clock = Clock(0.0)
    ledger = MemorySendLedger(60.0, secret=b"k", clock=clock)
    digest = ledger.digest("appointment-1")
    assert await ledger.claim(digest, "a", 10.0) == "claimed"
    assert await ledger.claim(digest, "b", 10.0) == "pending"
    await ledger.release(digest, "b")  # not the claimer: nothing happens
    assert await ledger.lookup(digest) == "pending"
    await ledger.release(digest, "a")
    assert await ledger.lookup(digest) is None
    assert await ledger.claim(digest, "b", 10.0) == "claimed"
    clock.advance(11.0)  # the claimer died: its claim expires
    assert await ledger.claim(digest, "c", 10.0) == "claimed"
    record = SendRecord("wamid.1", "meta")
    await ledger.complete(digest, "c", record)
    assert await ledger.claim(digest, "d", 10.0) == record
    clock.advance(59.0)
    assert await ledger.lookup(digest) == record
    clock.advance(1.0)  # one window after the send
    assert await ledger.lookup(digest) is None and len(ledger) == 0


async def test_the_memory_ledger_is_capped_oldest_first():
    ledger = MemorySendLedger(3600.0, capacity=3)
    digests = [ledger.digest(f"appointment-{i}") for i in range(5)]
    for index, digest in enumerate(digests):
        assert await ledger.claim(digest, "t", 10.0) == "claimed"
        await ledger.complete(digest, "t", SendRecord(f"wamid.{index}", "meta"))
    assert len(ledger) == 3 and ledger.dropped == 2
    assert [await ledger.lookup(d) for d in digests[:2]] == [None, None]
    assert await ledger.lookup(digests[4]) == SendRecord("wamid.4", "meta")


def test_one_memory_ledger_and_one_deferred_queue_per_store():
    first, second = (MemoryStore(MessageSessionManager()) for _ in range(2))
    assert first.send_ledger() is first.send_ledger()
    assert first.send_ledger() is not second.send_ledger()
    assert first.send_ledger().window == first.options.ack_tracking_window
    assert deferred_writes(first) is deferred_writes(first)
    assert deferred_writes(first) is not deferred_writes(second)


class FlakyStore:
    """Writes that fail with StoreUnavailable while ``up`` is False."""

    def __init__(self) -> None:
        self.up = False
        self.attempts = 0
        self.written: list[int] = []

    def write(self, value: int):
        async def run() -> None:
            self.attempts += 1
            if not self.up:
                raise StoreUnavailable("down")
            self.written.append(value)

        return run


async def test_deferred_writes_are_retried_in_order_once_the_store_is_back():
    store = FlakyStore()
    writes = DeferredWrites(first_delay=0.01, max_delay=0.04)
    for value in range(3):
        writes.defer("track", f"message {value}", store.write(value))
    await asyncio.sleep(0.2)
    assert writes.pending == 3 and store.written == []
    # Backoff: 0.01, 0.02, 0.04, 0.04… seconds: a handful of attempts, not hundreds.
    assert 3 <= store.attempts <= 12
    store.up = True
    for _ in range(100):
        if not writes.pending:
            break
        await asyncio.sleep(0.01)
    assert store.written == [0, 1, 2]
    assert (writes.deferred["track"], writes.recovered["track"], writes.dropped["track"]) == (
        3,
        3,
        0,
    )


async def test_deferred_writes_are_capped_and_what_overflows_is_counted(caplog):
    store = FlakyStore()
    writes = DeferredWrites(capacity=2, first_delay=10.0)
    for value in range(5):
        writes.defer("track", f"message {value}", store.write(value))
    assert writes.pending == 2 and writes.dropped["track"] == 3
    assert "deferred track of message 0 dropped" in caplog.text
    store.up = True
    assert await writes.flush() == 0
    assert store.written == [3, 4]
    writes.defer("idempotency", "message 5", store.write(5))
    store.up = False
    writes.defer("track", "message 6", store.write(6))
    await writes.close()  # the store is still away: what waits is lost, and counted
    assert writes.pending == 0
    assert writes.dropped == {"track": 4, "idempotency": 1}


async def test_a_deferred_write_failing_otherwise_is_dropped_not_retried():
    writes = DeferredWrites(first_delay=0.01)
    attempts = []

    async def broken() -> None:
        attempts.append(1)
        raise ValueError("not a valid message id")

    writes.defer("track", "message x", broken)
    await asyncio.sleep(0.05)
    assert attempts == [1] and writes.pending == 0 and writes.dropped["track"] == 1


def test_a_deferred_queue_needs_room():
    with pytest.raises(ValueError):
        DeferredWrites(capacity=0)
    with pytest.raises(ValueError):
        MemorySendLedger(1.0, capacity=0)


async def test_the_memory_ledger_stays_under_its_bound_at_the_cap():
    ledger = MemorySendLedger(86400.0, capacity=2_000)
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        for index in range(5_000):  # past the cap: the oldest go
            digest = ledger.digest(f"reminder:appointment-{index}")
            await ledger.claim(digest, "0123456789abcdef", 70.0)
            await ledger.complete(
                digest, "0123456789abcdef", SendRecord(f"{index:0128d}", "meta")
            )  # the longest ids
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    held = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    assert len(ledger) == 2_000
    assert held <= ledger.memory_bound_bytes() == 2_000 * ENTRY_BOUND_BYTES
    store = MemoryStore(MessageSessionManager())
    without = store.memory_bound_bytes()
    store.send_ledger()
    assert store.memory_bound_bytes() == without + 10_000 * ENTRY_BOUND_BYTES
