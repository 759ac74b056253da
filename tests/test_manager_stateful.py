"""The manager's bounds and funnel hold whatever happens, in any order (hypothesis, stateful).

Rules send messages, apply receipts of every status for known and unknown ids (with and without
timestamps, some old, some from the future), move the injected clock and run cleanup(). After
every step the invariants of DESIGN.md hold: the bounds, the counter identity of every session
and history entry, pending = open records, one outcome per receipt.
"""

from __future__ import annotations

from collections import Counter

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

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
CAP = 6
HISTORY = 3
SENT_IDS = [f"wamid.{n}" for n in range(12)]
STRANGER_IDS = [f"stranger.{n}" for n in range(6)]
OPEN = {Status.QUEUED, Status.SENT}

CONFIGS = [
    # (options, first instant): short windows so that every rule matters within a few steps.
    (
        {"ack_tracking_window": "2h", "session_period": "1h", "max_session_age": "2h"},
        at("2026-11-30T22:00"),
    ),
    (
        {
            "ack_tracking_window": "3h",
            "session_period": "4h",
            "max_session_age": "5h",
            "timezone": "Europe/Berlin",
        },
        at("2026-10-24T20:00", "Europe/Berlin"),
    ),
    (
        {
            "ack_tracking_window": "5h",
            "session_period": "1d",
            "max_session_age": "1d",
            "timezone": "America/Sao_Paulo",
            "keep_history": False,
        },
        at("2026-11-30T20:00"),
    ),
    (
        {
            "ack_tracking_window": "30m",
            "session_period": "2h",
            "max_session_age": "6h",
            "track_unknown_receipts": False,
        },
        at("2026-03-29T00:30", "Europe/Berlin"),
    ),
]


class Recorder:
    """Event sink checking what the events promise as they arrive."""

    def __init__(self) -> None:
        self.completed: list[str] = []
        self.expired = 0
        self.evicted = 0

    def status_changed(self, change: StatusChange) -> None:
        assert change.outcome in (Outcome.APPLIED, Outcome.ADOPTED)

    def message_expired(self, expired: MessageExpired) -> None:
        assert expired.status in OPEN
        # DESIGN.md rule 4: a pending record evicted by the cap is announced like an expiry.
        assert expired.reason in ("window", "session", "evicted")
        if expired.reason == "evicted":
            self.evicted += 1
        else:
            self.expired += 1

    def session_completed(self, summary: SessionSummary) -> None:
        assert summary.session_id not in self.completed, "session_completed fired twice"
        self.completed.append(summary.session_id)

    def cleanup_completed(self, report: CleanupReport) -> None:
        assert report.remaining_history <= HISTORY


class ManagerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.outcomes: Counter[str] = Counter()
        self.applied = 0
        self.events = Recorder()

    @initialize(config=st.sampled_from(CONFIGS))
    def start(self, config):
        options, first = config
        self.clock = Clock(first)
        self.manager = MessageSessionManager(
            clock=self.clock,
            events=self.events,
            max_tracked_messages=CAP,
            max_history_size=HISTORY,
            **options,
        )
        self.window = self.manager.options.ack_tracking_window

    # -- rules ----------------------------------------------------------------------------------

    @rule(
        message_id=st.sampled_from(SENT_IDS),
        recipient=st.sampled_from([None, "16505551234", "447700900123"]),
        ago=st.none() | st.integers(0, 3 * 3600),
    )
    def track_sent(self, message_id, recipient, ago):
        sent_at = None if ago is None else self.clock.now - ago
        result = self.manager.track_sent(message_id, recipient=recipient, sent_at=sent_at)
        assert isinstance(result, bool)

    @rule(
        message_id=st.sampled_from(SENT_IDS + STRANGER_IDS),
        status=st.sampled_from(list(Status)),
        age=st.none() | st.integers(-30, 4 * 3600),
        code=st.sampled_from([None, "131026", "130472"]),
    )
    def receipt(self, message_id, status, age, code):
        timestamp = None if age is None else self.clock.now - age
        error = ReceiptError(code) if status == Status.FAILED and code else None
        outcome = self.manager.apply_receipt(Receipt(message_id, status, timestamp, error=error))
        self.applied += 1
        assert isinstance(outcome, Outcome)
        self.outcomes[outcome.value] += 1
        if outcome in (Outcome.APPLIED, Outcome.DUPLICATE, Outcome.STALE, Outcome.ADOPTED):
            assert message_id in self.records()

    @rule(seconds=st.sampled_from([1, 59, 600, 1800, 3600, 3 * 3600, 26 * 3600]))
    def advance(self, seconds):
        self.clock.advance(seconds)

    @rule()
    def cleanup(self):
        report = self.manager.cleanup()
        assert report.remaining_history == self.manager.history_size
        assert report.expired_messages >= 0
        # After a cleanup nothing outlives its window.
        for message_id, _, _, sent_at, _ in self.manager.records():
            assert sent_at + self.window > self.clock.now, message_id

    @precondition(lambda self: self.outcomes)
    @rule()
    def views(self):
        stats = self.manager.get_all_stats()
        summary = stats["summary"]
        assert summary["receipts"] == {key: self.outcomes[key] for key in OUTCOME_KEYS}
        assert sum(summary["receipts"].values()) == self.applied
        for key in COUNTER_KEYS:
            assert summary[key] == sum(s[key] for s in stats["sessions"])
        info = self.manager.get_debug_info()["manager_stats"]
        assert info["tracked_messages"] == summary["tracked_messages"]
        assert info["active_session_count"] == summary["active_sessions"]

    # -- invariants -----------------------------------------------------------------------------

    def records(self) -> dict[str, tuple[str, Status]]:
        return {m: (s, status) for m, s, status, _, _ in self.manager.records()}

    @invariant()
    def bounds_hold(self):
        manager = self.manager
        assert len(manager.sessions) <= manager.max_active_sessions()
        assert manager.history_size <= HISTORY
        assert len(manager.history) == manager.history_size
        if not manager.options.keep_history:
            assert manager.history == []
        assert manager.tracked_messages <= CAP
        assert manager.tombstone_count <= CAP

    @invariant()
    def every_funnel_adds_up(self):
        records = self.records()
        assert len(records) == self.manager.tracked_messages
        for session in self.manager.sessions:
            entry = session.stats()
            assert entry["sent"] == (
                entry["delivered"]
                + entry["failed"]
                + entry["pending"]
                + entry["expired"]
                + entry["evicted"]
            ), entry
            mine = [status for sid, status in records.values() if sid == entry["session_id"]]
            assert entry["tracked_messages"] == len(mine)
            assert entry["pending"] == sum(status in OPEN for status in mine), entry
            # Released records keep their place in the funnel: the counters are cumulative.
            assert entry["failed"] >= sum(status == Status.FAILED for status in mine)
            assert entry["delivered"] >= sum(
                status in (Status.DELIVERED, Status.READ, Status.PLAYED) for status in mine
            )
            assert entry["delivered"] >= entry["read"] >= entry["played"] >= 0
            assert min(entry[key] for key in COUNTER_KEYS) >= 0
        for summary in self.manager.history:
            counters = summary.counters
            assert counters["pending"] == 0, summary
            assert counters["sent"] == (
                counters["delivered"]
                + counters["failed"]
                + counters["expired"]
                + counters["evicted"]
            ), summary
            assert counters["delivered"] >= counters["read"] >= counters["played"] >= 0

    @invariant()
    def every_receipt_has_one_outcome(self):
        assert sum(self.outcomes.values()) == self.applied
        attributed = sum(sum(s.stats()["receipts"].values()) for s in self.manager.sessions)
        assert attributed <= self.applied

    def teardown(self):
        if hasattr(self, "manager"):
            total = self.manager.get_all_stats()["summary"]["receipts"]
            assert total == {key: self.outcomes[key] for key in OUTCOME_KEYS}


ManagerMachine.TestCase.settings = settings(
    max_examples=100,
    stateful_step_count=50,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_manager_state_machine = ManagerMachine.TestCase
