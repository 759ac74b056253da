"""One semantics suite for both stores (DESIGN.md, "Manager semantics"), through the public API
only, so the in-memory manager and the Redis store cannot drift apart.

Each test gets ``make_store(**options)``, an async factory of stores whose methods are awaited:
the in-memory manager behind an async adapter, or a RedisStore on the real Redis server with a
key prefix of its own. Time is the injected clock.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from plugin.core.manager import MessageSessionManager
from plugin.core.model import (
    COUNTER_KEYS,
    OUTCOME_KEYS,
    CleanupReport,
    Outcome,
    Receipt,
    ReceiptError,
    Status,
)
from plugin.stores.redis.store import RedisStore
from tests.clock import Clock, at
from tests.redis_support import delete_prefix, new_prefix, require_redis
from tests.test_manager import Events

HOUR = 3600.0
DAY = 86400.0
MONDAY = at("2026-11-30T00:00")
PHONE = "16505551234"
Q, S, D, R, P, F = (
    Status.QUEUED,
    Status.SENT,
    Status.DELIVERED,
    Status.READ,
    Status.PLAYED,
    Status.FAILED,
)


class MemoryStore:
    """The in-memory manager behind the store's async interface."""

    def __init__(self, manager: MessageSessionManager) -> None:
        self.manager = manager
        self.options = manager.options

    async def track_sent(
        self, message_id: str, recipient: str | None = None, sent_at: float | None = None
    ) -> bool:
        return self.manager.track_sent(message_id, recipient, sent_at)

    async def apply_receipt(self, receipt: Receipt) -> Outcome:
        return self.manager.apply_receipt(receipt)

    async def apply_receipts(self, receipts: list[Receipt]) -> list[Outcome]:
        return [self.manager.apply_receipt(r) for r in receipts]

    async def cleanup(self, now: float | None = None) -> CleanupReport | None:
        return self.manager.cleanup(now)

    async def get_all_stats(self) -> dict[str, Any]:
        return self.manager.get_all_stats()

    async def get_debug_info(self) -> dict[str, Any]:
        return self.manager.get_debug_info()

    def redact(self, recipient: str | None) -> str | None:
        return self.manager.redact(recipient)

    async def close(self) -> None:
        return None


Factory = Callable[..., Awaitable[Any]]


@pytest.fixture
def clock() -> Clock:
    return Clock(MONDAY + 10 * HOUR)


@pytest.fixture
def events() -> Events:
    return Events()


@pytest.fixture(params=["memory", "redis"])
async def make_store(
    request: pytest.FixtureRequest, clock: Clock, events: Events
) -> AsyncIterator[Factory]:
    kind = request.param
    url = require_redis() if kind == "redis" else ""
    prefix = new_prefix(url) if kind == "redis" else ""
    made: list[Any] = []

    async def factory(**options: Any) -> Any:
        options.setdefault("redaction_key", "test-key")
        if kind == "memory":
            store: Any = MemoryStore(MessageSessionManager(clock=clock, events=events, **options))
        else:
            store = RedisStore(url, f"{prefix}-{len(made)}", clock=clock, events=events, **options)
            await store.connect()
        made.append(store)
        return store

    yield factory
    for store in made:
        await store.close()
    if kind == "redis":
        for index in range(len(made)):
            delete_prefix(url, f"{prefix}-{index}")


async def one_session(store: Any, session_id: str | None = None) -> dict[str, Any]:
    sessions = (await store.get_all_stats())["sessions"]
    if session_id is None:
        (entry,) = sessions
        return dict(entry)
    (entry,) = [s for s in sessions if s["session_id"] == session_id]
    return dict(entry)


def funnel(entry: dict[str, Any]) -> dict[str, int]:
    return {key: entry[key] for key in COUNTER_KEYS}


def identity_holds(entry: dict[str, Any]) -> bool:
    return bool(
        entry["sent"]
        == entry["delivered"]
        + entry["failed"]
        + entry["pending"]
        + entry["expired"]
        + entry["evicted"]
    )


def rcpt(message_id: str, status: Status, timestamp: float | None, **kw: Any) -> Receipt:
    return Receipt(message_id, status, timestamp, **kw)


# -- outcomes and the ladder ------------------------------------------------------------------


async def test_every_receipt_outcome(make_store, clock):
    store = await make_store()
    now = clock()
    assert await store.track_sent("m1", PHONE) is True
    assert await store.track_sent("m1", PHONE) is False
    assert await store.apply_receipt(rcpt("m1", S, now)) == Outcome.APPLIED
    assert await store.apply_receipt(rcpt("m1", S, now)) == Outcome.DUPLICATE
    assert await store.apply_receipt(rcpt("m1", R, now)) == Outcome.APPLIED
    assert await store.apply_receipt(rcpt("m1", D, now)) == Outcome.STALE
    assert await store.apply_receipt(rcpt("m1", P, now - 2 * DAY)) == Outcome.LATE
    assert await store.apply_receipt(rcpt("new", D, now)) == Outcome.ADOPTED
    assert await store.apply_receipt(rcpt("old", D, now - 2 * DAY)) == Outcome.LATE

    stats = await store.get_all_stats()
    assert stats["summary"]["receipts"] == {
        "applied": 2,
        "duplicate": 1,
        "stale": 1,
        "late": 2,
        "unknown": 0,
        "adopted": 1,
    }
    entry = await one_session(store)
    assert funnel(entry) == {
        "sent": 2,
        "delivered": 2,
        "read": 1,
        "played": 0,
        "failed": 0,
        "pending": 0,
        "expired": 0,
        "evicted": 0,
    }


async def test_unknown_receipts_are_not_tracked_when_switched_off(make_store, clock):
    store = await make_store(track_unknown_receipts=False)
    assert await store.apply_receipt(rcpt("stranger", D, clock())) == Outcome.UNKNOWN
    stats = await store.get_all_stats()
    assert stats["summary"]["tracked_messages"] == 0
    assert stats["summary"]["receipts"]["unknown"] == 1


async def test_the_ladder(make_store, clock):
    store = await make_store()
    now = clock()
    for message_id in ("read-first", "failed-then-delivered", "delivered-then-failed", "played"):
        await store.track_sent(message_id)
    # READ implies DELIVERED; a DELIVERED after it is stale
    assert await store.apply_receipt(rcpt("read-first", R, now)) == Outcome.APPLIED
    assert await store.apply_receipt(rcpt("read-first", D, now)) == Outcome.STALE
    # a positive delivery beats FAILED
    assert (
        await store.apply_receipt(
            rcpt("failed-then-delivered", F, now, error=ReceiptError("131026"))
        )
        == Outcome.APPLIED
    )
    assert await store.apply_receipt(rcpt("failed-then-delivered", S, now)) == Outcome.STALE
    assert await store.apply_receipt(rcpt("failed-then-delivered", D, now)) == Outcome.APPLIED
    # FAILED after DELIVERED is stale
    assert await store.apply_receipt(rcpt("delivered-then-failed", D, now)) == Outcome.APPLIED
    assert await store.apply_receipt(rcpt("delivered-then-failed", F, now)) == Outcome.STALE
    assert await store.apply_receipt(rcpt("played", P, now)) == Outcome.APPLIED

    entry = await one_session(store)
    assert funnel(entry) == {
        "sent": 4,
        "delivered": 4,
        "read": 2,
        "played": 1,
        "failed": 0,
        "pending": 0,
        "expired": 0,
        "evicted": 0,
    }
    assert entry["errors"] == {"131026": 1}


async def test_failures_are_counted_with_their_error_codes(make_store, clock):
    store = await make_store()
    for index in range(3):
        await store.track_sent(f"m{index}")
    await store.apply_receipt(rcpt("m0", F, clock(), error=ReceiptError("131026")))
    await store.apply_receipt(rcpt("m1", F, clock(), error=ReceiptError("131026")))
    await store.apply_receipt(rcpt("m2", F, clock()))
    entry = await one_session(store)
    assert (entry["failed"], entry["pending"]) == (3, 0)
    assert entry["errors"] == {"131026": 2, "unknown": 1}


# -- the window, completion, eviction, tombstones -----------------------------------------------


async def test_a_message_never_delivered_within_its_window_expires(make_store, clock, events):
    store = await make_store(ack_tracking_window="1h")
    await store.track_sent("silent", PHONE)
    await store.track_sent("answered", PHONE)
    await store.apply_receipt(rcpt("answered", D, clock()))
    clock.advance(hours=1)
    report = await store.cleanup()
    assert report is not None and report.expired_messages == 1  # pending ones only

    entry = await one_session(store)
    assert (entry["pending"], entry["expired"], entry["delivered"]) == (0, 1, 1)
    assert entry["tracked_messages"] == 0
    assert identity_holds(entry)
    (expired,) = events.expired
    assert (expired.message_id, expired.reason, expired.status) == ("silent", "window", Q)
    assert expired.sent_at == MONDAY + 10 * HOUR


async def test_a_session_completes_once_into_history(make_store, clock, events):
    store = await make_store(ack_tracking_window="2h")
    await store.track_sent("m1")
    await store.track_sent("m2")
    await store.apply_receipt(rcpt("m1", R, clock()))
    clock.set(MONDAY + DAY + HOUR)  # the period is over but its window is not
    assert (await store.cleanup()).completed_sessions == ()
    clock.set(MONDAY + DAY + 2 * HOUR)
    report = await store.cleanup()
    assert report.completed_sessions == ("2026-11-30",)
    assert (await store.cleanup()).completed_sessions == ()

    (summary,) = events.completed
    assert summary.session_id == "2026-11-30"
    assert summary.counters["sent"] == 2 and summary.counters["expired"] == 1
    stats = await store.get_all_stats()
    assert stats["summary"]["active_sessions"] == 0
    (history,) = stats["history"]
    assert history["session_id"] == "2026-11-30"
    assert history["read"] == 1 and history["expired"] == 1
    assert history["completed_at"] == MONDAY + DAY + 2 * HOUR


async def test_completion_happens_on_the_receipt_path_too(make_store, clock, events):
    store = await make_store(ack_tracking_window="1h")
    await store.track_sent("m1")
    clock.set(MONDAY + DAY + 2 * HOUR)
    assert await store.apply_receipt(rcpt("m1", D, clock())) == Outcome.LATE
    assert [s.session_id for s in events.completed] == ["2026-11-30"]


async def test_history_is_bounded(make_store, clock):
    store = await make_store(ack_tracking_window="1h", max_history_size=2)
    for day in range(4):
        clock.set(MONDAY + day * DAY + HOUR)
        await store.track_sent(f"m{day}")
    clock.set(MONDAY + 5 * DAY)
    await store.cleanup()
    stats = await store.get_all_stats()
    assert [h["session_id"] for h in stats["history"]] == ["2026-12-02", "2026-12-03"]
    assert stats["summary"]["historical_sessions"] == 2


async def test_no_history_when_it_is_off(make_store, clock):
    store = await make_store(ack_tracking_window="1h", keep_history=False)
    await store.track_sent("m1")
    clock.advance(days=2)
    await store.cleanup()
    assert (await store.get_all_stats())["history"] == []


async def test_over_the_cap_the_oldest_is_evicted(make_store, clock):
    store = await make_store(max_tracked_messages=3)
    for index in range(3):
        await store.track_sent(f"m{index}")
        clock.advance(1)
    await store.apply_receipt(rcpt("m1", D, clock()))
    await store.track_sent("m3")  # evicts m0, still pending
    await store.track_sent("m4")  # evicts m1, delivered: not counted as evicted
    stats = await store.get_all_stats()
    assert stats["summary"]["tracked_messages"] == 3
    entry = await one_session(store)
    assert (entry["sent"], entry["evicted"], entry["delivered"], entry["pending"]) == (5, 1, 1, 3)
    assert identity_holds(entry)
    assert (await store.get_debug_info())["manager_stats"]["evicted_total"] == 2
    # an evicted message's receipt is late, never adopted anew
    assert await store.apply_receipt(rcpt("m0", D, clock())) == Outcome.LATE


async def test_a_pending_record_evicted_by_the_cap_is_announced_like_an_expiry(
    make_store, clock, events
):
    # DESIGN.md rule 4: a clinic hears that a pending reminder was dropped under overload.
    store = await make_store(max_tracked_messages=2)
    await store.track_sent("m0", PHONE)
    await store.track_sent("m1")
    await store.apply_receipt(rcpt("m1", D, clock()))
    await store.track_sent("m2")  # evicts m0, pending: announced
    await store.track_sent("m3")  # evicts m1, delivered: not announced
    assert [(e.message_id, e.reason, e.status) for e in events.expired] == [("m0", "evicted", Q)]
    assert events.expired[0].recipient == store.redact(PHONE)


async def test_a_receipt_after_release_is_late_not_adopted(make_store, clock):
    store = await make_store(ack_tracking_window="12h")
    await store.track_sent("m1")
    clock.advance(hours=13)
    await store.cleanup()
    # the read arrives the next evening, stamped now: without the tombstone it would be adopted
    assert await store.apply_receipt(rcpt("m1", R, clock())) == Outcome.LATE
    assert (await store.get_all_stats())["summary"]["tracked_messages"] == 0
    # one window later the tombstone is gone too
    clock.advance(hours=13)
    await store.cleanup()
    assert await store.apply_receipt(rcpt("m1", R, clock())) == Outcome.ADOPTED


async def test_adoption_counts_in_the_session_of_the_receipt_timestamp(make_store, clock):
    store = await make_store()
    yesterday = clock() - 12 * HOUR
    assert await store.apply_receipt(rcpt("m1", R, yesterday)) == Outcome.ADOPTED
    assert await store.apply_receipt(rcpt("m2", Q, None)) == Outcome.ADOPTED
    sunday = await one_session(store, "2026-11-29")
    monday = await one_session(store, "2026-11-30")
    assert (sunday["sent"], sunday["read"], sunday["delivered"]) == (1, 1, 1)
    assert (monday["sent"], monday["pending"]) == (1, 1)


async def test_track_sent_for_a_completed_session_is_refused(make_store, clock):
    store = await make_store(ack_tracking_window="1h")
    assert await store.track_sent("old", sent_at=clock() - 2 * DAY) is False
    with pytest.raises(ValueError):
        await store.track_sent("x" * 500)


# -- redaction and events -----------------------------------------------------------------------


async def test_events_carry_a_keyed_hash_never_the_number(make_store, clock, events):
    store = await make_store()
    await store.track_sent("m1", PHONE)
    await store.apply_receipt(rcpt("m1", D, clock()))
    await store.apply_receipt(rcpt("m2", D, clock(), recipient=PHONE))
    first, second = events.changes
    assert first.recipient == second.recipient == store.redact(PHONE)
    assert first.recipient is not None and PHONE not in first.recipient
    assert (first.old_status, first.new_status, first.outcome) == (Q, D, Outcome.APPLIED)
    assert (second.old_status, second.outcome) == (None, Outcome.ADOPTED)
    assert first.session_id == "2026-11-30"


async def test_without_redaction_events_carry_the_number(make_store, clock, events):
    store = await make_store(redact_recipients=False)
    await store.track_sent("m1", PHONE)
    await store.apply_receipt(rcpt("m1", D, clock()))
    assert events.changes[0].recipient == PHONE


# -- the views ----------------------------------------------------------------------------------


async def test_the_views_have_the_keys_of_the_design(make_store, clock):
    store = await make_store()
    await store.track_sent("m1")
    stats = await store.get_all_stats()
    assert set(stats) == {"summary", "sessions", "history"}
    assert set(stats["summary"]) == {
        "active_sessions",
        "historical_sessions",
        "tracked_messages",
        *COUNTER_KEYS,
        "receipts",
        "failures",
        "latency",
    }
    assert set(stats["summary"]["receipts"]) == set(OUTCOME_KEYS)
    assert {"session_id", *COUNTER_KEYS, "receipts"} <= set(stats["sessions"][0])

    reference = MessageSessionManager(clock=clock).get_debug_info()["manager_stats"]
    debug = (await store.get_debug_info())["manager_stats"]
    assert set(reference) <= set(debug)
    assert set(debug) - set(reference) <= {
        "store",
        "redis_prefix",
        "redis_memory_bound_bytes",
        "lost_records",
        "event_stream_length",
        "events_pending",
        "events_lost",
    }
    assert debug["tracked_messages"] == 1 and debug["active_sessions"] == ["2026-11-30"]
    assert debug["ack_tracking_window"] == 24 * 3600 * 1000


# -- the same traffic, the same answers ---------------------------------------------------------


async def test_random_traffic_gives_the_reference_answers(make_store, clock):
    """A seeded mix of sends, receipts (in and out of order, duplicates, strangers), time passing
    and cleanups: every outcome and every view's funnel equals the in-memory manager's."""
    options = {
        "ack_tracking_window": "3h",
        "session_period": "6h",
        "max_session_age": "8h",
        "max_tracked_messages": 40,
        "max_history_size": 3,
        "redaction_key": "test-key",
    }
    store = await make_store(**options)
    reference = MessageSessionManager(clock=clock, **options)
    rng = random.Random(7)
    sent: list[str] = []
    for step in range(600):
        roll = rng.random()
        if roll < 0.3:
            message_id = f"m{step}"
            sent.append(message_id)
            expected = reference.track_sent(message_id, PHONE)
            assert await store.track_sent(message_id, PHONE) == expected, step
        elif roll < 0.9:
            pool = sent[-60:] or ["none"]
            message_id = rng.choice(pool) if rng.random() < 0.9 else f"stranger{step}"
            status = rng.choice(list(Status))
            timestamp = None if rng.random() < 0.2 else clock() - rng.choice((0, 60, 4 * HOUR))
            receipt = rcpt(message_id, status, timestamp)
            expected_outcome = reference.apply_receipt(receipt)
            assert await store.apply_receipt(receipt) == expected_outcome, step
        elif roll < 0.97:
            clock.advance(rng.choice((30, 600, 1800)))
        else:
            reference.cleanup()
            await store.cleanup()
        if step % 50 == 49:
            await compare_views(store, reference)
    clock.advance(days=1)
    reference.cleanup()
    await store.cleanup()
    await compare_views(store, reference)


async def compare_views(store: Any, reference: MessageSessionManager) -> None:
    ours, theirs = await store.get_all_stats(), reference.get_all_stats()
    summary_keys = (
        "active_sessions",
        "historical_sessions",
        "tracked_messages",
        *COUNTER_KEYS,
        "receipts",
    )
    assert {k: ours["summary"][k] for k in summary_keys} == {
        k: theirs["summary"][k] for k in summary_keys
    }
    assert [(s["session_id"], funnel(s), s["tracked_messages"]) for s in ours["sessions"]] == [
        (s["session_id"], funnel(s), s["tracked_messages"]) for s in theirs["sessions"]
    ]
    assert [(h["session_id"], funnel(h), h["completed_at"]) for h in ours["history"]] == [
        (h["session_id"], funnel(h), h["completed_at"]) for h in theirs["history"]
    ]
    for entry in ours["sessions"] + ours["history"]:
        assert identity_holds(entry), entry
