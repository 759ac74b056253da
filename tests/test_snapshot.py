"""Restarts without loss: the manager's state exported, written atomically, restored."""

from __future__ import annotations

import json
import logging

import pytest

from plugin.core.manager import MessageSessionManager
from plugin.core.model import Outcome, Receipt, Status
from plugin.core.state import STATE_VERSION, StateError, export_state, restore
from plugin.stores.snapshot import load_snapshot, save_snapshot
from tests.clock import Clock, at

KEY = "snapshot-test-key"


def busy_manager(clock: Clock, **options: object) -> MessageSessionManager:
    """Two days of traffic: yesterday's session still active, today's half delivered."""
    manager = MessageSessionManager(clock=clock, redaction_key=KEY, **options)
    for day in ("2026-11-29", "2026-11-30"):
        clock.set(at(f"{day}T08:00"))
        for i in range(40):
            clock.advance(minutes=5)
            manager.track_sent(f"wamid.{day}.{i:03d}", "16505551234")
        for i in range(0, 40, 2):
            manager.apply_receipt(Receipt(f"wamid.{day}.{i:03d}", Status.READ, clock()))
        manager.apply_receipt(Receipt(f"wamid.{day}.001", Status.FAILED, clock()))
    return manager


def restored(manager: MessageSessionManager, clock: Clock, **options: object):
    state = json.loads(json.dumps(export_state(manager)))
    return restore(state, clock=clock, redaction_key=KEY, **options)


def test_a_restored_manager_reports_exactly_the_same_views():
    clock = Clock(at("2026-11-29T00:00"))
    manager = busy_manager(clock)
    again = restored(manager, clock)
    assert again.get_all_stats() == manager.get_all_stats()
    assert list(again.records()) == list(manager.records())


def test_receipts_for_messages_sent_before_the_restart_are_applied_not_unknown():
    clock = Clock(at("2026-11-29T00:00"))
    again = restored(busy_manager(clock), clock)
    assert again.apply_receipt(Receipt("wamid.2026-11-30.003", Status.DELIVERED, clock())) == (
        Outcome.APPLIED
    )
    assert again.apply_receipt(Receipt("wamid.2026-11-30.002", Status.READ, clock())) == (
        Outcome.DUPLICATE
    )


def test_tombstones_survive_so_a_receipt_after_release_stays_late():
    clock = Clock(at("2026-11-29T00:00"))
    manager = busy_manager(clock)
    clock.set(at("2026-11-30T09:00"))  # yesterday's first messages are past their window
    manager.cleanup()
    again = restored(manager, clock)
    assert again.apply_receipt(Receipt("wamid.2026-11-29.000", Status.READ, clock())) == (
        Outcome.LATE
    )


def test_smaller_caps_apply_at_once_on_restore():
    clock = Clock(at("2026-11-29T00:00"))
    manager = busy_manager(clock)
    again = restored(manager, clock, max_tracked_messages=10, max_history_size=0)
    stats = again.get_all_stats()["summary"]
    assert stats["tracked_messages"] == 10
    assert again.tombstone_count <= 10
    assert (
        stats["sent"]
        == stats["delivered"]
        + stats["failed"]
        + stats["pending"]
        + stats["expired"]
        + stats["evicted"]
    )
    assert stats["evicted"] > 0


def test_recipients_are_dropped_when_the_redaction_key_changed():
    clock = Clock(at("2026-11-29T00:00"))
    manager = busy_manager(clock)
    state = json.loads(json.dumps(export_state(manager)))
    again = restore(state, clock=clock, redaction_key="another key")
    assert {recipient for *_, recipient in again.records()} == {None}
    assert again.get_all_stats()["summary"] == manager.get_all_stats()["summary"]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda s: s.update(version=STATE_VERSION + 1), "version"),
        (lambda s: s.update(format="something else"), "not a wa-sessions state"),
        (lambda s: s["sessions"][0].update(counters=[1, 2]), "counters"),
        (lambda s: s["sessions"][0].update(records=[["id", "not an int"]]), "records"),
        (lambda s: s.pop("receipts"), "malformed"),
    ],
)
def test_a_state_it_does_not_understand_is_refused(mutate, message):
    clock = Clock(at("2026-11-29T00:00"))
    state = json.loads(json.dumps(export_state(busy_manager(clock))))
    mutate(state)
    with pytest.raises(StateError, match=message):
        restore(state, clock=clock)


def test_a_snapshot_file_round_trips_and_leaves_no_temporary_file(tmp_path):
    clock = Clock(at("2026-11-29T00:00"))
    manager = busy_manager(clock)
    path = tmp_path / "state" / "wa-sessions.json"
    size = save_snapshot(manager, path)
    assert path.stat().st_size == size
    assert [p.name for p in path.parent.iterdir()] == ["wa-sessions.json"]
    again, extra = load_snapshot(path, clock=clock, redaction_key=KEY)
    assert again.get_all_stats() == manager.get_all_stats()
    assert extra == {}


def test_extra_data_is_saved_beside_the_state(tmp_path):
    clock = Clock(at("2026-11-29T00:00"))
    path = tmp_path / "state.json"
    save_snapshot(busy_manager(clock), path, extra={"webhooks": {"meta": {"requests": 3}}})
    _, extra = load_snapshot(path, clock=clock)
    assert extra == {"webhooks": {"meta": {"requests": 3}}}


def test_no_file_means_an_empty_manager(tmp_path):
    manager, extra = load_snapshot(tmp_path / "missing.json", clock=Clock(0))
    assert manager.tracked_messages == 0
    assert extra == {}


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b"\xff\xfe",
        json.dumps({"format": "wa-sessions-state", "version": 99}).encode(),
    ],
)
def test_an_unusable_file_is_set_aside_and_the_server_starts_empty(tmp_path, caplog, content):
    path = tmp_path / "state.json"
    path.write_bytes(content)
    with caplog.at_level(logging.ERROR, logger="plugin.stores.snapshot"):
        manager, extra = load_snapshot(path, clock=Clock(0))
    assert manager.tracked_messages == 0
    assert extra == {}
    assert not path.exists()
    (aside,) = tmp_path.glob("state.json.unusable-*")
    assert aside.read_bytes() == content
    assert "moved to" in caplog.text and "starting with empty state" in caplog.text
