"""The bounded message-session manager, rule by rule (DESIGN.md, "Manager semantics").

Time is driven by an injected clock: nothing sleeps.
"""

from __future__ import annotations

import gc
import logging
import tracemalloc
from datetime import timedelta

import pytest

from plugin.core.errors import SettingsError
from plugin.core.manager import MessageSessionManager
from plugin.core.model import (
    COUNTER_KEYS,
    OUTCOME_KEYS,
    CleanupReport,
    MessageExpired,
    Outcome,
    Receipt,
    ReceiptError,
    SessionSummary,
    Status,
    StatusChange,
)
from tests.clock import Clock, at

HOUR = 3600.0
DAY = 86400.0
MONDAY = at("2026-11-30T00:00")  # a UTC midnight
PHONE = "16505551234"

Q, S, D, R, P, F = (
    Status.QUEUED,
    Status.SENT,
    Status.DELIVERED,
    Status.READ,
    Status.PLAYED,
    Status.FAILED,
)


class Events:
    """An event sink that records what the manager announces."""

    def __init__(self) -> None:
        self.changes: list[StatusChange] = []
        self.expired: list[MessageExpired] = []
        self.completed: list[SessionSummary] = []
        self.cleanups: list[CleanupReport] = []

    def status_changed(self, change: StatusChange) -> None:
        self.changes.append(change)

    def message_expired(self, expired: MessageExpired) -> None:
        self.expired.append(expired)

    def session_completed(self, summary: SessionSummary, *, on_delivered=None) -> None:
        self.completed.append(summary)
        if on_delivered is not None:  # the Redis store's Stream: acknowledged once recorded
            on_delivered()

    def cleanup_completed(self, report: CleanupReport) -> None:
        self.cleanups.append(report)


def make(clock: Clock, events: Events | None = None, **options) -> MessageSessionManager:
    return MessageSessionManager(clock=clock, events=events, **options)


def receipt(message_id: str, status: Status, timestamp: float | None, **kw) -> Receipt:
    return Receipt(message_id, status, timestamp, **kw)


def session(manager: MessageSessionManager, session_id: str) -> dict:
    """The stats entry of one active session."""
    (entry,) = [s for s in manager.get_all_stats()["sessions"] if s["session_id"] == session_id]
    return entry


def funnel(entry: dict) -> dict[str, int]:
    return {key: entry[key] for key in COUNTER_KEYS}


def identity_holds(entry: dict) -> bool:
    return entry["sent"] == (
        entry["delivered"]
        + entry["failed"]
        + entry["pending"]
        + entry["expired"]
        + entry["evicted"]
    )


def statuses(manager: MessageSessionManager) -> dict[str, Status]:
    return {message_id: status for message_id, _, status, _, _ in manager.records()}


@pytest.fixture
def clock() -> Clock:
    return Clock(MONDAY + 10 * HOUR)


@pytest.fixture
def events() -> Events:
    return Events()


# -- Rule 1: sessions per period ----------------------------------------------------------------


def test_a_message_belongs_to_the_session_of_the_day_it_was_sent(clock):
    manager = make(clock)
    manager.track_sent("m1")
    clock.set(at("2026-11-30T23:59:59"))
    manager.track_sent("m2")
    clock.set(at("2026-12-01T00:00"))
    manager.track_sent("m3")

    assert {m: s for m, s, *_ in manager.records()} == {
        "m1": "2026-11-30",
        "m2": "2026-11-30",
        "m3": "2026-12-01",
    }
    monday = session(manager, "2026-11-30")
    assert monday["started_at"] == MONDAY
    assert monday["sent"] == 2


def test_an_explicit_sent_at_chooses_the_session(clock):
    manager = make(clock)
    manager.track_sent("yesterday", sent_at=MONDAY - HOUR)
    assert [s["session_id"] for s in manager.get_all_stats()["sessions"]] == ["2026-11-29"]


def test_days_begin_at_midnight_in_the_configured_timezone():
    # 01:00 UTC on Dec 1st is still Nov 30th in São Paulo (UTC-3, no daylight saving).
    clock = Clock(at("2026-12-01T01:00"))
    manager = make(clock, timezone="America/Sao_Paulo")
    manager.track_sent("m1")
    entry = session(manager, "2026-11-30")
    assert entry["started_at"] == at("2026-11-30T00:00", "America/Sao_Paulo")
    assert entry["started_at"] == at("2026-11-30T03:00")

    clock.set(at("2026-12-01T03:00"))  # local midnight
    manager.track_sent("m2")
    assert [s["session_id"] for s in manager.get_all_stats()["sessions"]] == [
        "2026-11-30",
        "2026-12-01",
    ]


def test_sub_day_periods_are_named_after_their_first_hour():
    clock = Clock(at("2026-11-30T07:30"))
    manager = make(clock, session_period="6h", max_session_age="12h")
    manager.track_sent("m1")
    clock.set(at("2026-11-30T23:00"))
    manager.track_sent("m2")
    ids = [s["session_id"] for s in manager.get_all_stats()["sessions"]]
    assert ids[-1] == "2026-11-30T18"
    assert "m1" not in statuses(manager)  # its 24h window is not over, but its session is
    assert manager.history[-1].session_id == "2026-11-30T06"
    assert manager.history[-1].started_at == at("2026-11-30T06:00")
    assert manager.history[-1].ended_at == at("2026-11-30T12:00")


@pytest.mark.parametrize(
    ("day", "hours"),
    [("2026-03-29", 5), ("2026-10-25", 7)],  # Berlin springs forward, then falls back
)
def test_on_a_daylight_saving_day_the_last_sub_day_period_absorbs_the_change(day, hours):
    tz = "Europe/Berlin"
    next_day = {"2026-03-29": "2026-03-30", "2026-10-25": "2026-10-26"}[day]
    clock = Clock(at(f"{next_day}T00:00", tz) - 60)  # one minute before local midnight
    manager = make(clock, timezone=tz, session_period="6h", max_session_age="12h")
    manager.track_sent("late-evening")
    entry = session(manager, f"{day}T18")
    assert entry["ends_at"] == at(f"{next_day}T00:00", tz)
    assert entry["ends_at"] - entry["started_at"] == hours * HOUR
    # Periods count elapsed hours from local midnight.
    assert entry["started_at"] == at(f"{day}T00:00", tz) + 18 * HOUR

    clock.set(at(f"{next_day}T00:00", tz))
    manager.track_sent("midnight")
    assert session(manager, f"{next_day}T00")["started_at"] == clock.now


# -- Rule 2: the ack window of each message ----------------------------------------------------


def test_a_pending_message_is_released_at_sent_at_plus_window_and_counts_as_expired(clock, events):
    manager = make(clock, events, ack_tracking_window="2h")
    sent_at = clock.now
    manager.track_sent("m1", recipient=PHONE)

    clock.set(sent_at + 2 * HOUR - 1)
    manager.cleanup()
    assert statuses(manager) == {"m1": Status.QUEUED}
    assert session(manager, "2026-11-30")["pending"] == 1

    clock.set(sent_at + 2 * HOUR)
    report = manager.cleanup()
    assert statuses(manager) == {}
    entry = session(manager, "2026-11-30")
    assert funnel(entry) == {**dict.fromkeys(COUNTER_KEYS, 0), "sent": 1, "expired": 1}
    assert report.expired_messages == 1
    (expired,) = events.expired
    assert expired.message_id == "m1"
    assert expired.session_id == "2026-11-30"
    assert expired.reason == "window"
    assert expired.status == Status.QUEUED
    assert expired.sent_at == sent_at
    assert expired.recipient == manager.redact(PHONE)


def test_a_sent_but_never_delivered_message_expires_with_its_last_status(clock, events):
    manager = make(clock, events, ack_tracking_window="2h")
    manager.track_sent("m1")
    manager.apply_receipt(receipt("m1", S, clock.now))
    clock.advance(hours=2)
    manager.cleanup()
    assert [e.status for e in events.expired] == [Status.SENT]
    assert session(manager, "2026-11-30")["expired"] == 1


@pytest.mark.parametrize("status", [D, R, P, F])
def test_a_delivered_or_failed_message_is_released_without_expiring(clock, events, status):
    manager = make(clock, events, ack_tracking_window="2h")
    manager.track_sent("m1")
    manager.apply_receipt(receipt("m1", status, clock.now))
    clock.advance(hours=2)
    report = manager.cleanup()
    assert manager.tracked_messages == 0
    entry = session(manager, "2026-11-30")
    assert entry["expired"] == 0
    assert entry["pending"] == 0
    assert events.expired == []
    assert report.expired_messages == 0


def test_the_cleanup_report_counts_only_messages_that_expired(clock):
    manager = make(clock, ack_tracking_window="1h")
    for message_id in ("a", "b", "c"):
        manager.track_sent(message_id)
    manager.apply_receipt(receipt("a", R, clock.now))
    clock.advance(hours=1)
    report = manager.cleanup()
    assert report.expired_messages == 2
    assert session(manager, "2026-11-30")["expired"] == 2


# -- Rule 3: session completion ----------------------------------------------------------------


def test_a_session_completes_at_period_end_plus_window(clock, events):
    manager = make(clock, events, ack_tracking_window="12h", max_session_age="48h")
    manager.track_sent("m1")
    manager.apply_receipt(receipt("m1", D, clock.now))
    manager.track_sent("m2")
    complete_at = MONDAY + DAY + 12 * HOUR

    clock.set(complete_at - 1)
    manager.cleanup()
    assert [s.session_id for s in manager.sessions] == ["2026-11-30"]
    assert events.completed == []

    clock.set(complete_at)
    report = manager.cleanup()
    assert manager.sessions == []
    assert report.completed_sessions == ("2026-11-30",)
    (summary,) = events.completed
    assert manager.history == [summary]
    assert summary.session_id == "2026-11-30"
    assert summary.started_at == MONDAY
    assert summary.ended_at == MONDAY + DAY
    assert summary.completed_at == complete_at
    assert summary.counters == {
        **dict.fromkeys(COUNTER_KEYS, 0),
        "sent": 2,
        "delivered": 1,
        "expired": 1,
    }
    assert summary.receipts["applied"] == 1


def test_a_session_completes_at_start_plus_max_session_age_when_that_comes_first(clock, events):
    manager = make(clock, events, ack_tracking_window="24h", max_session_age="30h")
    clock.set(MONDAY + 23 * HOUR)
    manager.track_sent("evening", recipient=PHONE)  # its own window would end at +47h

    clock.set(MONDAY + 30 * HOUR - 1)
    manager.cleanup()
    assert "evening" in statuses(manager)

    clock.set(MONDAY + 30 * HOUR)
    manager.cleanup()
    assert manager.tracked_messages == 0
    assert [h.session_id for h in manager.history] == ["2026-11-30"]
    (expired,) = events.expired
    assert expired.reason == "session"
    assert manager.history[0].counters["expired"] == 1
    # Its receipt arriving now is late: the session has completed.
    assert manager.apply_receipt(receipt("evening", R, clock.now)) == Outcome.LATE


def test_session_completed_fires_exactly_once(clock, events):
    manager = make(clock, events, ack_tracking_window="1h")
    manager.track_sent("m1")
    clock.set(MONDAY + DAY + HOUR)
    manager.track_sent("m2")  # completes Monday lazily
    manager.cleanup()
    manager.cleanup()
    clock.advance(hours=1)
    manager.apply_receipt(receipt("zzz", D, clock.now))
    manager.cleanup(clock.now + 1)
    assert [s.session_id for s in events.completed] == ["2026-11-30"]


def test_completion_releases_records_and_logs_the_seed_lines(clock, events, caplog):
    manager = make(clock, events, ack_tracking_window="24h", max_session_age="30h")
    clock.set(MONDAY + HOUR)
    manager.track_sent("m1")  # its window ends at +25h, before the session completes at +30h
    clock.set(MONDAY + 23 * HOUR)
    manager.track_sent("m2")
    manager.track_sent("m3")
    clock.set(MONDAY + 30 * HOUR)  # nothing called the manager in between
    with caplog.at_level(logging.INFO, logger="plugin.core.manager"):
        report = manager.cleanup()
    assert manager.tracked_messages == 0
    assert [(e.message_id, e.reason) for e in events.expired] == [
        ("m1", "window"),
        ("m2", "session"),
        ("m3", "session"),
    ]
    assert report.expired_messages == 3
    messages = caplog.messages
    assert "MessageSession cleaned up (cleared_messages=2)" in messages
    assert "Session completed and moved to history (date=2026-11-30)" in messages
    assert "Periodic cleanup completed (history_trimmed=0, remaining_history=1)" in messages


def test_history_keeps_the_newest_max_history_size_summaries(clock):
    manager = make(clock, ack_tracking_window="1h", max_history_size=3)
    trimmed = 0
    for day in range(6):
        clock.set(MONDAY + day * DAY + HOUR)
        manager.track_sent(f"m{day}")
        report = manager.cleanup(MONDAY + (day + 1) * DAY + HOUR)
        trimmed += report.history_trimmed
        assert report.remaining_history == min(day + 1, 3)
    assert [h.session_id for h in manager.history] == ["2026-12-03", "2026-12-04", "2026-12-05"]
    assert trimmed == 3
    assert manager.get_all_stats()["summary"]["historical_sessions"] == 3
    assert len(manager.get_all_stats()["history"]) == 3


def test_no_history_is_kept_when_keep_history_is_false(clock, events):
    manager = make(clock, events, ack_tracking_window="1h", keep_history=False)
    manager.track_sent("m1")
    report = manager.cleanup(MONDAY + DAY + HOUR)
    assert report.completed_sessions == ("2026-11-30",)
    assert report.remaining_history == 0
    assert manager.history == []
    assert manager.get_all_stats()["history"] == []
    assert manager.get_debug_info()["manager_stats"]["history_size"] == 0
    assert len(events.completed) == 1  # the hook still fires


# -- Rule 4: the hard cap ----------------------------------------------------------------------


def test_over_max_tracked_messages_the_oldest_record_is_evicted(clock):
    manager = make(clock, max_tracked_messages=3)
    for n in range(3):
        manager.track_sent(f"m{n}")
        clock.advance(1)
    manager.apply_receipt(receipt("m0", D, clock.now))  # evicted after delivery: not "evicted"
    manager.track_sent("m3")
    manager.track_sent("m4")

    assert set(statuses(manager)) == {"m2", "m3", "m4"}
    entry = session(manager, "2026-11-30")
    assert funnel(entry) == {
        **dict.fromkeys(COUNTER_KEYS, 0),
        "sent": 5,
        "delivered": 1,
        "pending": 3,
        "evicted": 1,
    }
    assert identity_holds(entry)
    assert manager.get_debug_info()["manager_stats"]["tracked_messages"] == 3
    # An evicted id is tombstoned: its late receipt is not adopted as a new message.
    assert manager.apply_receipt(receipt("m1", D, clock.now)) == Outcome.LATE
    assert manager.tracked_messages == 3


def test_eviction_takes_the_oldest_session_first(clock):
    manager = make(clock, max_tracked_messages=2, ack_tracking_window="24h")
    clock.set(MONDAY + 23 * HOUR)
    manager.track_sent("monday")
    clock.set(MONDAY + DAY + HOUR)
    manager.track_sent("tuesday-1")
    manager.track_sent("tuesday-2")
    assert set(statuses(manager)) == {"tuesday-1", "tuesday-2"}
    assert session(manager, "2026-11-30")["evicted"] == 1


# -- Rule 5: one outcome per receipt ----------------------------------------------------------


def test_receipt_outcomes_applied_duplicate_stale(clock):
    manager = make(clock)
    manager.track_sent("m1")
    assert manager.apply_receipt(receipt("m1", S, clock.now)) == Outcome.APPLIED
    assert manager.apply_receipt(receipt("m1", S, clock.now)) == Outcome.DUPLICATE
    assert manager.apply_receipt(receipt("m1", R, clock.now)) == Outcome.APPLIED
    assert manager.apply_receipt(receipt("m1", D, clock.now)) == Outcome.STALE  # implied by read
    assert manager.apply_receipt(receipt("m1", S, clock.now)) == Outcome.STALE
    assert manager.apply_receipt(receipt("m1", R, clock.now)) == Outcome.DUPLICATE
    receipts = manager.get_all_stats()["summary"]["receipts"]
    assert receipts == {**dict.fromkeys(OUTCOME_KEYS, 0), "applied": 2, "duplicate": 2, "stale": 2}
    assert session(manager, "2026-11-30")["receipts"] == receipts


def test_a_receipt_after_its_message_window_is_late(clock):
    manager = make(clock, ack_tracking_window="2h")
    manager.track_sent("m1")
    clock.advance(hours=2)
    assert manager.apply_receipt(receipt("m1", D, clock.now)) == Outcome.LATE
    assert manager.tracked_messages == 0
    entry = session(manager, "2026-11-30")
    assert entry["delivered"] == 0
    assert entry["receipts"]["late"] == 1


def test_a_receipt_older_than_the_window_is_late_even_for_a_tracked_message(clock):
    manager = make(clock, ack_tracking_window="2h")
    manager.track_sent("m1")
    clock.advance(hours=1)
    old = clock.now - 2 * HOUR
    assert manager.apply_receipt(receipt("m1", D, old)) == Outcome.LATE
    assert statuses(manager) == {"m1": Status.QUEUED}
    # Also for an id this process never saw: it is not adopted.
    assert manager.apply_receipt(receipt("stranger", D, old)) == Outcome.LATE
    assert "stranger" not in statuses(manager)


def test_a_receipt_in_a_completed_session_is_late(clock):
    manager = make(clock, ack_tracking_window="24h", max_session_age="30h")
    manager.track_sent("m1")
    clock.set(MONDAY + 31 * HOUR)
    manager.cleanup()
    assert [h.session_id for h in manager.history] == ["2026-11-30"]
    # Within its own window (23h old), but Monday has completed: not adopted.
    outcome = manager.apply_receipt(receipt("never-seen", D, MONDAY + 8 * HOUR))
    assert outcome == Outcome.LATE
    assert manager.tracked_messages == 0
    assert manager.get_all_stats()["summary"]["receipts"]["late"] == 1


def test_a_read_the_next_evening_is_late_not_adopted(clock):
    manager = make(clock, ack_tracking_window="12h")
    clock.set(MONDAY + 9 * HOUR)
    manager.track_sent("reminder")
    manager.apply_receipt(receipt("reminder", D, clock.now + 60))
    clock.set(MONDAY + DAY + 19 * HOUR)  # released at 21:00 Monday; tombstoned since
    assert manager.apply_receipt(receipt("reminder", R, clock.now)) == Outcome.LATE
    stats = manager.get_all_stats()["summary"]
    assert stats["receipts"]["adopted"] == 0
    assert stats["tracked_messages"] == 0
    assert stats["sent"] == 0  # Tuesday's session did not count it


def test_unknown_receipts_are_not_tracked_when_adoption_is_off(clock):
    manager = make(clock, track_unknown_receipts=False)
    assert manager.apply_receipt(receipt("stranger", D, clock.now)) == Outcome.UNKNOWN
    assert manager.tracked_messages == 0
    assert manager.get_all_stats()["summary"]["receipts"]["unknown"] == 1


@pytest.mark.parametrize("status", list(Status))
def test_an_unknown_receipt_of_any_status_is_adopted(clock, status):
    manager = make(clock)
    assert manager.apply_receipt(receipt("stranger", status, clock.now)) == Outcome.ADOPTED
    assert statuses(manager) == {"stranger": status}
    entry = session(manager, "2026-11-30")
    assert entry["sent"] == 1
    assert entry["receipts"]["adopted"] == 1
    assert entry["pending"] == (1 if status in (Q, S) else 0)
    assert entry["delivered"] == (1 if status in (D, R, P) else 0)
    assert entry["read"] == (1 if status in (R, P) else 0)
    assert entry["played"] == (1 if status == P else 0)
    assert entry["failed"] == (1 if status == F else 0)
    assert identity_holds(entry)
    # The adopted message is tracked like any other from now on.
    assert manager.apply_receipt(receipt("stranger", status, clock.now)) == Outcome.DUPLICATE


def test_adoption_counts_in_the_session_of_the_receipts_timestamp(clock):
    manager = make(clock)
    clock.set(MONDAY + DAY + HOUR)  # Tuesday 01:00
    sent_yesterday = MONDAY + 23 * HOUR
    assert manager.apply_receipt(receipt("stranger", D, sent_yesterday)) == Outcome.ADOPTED
    assert manager.get_all_stats()["sessions"][0]["session_id"] == "2026-11-30"
    assert session(manager, "2026-11-30")["delivered"] == 1
    assert [s for _, s, *_ in manager.records()] == ["2026-11-30"]


def test_a_receipt_without_timestamp_takes_its_arrival_time(clock, events):
    manager = make(clock, events)
    clock.set(MONDAY + DAY + HOUR)
    manager.track_sent("monday", sent_at=MONDAY + 23 * HOUR)
    assert manager.apply_receipt(receipt("twilio-sid", D, None)) == Outcome.ADOPTED
    assert session(manager, "2026-12-01")["delivered"] == 1
    assert manager.apply_receipt(receipt("monday", D, None)) == Outcome.APPLIED
    assert [c.timestamp for c in events.changes] == [clock.now, clock.now]


def test_an_adopted_receipt_with_an_id_the_manager_refuses_is_unknown(clock):
    manager = make(clock)
    assert manager.apply_receipt(receipt("x" * 129, D, clock.now)) == Outcome.UNKNOWN
    assert manager.tracked_messages == 0


# -- The ladder --------------------------------------------------------------------------------


def test_a_receipt_never_moves_a_message_down_the_ladder(clock):
    manager = make(clock)
    manager.track_sent("m1")
    manager.apply_receipt(receipt("m1", P, clock.now))
    for status in (Q, S, D, R):
        assert manager.apply_receipt(receipt("m1", status, clock.now)) == Outcome.STALE
    assert statuses(manager) == {"m1": Status.PLAYED}


def test_read_without_delivered_implies_delivered(clock):
    manager = make(clock)
    manager.track_sent("m1")
    manager.track_sent("m2")
    manager.apply_receipt(receipt("m1", R, clock.now))
    manager.apply_receipt(receipt("m2", P, clock.now))
    entry = session(manager, "2026-11-30")
    assert funnel(entry) == {
        **dict.fromkeys(COUNTER_KEYS, 0),
        "sent": 2,
        "delivered": 2,
        "read": 2,
        "played": 1,
    }


def test_delivered_after_failed_wins(clock, events):
    manager = make(clock, events)
    manager.track_sent("m1")
    manager.apply_receipt(receipt("m1", F, clock.now, error=ReceiptError("131026")))
    assert session(manager, "2026-11-30")["failed"] == 1
    assert manager.apply_receipt(receipt("m1", D, clock.now)) == Outcome.APPLIED
    entry = session(manager, "2026-11-30")
    assert (entry["failed"], entry["delivered"], entry["pending"]) == (0, 1, 0)
    assert statuses(manager) == {"m1": Status.DELIVERED}
    assert [(c.old_status, c.new_status) for c in events.changes] == [
        (Status.QUEUED, Status.FAILED),
        (Status.FAILED, Status.DELIVERED),
    ]


@pytest.mark.parametrize("positive", [D, R, P])
def test_failed_after_a_delivery_is_stale(clock, positive):
    manager = make(clock)
    manager.track_sent("m1")
    manager.apply_receipt(receipt("m1", positive, clock.now))
    assert manager.apply_receipt(receipt("m1", F, clock.now)) == Outcome.STALE
    assert session(manager, "2026-11-30")["failed"] == 0


def test_failure_error_codes_are_tallied_and_bounded(clock):
    manager = make(clock)
    for n in range(40):
        manager.track_sent(f"m{n}")
        manager.apply_receipt(receipt(f"m{n}", F, clock.now, error=ReceiptError(str(n))))
    manager.track_sent("no-code")
    manager.apply_receipt(receipt("no-code", F, clock.now))
    errors = session(manager, "2026-11-30")["errors"]
    assert sum(errors.values()) == 41
    assert len(errors) <= 34  # 32 distinct codes, "other" and "unknown"
    assert errors["0"] == 1


# -- Rule 6: the funnel ------------------------------------------------------------------------


def test_the_funnel_adds_up_for_every_session_and_history_entry(clock):
    manager = make(clock, ack_tracking_window="6h", max_tracked_messages=8)
    script = [Q, S, D, R, P, F, None, None, S, D, F, None]
    for day in range(3):
        for n, status in enumerate(script):
            message_id = f"d{day}-{n}"
            manager.track_sent(message_id)
            if status is not None:
                manager.apply_receipt(receipt(message_id, status, clock.now))
            clock.advance(minutes=20)
        manager.apply_receipt(receipt(f"adopted-{day}", S, clock.now))
        clock.advance(hours=7)
        manager.apply_receipt(receipt(f"d{day}-2", R, clock.now))  # late
        clock.set(MONDAY + (day + 1) * DAY + 10 * HOUR)
    stats = manager.get_all_stats()
    entries = stats["sessions"] + stats["history"]
    assert len(entries) == 3
    for entry in entries:
        assert identity_holds(entry), entry
        assert entry["expired"] > 0
        assert entry["evicted"] > 0
    summary = stats["summary"]
    for key in COUNTER_KEYS:
        assert summary[key] == sum(s[key] for s in stats["sessions"])
    assert sum(summary["receipts"].values()) == 3 * (len(script) - 3 + 2)


# -- Bounds without cleanup() ------------------------------------------------------------------


def test_tombstones_are_bounded_and_age_out(clock):
    manager = make(clock, ack_tracking_window="1h", max_tracked_messages=10)
    for n in range(100):
        manager.track_sent(f"m{n}")
    assert manager.tracked_messages == 10
    assert 0 < manager.tombstone_count <= 10
    assert manager.get_debug_info()["manager_stats"]["tombstones"] <= 10

    clock.advance(hours=1)
    manager.cleanup()
    assert manager.tombstone_count <= 10
    assert manager.apply_receipt(receipt("m99", R, clock.now)) == Outcome.LATE

    clock.advance(hours=3)  # one more window (and some) later, tombstones are gone
    report = manager.cleanup()
    assert report.tombstones_dropped > 0
    assert manager.tombstone_count == 0


def test_bounds_hold_without_ever_calling_cleanup(clock):
    manager = make(
        clock,
        ack_tracking_window="2h",
        session_period="4h",
        max_session_age="6h",
        max_history_size=4,
        max_tracked_messages=50,
    )
    for step in range(14 * 24 * 4):  # two weeks, one message every 15 minutes
        manager.track_sent(f"m{step}")
        if step % 3 == 0:
            manager.apply_receipt(receipt(f"m{step}", D, clock.now))
        if step % 5 == 0:
            manager.apply_receipt(receipt(f"x{step}", S, clock.now))
        clock.advance(minutes=15)
        assert len(manager.sessions) <= manager.max_active_sessions()
        assert manager.tracked_messages <= 50
        assert manager.tombstone_count <= 50
        assert manager.history_size <= 4
    stats = manager.get_all_stats()
    # Records older than the window were released lazily, not left to a timer.
    assert all(sent_at > clock.now - 2 * HOUR for *_, sent_at, _ in manager.records())
    assert manager.history_size == 4
    entries = stats["sessions"] + stats["history"]
    assert all(identity_holds(e) for e in entries)
    assert sum(e["expired"] for e in entries) > 0


# -- cleanup() and the views -------------------------------------------------------------------


def test_cleanup_reports_what_it_did(clock, events):
    manager = make(clock, events, ack_tracking_window="1h", max_history_size=1)
    manager.track_sent("m1")
    clock.set(MONDAY + DAY + 10 * HOUR)
    manager.track_sent("m2")  # completes Monday lazily
    report = manager.cleanup(MONDAY + 2 * DAY + HOUR)
    assert isinstance(report, CleanupReport)
    assert report.at == MONDAY + 2 * DAY + HOUR
    assert report.completed_sessions == ("2026-12-01",)
    assert report.expired_messages == 1  # m2, whose window ended at 11:00 on Tuesday
    assert report.history_trimmed == 1
    assert report.remaining_history == 1
    assert report.tombstones_dropped >= 1  # m1's tombstone, more than a window old
    assert report.as_dict() == {
        "at": report.at,
        "expired_messages": report.expired_messages,
        "completed_sessions": ["2026-12-01"],
        "history_trimmed": 1,
        "remaining_history": 1,
        "tombstones_dropped": report.tombstones_dropped,
    }
    assert events.cleanups == [report]
    assert manager.get_debug_info()["manager_stats"]["last_cleanup_at"] == report.at


SUMMARY_KEYS = {
    "active_sessions",
    "historical_sessions",
    "tracked_messages",
    "sent",
    "delivered",
    "read",
    "played",
    "failed",
    "pending",
    "expired",
    "evicted",
    "receipts",
    "failures",
    "latency",
}
RECEIPT_KEYS = {"applied", "duplicate", "stale", "late", "unknown", "adopted"}
SESSION_KEYS = {
    "session_id",
    *COUNTER_KEYS,
    "receipts",
    "errors",
    "failures",
    "tags",
    "latency",
}
MANAGER_STATS_KEYS = {
    "active_session_count",
    "history_size",
    "ack_tracking_window",
    "auto_expire_enabled",
    "max_history_size",
    "keep_history",
    "tracked_messages",
    "max_tracked_messages",
    "memory_bound_bytes",
    "hook_errors",
}


def test_get_all_stats_has_the_documented_shape(clock):
    manager = make(clock, ack_tracking_window="1h")
    manager.track_sent("m1")
    manager.apply_receipt(receipt("m1", D, clock.now))
    clock.set(MONDAY + DAY + 10 * HOUR)
    manager.track_sent("m2")
    stats = manager.get_all_stats()

    assert set(stats) == {"summary", "sessions", "history"}
    assert set(stats["summary"]) == SUMMARY_KEYS
    assert set(stats["summary"]["receipts"]) == RECEIPT_KEYS
    assert stats["summary"]["active_sessions"] == 1
    assert stats["summary"]["historical_sessions"] == 1
    for entry in stats["sessions"] + stats["history"]:
        assert set(entry) >= SESSION_KEYS
        assert set(entry["receipts"]) == RECEIPT_KEYS
        assert all(isinstance(entry[key], int) for key in COUNTER_KEYS)
    assert stats["sessions"][0]["session_id"] == "2026-12-01"
    assert stats["history"][0]["session_id"] == "2026-11-30"
    assert stats["history"][0]["delivered"] == 1


def test_receipt_totals_are_monotonic_across_completed_sessions(clock):
    manager = make(clock, ack_tracking_window="1h")
    manager.track_sent("m1")
    manager.apply_receipt(receipt("m1", D, clock.now))
    clock.set(MONDAY + 3 * DAY)
    manager.cleanup()
    assert manager.sessions == []
    assert manager.get_all_stats()["summary"]["receipts"]["applied"] == 1


def test_get_debug_info_has_the_documented_keys(clock):
    manager = make(clock, ack_tracking_window="12h", max_history_size=7, max_tracked_messages=500)
    manager.track_sent("m1")
    info = manager.get_debug_info()
    assert set(info) == {"manager_stats"}
    stats = info["manager_stats"]
    assert set(stats) >= MANAGER_STATS_KEYS
    assert stats["active_session_count"] == 1
    assert stats["history_size"] == 0
    assert stats["ack_tracking_window"] == 12 * 3600 * 1000
    assert stats["auto_expire_enabled"] is True
    assert stats["max_history_size"] == 7
    assert stats["keep_history"] is True
    assert stats["tracked_messages"] == 1
    assert stats["max_tracked_messages"] == 500
    assert stats["memory_bound_bytes"] == manager.memory_bound_bytes() > 0
    assert stats["hook_errors"] == 0


# -- Recipients --------------------------------------------------------------------------------


def test_events_carry_a_redacted_recipient_by_default(clock, events, caplog):
    manager = make(clock, events, ack_tracking_window="1h", redaction_key="k")
    with caplog.at_level(logging.DEBUG):
        manager.track_sent("m1", recipient=PHONE)
        manager.track_sent("m2", recipient=PHONE)
        manager.apply_receipt(receipt("m1", D, clock.now, recipient=PHONE))
        manager.apply_receipt(receipt("m3", S, clock.now, recipient=PHONE))  # adopted
        clock.advance(hours=1)
        manager.cleanup()
        clock.advance(days=2)
        manager.cleanup()
    seen = [*events.changes, *events.expired]
    assert len(seen) == 4
    assert {e.recipient for e in seen} == {manager.redact(PHONE)}
    assert PHONE not in manager.redact(PHONE)
    for text in (
        repr(seen),
        repr(events.completed),
        caplog.text,
        repr(manager.get_all_stats()),
        repr(manager.get_debug_info()),
    ):
        assert PHONE not in text


def test_the_redaction_is_keyed(clock):
    one = make(clock, redaction_key="one")
    two = make(clock, redaction_key="two")
    assert one.redact(PHONE) == make(clock, redaction_key="one").redact(PHONE)
    assert one.redact(PHONE) != two.redact(PHONE)


def test_events_carry_the_raw_recipient_when_redaction_is_off(clock, events):
    manager = make(clock, events, ack_tracking_window="1h", redact_recipients=False)
    manager.track_sent("m1", recipient=PHONE)
    manager.apply_receipt(receipt("m1", S, clock.now))
    manager.apply_receipt(receipt("m2", D, clock.now, recipient="447700900123"))
    clock.advance(hours=1)
    manager.cleanup()
    assert [c.recipient for c in events.changes] == [PHONE, "447700900123"]
    assert [e.recipient for e in events.expired] == [PHONE]


# -- Options -----------------------------------------------------------------------------------


@pytest.mark.parametrize("window", ["90m", 5_400_000, "5400000", timedelta(minutes=90)])
def test_durations_accept_strings_integer_milliseconds_and_timedelta(clock, window):
    manager = make(clock, ack_tracking_window=window)
    assert manager.options.ack_tracking_window == 5400
    assert manager.get_debug_info()["manager_stats"]["ack_tracking_window"] == 5_400_000
    manager.track_sent("m1")
    clock.advance(minutes=90)
    manager.cleanup()
    assert session(manager, "2026-11-30")["expired"] == 1


def test_invalid_options_raise_settings_error_naming_every_problem(clock):
    with pytest.raises(SettingsError) as caught:
        make(
            clock,
            ack_tracking_window="soon",
            session_period="5h",
            timezone="Mars/Olympus",
            max_history_size=-1,
            max_tracked_messages=0,
            keep_history="perhaps",
            colour="blue",
        )
    keys = {p.key for p in caught.value.problems}
    assert keys == {
        "ack_tracking_window",
        "session_period",
        "timezone",
        "max_history_size",
        "max_tracked_messages",
        "keep_history",
        "colour",
    }
    assert "Mars/Olympus" in str(caught.value)


def test_max_session_age_below_session_period_is_a_configuration_error(clock):
    with pytest.raises(SettingsError) as caught:
        make(clock, session_period="12h", max_session_age="6h")
    assert [p.key for p in caught.value.problems] == ["max_session_age"]


def test_from_settings_accepts_a_mapping_of_settings_keys(clock):
    manager = MessageSessionManager.from_settings(
        {"profile": "ultra_lean", "max_history_size": 5}, clock=clock
    )
    assert manager.options.ack_tracking_window == 12 * HOUR
    assert manager.options.max_history_size == 5


# -- Message ids -------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["x" * 129, "wamid.é", "", "wamid.\u200b"])
def test_track_sent_refuses_ids_over_128_chars_or_not_ascii(clock, bad):
    manager = make(clock)
    with pytest.raises(ValueError):
        manager.track_sent(bad)
    assert manager.tracked_messages == 0


def test_track_sent_accepts_a_128_char_id_once(clock):
    manager = make(clock)
    assert manager.track_sent("x" * 128) is True
    assert manager.track_sent("x" * 128) is False
    assert manager.get_all_stats()["summary"]["sent"] == 1


# -- The memory bound --------------------------------------------------------------------------


def _long_id(n: int) -> str:
    return f"wamid.{n:0122d}"


def test_heap_growth_stays_within_the_computed_memory_bound():
    clock = Clock(MONDAY)
    cap = 2000
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        manager = MessageSessionManager(
            clock=clock,
            ack_tracking_window="1h",
            session_period="1h",
            max_session_age="2h",
            max_history_size=5,
            max_tracked_messages=cap,
            redact_recipients=False,
        )
        n = 0
        for hour in range(8):  # fills history, and tombstones from expired and evicted records
            for _ in range(cap + cap // 4):
                manager.track_sent(_long_id(n), recipient=str(100_000_000_000_000 + n))
                if n % 7 == 0:
                    manager.apply_receipt(
                        Receipt(
                            _long_id(n),
                            Status.FAILED,
                            clock.now,
                            error=ReceiptError(f"E{n % 50:03d}"),
                        )
                    )
                n += 1
                clock.advance(1)
            clock.set(MONDAY + (hour + 1) * HOUR - 1)
        assert manager.tracked_messages == cap
        assert manager.tombstone_count == cap
        assert manager.history_size == 5
        gc.collect()
        growth = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert growth <= manager.memory_bound_bytes(), (growth, manager.memory_bound_bytes())


def test_a_message_adopted_out_of_send_order_still_expires_at_its_own_window_end(clock, events):
    manager = make(clock, events, ack_tracking_window="5h")
    manager.track_sent("now")
    assert manager.apply_receipt(receipt("earlier", S, clock.now - 2 * HOUR)) == Outcome.ADOPTED
    manager.track_sent("back-dated", sent_at=clock.now - HOUR)
    clock.advance(hours=3)
    manager.cleanup()
    assert [e.message_id for e in events.expired] == ["earlier"]
    clock.advance(hours=1)
    assert manager.get_all_stats()["summary"]["expired"] == 2
    assert set(statuses(manager)) == {"now"}


def test_eviction_takes_the_record_sent_first_even_when_it_arrived_last(clock):
    manager = make(clock, max_tracked_messages=3)
    manager.track_sent("a")
    manager.track_sent("b")
    manager.track_sent("oldest", sent_at=clock.now - HOUR)
    manager.track_sent("c")
    assert set(statuses(manager)) == {"a", "b", "c"}


def test_track_sent_refuses_a_message_whose_session_has_completed(clock):
    manager = make(clock, ack_tracking_window="1h")
    assert manager.track_sent("old", sent_at=clock.now - 3 * DAY) is False
    assert manager.tracked_messages == 0
    assert manager.sessions == []


def test_a_sent_at_in_the_future_is_taken_as_now(clock):
    manager = make(clock)
    manager.track_sent("m1", sent_at=clock.now + DAY)
    assert [(s, sent_at) for _, s, _, sent_at, _ in manager.records()] == [
        ("2026-11-30", clock.now),
    ]


def test_reaching_the_cap_is_logged_once_not_per_eviction(caplog):
    clock = Clock(at("2026-11-30T09:00"))
    manager = MessageSessionManager(clock=clock, max_tracked_messages=3)
    with caplog.at_level("WARNING", logger="plugin.core.manager"):
        for i in range(10):
            manager.track_sent(f"wamid.CAP{i}")
    warnings = [r for r in caplog.records if "max_tracked_messages (3) reached" in r.message]
    assert len(warnings) == 1
    assert manager.get_all_stats()["summary"]["evicted"] == 7


def test_a_session_never_completes_before_its_period_ends_on_a_25_hour_day():
    # Berlin falls back on 2026-10-25: that day is 25 hours long. max_session_age = 24h must
    # not complete the session an hour early (its last hour's receipts would count as late).
    tz = "Europe/Berlin"
    clock = Clock(at("2026-10-25T23:30", tz))
    manager = make(clock, timezone=tz, max_session_age="24h", ack_tracking_window="1h")
    manager.track_sent("last-hour")
    entry = session(manager, "2026-10-25")
    assert entry["ends_at"] - entry["started_at"] == 25 * HOUR
    assert entry["completes_at"] >= entry["ends_at"]
    assert manager.apply_receipt(Receipt("last-hour", Status.DELIVERED, clock.now)) is (
        Outcome.APPLIED
    )


def test_one_number_has_one_hash_however_it_is_written():
    manager = make(Clock(at("2026-11-30T10:00")))
    spellings = ["+16505551234", "16505551234", "+1 650-555-1234", "+1 (650) 555 1234"]
    assert len({manager.redact(number) for number in spellings}) == 1
    assert manager.redact("16505551235") != manager.redact("16505551234")
