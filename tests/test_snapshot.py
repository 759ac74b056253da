"""Restarts without loss: the manager's state exported, written atomically, restored."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from plugin.core.manager import MessageSessionManager
from plugin.core.model import Outcome, Receipt, Status
from plugin.core.restore import restore
from plugin.core.state import STATE_VERSION, StateError, export_state
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


# -- issue 10: snapshots off the loop, format version, bad files, recipients ------------------

from plugin.core.state import copy_state, encode_state  # noqa: E402
from plugin.stores.snapshot import save_snapshot_async  # noqa: E402


def encoded(manager: MessageSessionManager, slice_size: int = 7, **kw) -> dict:
    return json.loads(b"".join(encode_state(copy_state(manager, **kw), slice_size)))


def test_the_sliced_encoding_is_the_exported_state():
    clock = Clock(at("2026-11-29T00:00"))
    manager = busy_manager(clock)
    session = manager.sessions[-1]
    session.order.append(session.order[0])  # an id twice in the send order: written once
    manager.apply_receipt(Receipt("wamid.2026-11-30.039", Status.READ, clock() + 86400 * 3))
    extra = {"webhooks": {"meta": {"requests": 3}}}
    document = encoded(manager, extra=extra)
    assert document == export_state(manager, extra)
    assert document["version"] == STATE_VERSION == 2
    ids = document["sessions"][-1]["records"]["ids"]
    assert len(ids) == len(set(ids)) == len(manager.sessions[-1].records)
    assert restore(document, clock=clock, redaction_key=KEY).get_all_stats() == (
        manager.get_all_stats()
    )


def test_each_piece_encodes_at_most_one_slice_of_records():
    clock = Clock(at("2026-11-29T00:00"))
    manager = busy_manager(clock)
    pieces = list(encode_state(copy_state(manager), slice_size=5))
    for piece in pieces:
        assert piece.count(b'"wamid.') <= 5
    assert len(pieces) > manager.tracked_messages / 5


def test_the_copy_is_the_state_when_it_was_taken():
    clock = Clock(at("2026-11-29T00:00"))
    manager = busy_manager(clock)
    before = export_state(manager)
    copy = copy_state(manager)
    manager.track_sent("wamid.later", "16505550000")
    manager.apply_receipt(Receipt("wamid.2026-11-30.003", Status.READ, clock()))
    assert json.loads(b"".join(encode_state(copy))) == before


async def test_an_async_snapshot_leaves_the_loop_free_between_slices(tmp_path, monkeypatch):
    monkeypatch.setattr("plugin.core.state.SLICE_SIZE", 500)
    monkeypatch.setattr(encode_state, "__defaults__", (500,))
    clock = Clock(at("2026-11-30T08:00"))
    manager = MessageSessionManager(clock=clock, redaction_key=KEY)
    for n in range(20_000):
        manager.track_sent(f"wamid.{n:08d}", "16505551234")
    ticks = 0
    done = False

    async def ticker() -> None:
        nonlocal ticks
        while not done:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.get_running_loop().create_task(ticker())
    await asyncio.sleep(0)
    size = await save_snapshot_async(manager, tmp_path / "state.json")
    done = True
    await task
    assert ticks >= 20_000 // 500  # the loop ran between the slices
    again, _ = load_snapshot(tmp_path / "state.json", clock=clock, redaction_key=KEY)
    assert (tmp_path / "state.json").stat().st_size == size
    assert list(again.records()) == list(manager.records())


def version_1(manager: MessageSessionManager) -> dict:
    """The state as version 1 wrote it: [id, packed] pairs, the layout as one string."""
    import hashlib

    state = export_state(manager)
    key = hashlib.sha256(manager._codec.key).hexdigest()[:16]
    state["version"] = 1
    state["layout"] = f"redact={manager.options.redact_recipients};key={key}"
    for session in state["sessions"]:
        records = session["records"]
        session["records"] = [list(p) for p in zip(records["ids"], records["packed"], strict=True)]
    return state


def test_a_version_1_file_is_migrated_with_a_log_line(tmp_path, caplog):
    clock = Clock(at("2026-11-29T00:00"))
    manager = busy_manager(clock)
    path = tmp_path / "state.json"
    path.write_text(json.dumps(version_1(manager)))
    with caplog.at_level(logging.WARNING):
        again, _ = load_snapshot(path, clock=clock, redaction_key=KEY)
    assert "version 1 migrated" in caplog.text
    assert again.get_all_stats() == manager.get_all_stats()
    assert list(again.records()) == list(manager.records())
    save_snapshot(again, path)
    assert json.loads(path.read_bytes())["version"] == STATE_VERSION


@pytest.mark.parametrize(
    ("mutate", "why"),
    [
        (lambda s: s["sessions"][0].update(start=1e999), "cannot be restored"),  # inf
        (lambda s: s["sessions"][0].update(start=10**400), "cannot be restored"),  # float()
        (lambda s: s["tombstones"].append([1.0, [2**64]]), "cannot be restored"),  # array('Q')
        (lambda s: s["tombstones"].append([1.0, [-1]]), "cannot be restored"),
        (lambda s: s["sessions"][-1]["records"]["packed"].__setitem__(0, 7), "cannot be restored"),
        (lambda s: s["sessions"][-1]["records"]["packed"].__setitem__(0, 2**200), "restored"),
        (lambda s: s["sessions"][-1]["records"]["ids"].__setitem__(0, "é"), "cannot be restored"),
        (lambda s: s["sessions"][-1]["records"]["ids"].pop(), "cannot be restored"),
        (lambda s: s.update(layout="redact=True"), "cannot be restored"),
        (lambda s: s.update(hook_errors=1e999), "cannot be restored"),
        (lambda s: s.update(extra=[[[]] * 3]), None),  # odd extra data: ignored, not fatal
    ],
)
def test_a_bad_snapshot_is_moved_aside_instead_of_crashing(tmp_path, caplog, mutate, why):
    clock = Clock(at("2026-11-29T00:00"))
    state = export_state(busy_manager(clock))
    mutate(state)
    path = tmp_path / "state.json"
    path.write_text(json.dumps(state))
    with caplog.at_level(logging.ERROR, logger="plugin.stores.snapshot"):
        manager, extra = load_snapshot(path, clock=clock, redaction_key=KEY)
    assert extra == {}
    if why is None:
        assert manager.tracked_messages == 40 and path.exists()
        return
    assert manager.tracked_messages == 0
    assert not path.exists()
    assert len(list(tmp_path.glob("state.json.unusable-*"))) == 1
    assert why in caplog.text and "moved to" in caplog.text


def test_deeply_nested_json_is_moved_aside(tmp_path, caplog):
    path = tmp_path / "state.json"
    path.write_bytes(b"[" * 200_000 + b"]" * 200_000)
    with caplog.at_level(logging.ERROR, logger="plugin.stores.snapshot"):
        manager, _ = load_snapshot(path, clock=Clock(0))
    assert manager.tracked_messages == 0 and not path.exists()
    assert "moved to" in caplog.text


def test_an_unreadable_snapshot_is_logged_and_the_server_starts_empty(
    tmp_path, caplog, monkeypatch
):
    from pathlib import Path

    path = tmp_path / "state.json"
    save_snapshot(busy_manager(Clock(at("2026-11-29T00:00"))), path)
    original = Path.read_bytes

    def refuse(self: Path) -> bytes:
        if self == path:
            raise PermissionError(13, "Permission denied", str(self))
        return original(self)

    monkeypatch.setattr(Path, "read_bytes", refuse)
    with caplog.at_level(logging.ERROR, logger="plugin.stores.snapshot"):
        manager, extra = load_snapshot(path, clock=Clock(0))
    assert manager.tracked_messages == 0 and extra == {}
    assert "cannot be read" in caplog.text and "Permission denied" in caplog.text
    (tmp_path / "state-dir").mkdir()
    manager, _ = load_snapshot(tmp_path / "state-dir", clock=Clock(0))  # a directory: logged
    assert manager.tracked_messages == 0 and (tmp_path / "state-dir").is_dir()


def test_recipient_hashes_survive_a_restart_without_a_redaction_key(tmp_path):
    clock = Clock(at("2026-11-30T08:00"))
    manager = MessageSessionManager(clock=clock)  # redacted, random key per process
    manager.track_sent("wamid.A", "16505551234")
    manager.track_sent("wamid.B")
    path = tmp_path / "state.json"
    save_snapshot(manager, path)
    state = json.loads(path.read_bytes())
    assert state["layout"] == {"redact": True, "key": None}  # no key, no fingerprint
    again, _ = load_snapshot(path, clock=clock)
    assert list(again.records()) == list(manager.records())
    (hashed,) = [r for *_, r in again.records() if r is not None]
    assert hashed == manager.redact("16505551234") and "16505551234" not in path.read_text()


def test_the_redaction_key_is_never_stored():
    clock = Clock(at("2026-11-29T00:00"))
    text = json.dumps(export_state(busy_manager(clock)))
    assert KEY not in text and "16505551234" not in text


def test_switching_redaction_on_hashes_the_saved_numbers_and_off_keeps_hashes():
    clock = Clock(at("2026-11-30T08:00"))
    plain = MessageSessionManager(clock=clock, redact_recipients=False, redaction_key=KEY)
    plain.track_sent("wamid.A", "16505551234", tag="reminder")
    plain.track_sent("wamid.B", "not-a-number")
    state = json.loads(json.dumps(export_state(plain)))
    redacted = restore(state, clock=clock, redaction_key=KEY)
    recipients = {mid: r for mid, *_, r in redacted.records()}
    assert recipients["wamid.A"] == redacted.redact("16505551234")
    assert recipients["wamid.B"] == dict((m, r) for m, *_, r in plain.records())["wamid.B"]
    back = restore(
        json.loads(json.dumps(export_state(redacted))),
        clock=clock,
        redact_recipients=False,
        redaction_key=KEY,
    )
    assert {mid: r for mid, *_, r in back.records()} == recipients
    tags = back.get_all_stats()["sessions"][0]["tags"]
    assert tags["reminder"]["sent"] == 1  # the record's tag bits survive the conversions


# -- issue 10: a consistent snapshot while the state changes between its slices ---------------

from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import plugin.stores.snapshot as snapshot_module  # noqa: E402
from plugin.core.state import _strings  # noqa: E402


def churning_manager(clock: Clock) -> MessageSessionManager:
    """Yesterday's session and today's, with tombstones, history and a capped size."""
    clock.set(at("2026-11-28T08:00"))
    manager = MessageSessionManager(
        clock=clock, redaction_key=KEY, max_tracked_messages=3_000, max_history_size=3
    )
    manager.track_sent("wamid.old", "16505550000")
    clock.set(at("2026-11-29T20:00"))
    for n in range(1_000):
        manager.track_sent(f"wamid.y{n:05d}", "16505551234", clock() - 3600 + n)
    clock.set(at("2026-11-30T08:00"))
    for n in range(1_500):
        manager.track_sent(f"wamid.t{n:05d}", "16505551234", clock() - 3600 + n, tag="reminder")
    for n in range(0, 1_500, 3):
        manager.apply_receipt(Receipt(f"wamid.t{n:05d}", Status.DELIVERED, clock()))
    assert manager.history and manager.tombstone_count  # the 28th completed, its record gone
    return manager


async def churn(
    manager: MessageSessionManager, clock: Clock, copied: asyncio.Event, saving: asyncio.Task
) -> int:
    """Between the snapshot's slices: receipts, sends (in and out of send order), expiries,
    evictions and a released id sent again. Returns how many steps ran while it was saving."""
    await copied.wait()
    steps = 0
    for step in range(200):
        n = step * 7 % 1_500
        manager.apply_receipt(Receipt(f"wamid.t{n:05d}", Status.READ, clock()))
        manager.apply_receipt(Receipt(f"wamid.y{n % 1_000:05d}", Status.FAILED, clock()))
        manager.track_sent(f"wamid.new{step:04d}", "16505559999")
        manager.track_sent(f"wamid.back{step:04d}", None, clock() - 7_000)  # placed mid-order
        if step == 50:
            clock.set(at("2026-11-30T21:00"))  # yesterday's first sends pass their window
            manager.cleanup()
        if step == 60:
            manager.track_sent("wamid.y00000", "16505551234")  # released, then sent again
        steps += not saving.done()
        await asyncio.sleep(0)
    return steps


async def test_a_snapshot_is_the_state_at_its_copy_while_the_state_changes(tmp_path, monkeypatch):
    monkeypatch.setattr(encode_state, "__defaults__", (50,))  # many slices, many changes
    clock = Clock(at("2026-11-30T08:00"))
    manager = churning_manager(clock)
    expected = json.loads(json.dumps(export_state(manager, {"n": 1})))
    copied = asyncio.Event()

    def copy_then_signal(*args: object) -> object:
        copy = copy_state(*args)  # type: ignore[arg-type]
        copied.set()
        return copy

    monkeypatch.setattr(snapshot_module, "copy_state", copy_then_signal)
    path = tmp_path / "state.json"
    saving = asyncio.create_task(save_snapshot_async(manager, path, {"n": 1}))
    steps = await churn(manager, clock, copied, saving)
    async with asyncio.timeout(30):
        await saving
    assert steps > 60  # past the expiry and the id sent again, all between slices
    assert manager.get_all_stats()["summary"]["expired"] > 0  # the churn did move the state
    assert json.loads(path.read_bytes()) == expected
    again, extra = load_snapshot(path, clock=clock, redaction_key=KEY)
    reference = restore(expected, clock=clock, redaction_key=KEY)
    assert extra == {"n": 1}
    assert again.get_all_stats() == reference.get_all_stats()
    assert list(again.records()) == list(reference.records())


def test_released_and_repeated_ids_in_the_send_order_are_written_once():
    clock = Clock(at("2026-11-30T08:00"))
    manager = churning_manager(clock)
    session = manager.sessions[-1]
    session.order.insert(10, "wamid.t00003")  # repeated
    session.order.insert(20, "wamid.gone")  # released
    del session.records["wamid.t00001"]  # a record the send order still names...
    session.records["wamid.nowhere"] = session.records.pop("wamid.t00002")  # ...and one it lacks
    document = encoded(manager, slice_size=4)
    assert document == export_state(manager)
    records = document["sessions"][-1]["records"]
    assert len(records["ids"]) == len(set(records["ids"])) == len(session.records)
    assert records["ids"][-1] == "wamid.nowhere"


@given(st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=20))
def test_ids_are_encoded_byte_for_byte_as_json_dumps(ids: list[str]):
    assert _strings(ids) == json.dumps(ids, separators=(",", ":"))[1:-1].encode()


@given(st.lists(st.text(st.characters(min_codepoint=32, max_codepoint=126), min_size=1)))
def test_printable_ascii_ids_quotes_and_backslashes_included(ids: list[str]):
    assert json.loads(b"[" + _strings(ids) + b"]") == ids


async def test_an_async_snapshot_pauses_as_long_as_it_worked(tmp_path, monkeypatch):
    monkeypatch.setattr(snapshot_module, "PAUSE_AFTER", 0.0)  # a pause after every piece
    pauses: list[float] = []
    sleep = asyncio.sleep

    async def recorded(delay: float, *args: object) -> None:
        pauses.append(delay)
        await sleep(0)

    monkeypatch.setattr(snapshot_module.asyncio, "sleep", recorded)
    clock = Clock(at("2026-11-30T08:00"))
    manager = churning_manager(clock)
    await save_snapshot_async(manager, tmp_path / "state.json")
    assert len(pauses) > manager.tracked_messages / 2_500 and all(p > 0 for p in pauses)
