"""Failure kinds (DESIGN.md, "Delivery insights"): the table, ``ReceiptError.kind``, the
``failures`` counts of sessions, history and summary on both stores, the events' kind, and the
failure-triage example plugin."""

from __future__ import annotations

import asyncio
import logging

import pytest

from examples.failure_triage import plugin as triage
from plugin.core.failures import (
    FAILURE_ADVICE,
    FAILURE_KINDS,
    META_KINDS,
    TWILIO_KINDS,
    failure_kind,
    failures_by_kind,
    sum_failures,
)
from plugin.core.model import Outcome, ReceiptError, Status, StatusChange
from tests.providers import meta_failed_status, meta_status, meta_status_body
from tests.serving import Clock, make_app
from tests.test_server import post_meta, stats
from tests.test_store_semantics import (  # noqa: F401 (clock, events, make_store: fixtures)
    DAY,
    HOUR,
    F,
    S,
    clock,
    events,
    make_store,
    one_session,
    rcpt,
)

#: The anchors DESIGN.md names for each kind.
ANCHORS = {
    "recipient": [("131026", "meta"), ("21211", "twilio"), ("63003", "twilio")],
    "window": [("131047", "meta"), ("63016", "twilio")],
    "limit": [("130429", "meta"), ("131048", "meta"), ("131049", "meta"), ("131056", "meta")],
    "template": [("132000", "meta"), ("132001", "meta"), ("132015", "meta"), ("132999", "meta")],
    "account": [("131042", "meta"), ("131031", "meta")],
    "provider": [("131000", "meta"), ("131016", "meta")],
}


@pytest.mark.parametrize("kind", sorted(ANCHORS))
def test_the_anchor_codes_of_each_kind(kind: str) -> None:
    for code, provider in ANCHORS[kind]:
        assert failure_kind(code, provider) == kind, code
        assert failure_kind(code) == kind, code  # the code alone says the same
        assert failure_kind(int(code), provider) == kind
        assert ReceiptError(code).kind == kind


def test_meta_and_twilio_codes_never_mean_two_things() -> None:
    # The per-session tallies count codes without their provider: a code must mean one kind.
    assert not set(META_KINDS) & set(TWILIO_KINDS)
    assert not any(code.startswith("132") and len(code) == 6 for code in TWILIO_KINDS)
    assert set(META_KINDS.values()) | set(TWILIO_KINDS.values()) <= set(FAILURE_KINDS)
    for code, kind in {**META_KINDS, **TWILIO_KINDS}.items():
        assert failure_kind(code) == kind


def test_what_is_not_a_known_code_is_unknown() -> None:
    for code in (None, "", "  ", "abc", "131026x", "999999", "²", "\ud800", True, 3.5, "other"):
        assert failure_kind(code) == "unknown", repr(code)
    assert failure_kind("131026", "waha") == "recipient"  # a forwarded Meta code
    assert failure_kind(" 131047 ") == "window"
    assert failure_kind("#131056") == "limit"
    assert ReceiptError(None, "ERROR", None).kind == "unknown"
    assert ReceiptError("131026", kind="window").kind == "window"  # an explicit kind stays
    assert set(FAILURE_ADVICE) == set(FAILURE_KINDS)


def test_failures_from_an_error_tally() -> None:
    tally = {
        "131026": 2,
        "63003": 1,
        "131047": 4,
        "130429": 1,
        "132001": 1,
        "unknown": 3,
        "other": 2,
        "131000": 1,
    }
    assert failures_by_kind(tally) == {
        "recipient": 3,
        "window": 4,
        "limit": 1,
        "template": 1,
        "provider": 1,
        "unknown": 5,
    }
    assert list(failures_by_kind(tally)) == [
        "recipient",
        "window",
        "limit",
        "template",
        "provider",
        "unknown",
    ]
    assert failures_by_kind({}) == {}
    assert sum_failures([{"recipient": 1}, {"recipient": 2, "limit": 1}, {}]) == {
        "recipient": 3,
        "limit": 1,
    }


# -- both stores -------------------------------------------------------------------------------


CODES = ["131026", "131026", "63016", "131047", "130429", "132015", "131042", "131016", None]
EXPECTED = {
    "recipient": 2,
    "window": 2,
    "limit": 1,
    "template": 1,
    "account": 1,
    "provider": 1,
    "unknown": 1,
}


async def test_failed_messages_are_counted_by_kind_in_sessions_summary_and_history(
    make_store,  # noqa: F811
    clock,  # noqa: F811
    events,  # noqa: F811
) -> None:
    store = await make_store(ack_tracking_window="2h", session_period="1d")
    for index, code in enumerate(CODES):
        await store.track_sent(f"m{index}")
        error = ReceiptError(code) if code else None
        await store.apply_receipt(rcpt(f"m{index}", F, clock(), error=error))
    await store.track_sent("fine")
    await store.apply_receipt(rcpt("fine", S, clock()))

    entry = await one_session(store)
    assert entry["failures"] == EXPECTED
    assert entry["failed"] == sum(EXPECTED.values())
    summary = (await store.get_all_stats())["summary"]
    assert summary["failures"] == EXPECTED

    kinds = [
        c.error.kind if c.error is not None else None
        for c in events.changes
        if c.new_status is Status.FAILED
    ]
    assert kinds == [
        "recipient",
        "recipient",
        "window",
        "window",
        "limit",
        "template",
        "account",
        "provider",
        None,
    ]  # a failure without an error has none

    clock.advance(seconds=DAY + 3 * HOUR)  # the day and its window are over
    await store.cleanup()
    stats_after = await store.get_all_stats()
    (history,) = stats_after["history"]
    assert history["failures"] == EXPECTED
    assert history["errors"]["131026"] == 2
    assert stats_after["summary"]["failures"] == {}  # no active session has failures
    (completed,) = events.completed
    assert completed.failures == EXPECTED
    assert completed.as_dict()["failures"] == EXPECTED


async def test_no_failures_means_an_empty_object(make_store, clock) -> None:  # noqa: F811
    store = await make_store()
    await store.track_sent("m1")
    assert (await one_session(store))["failures"] == {}
    assert (await store.get_all_stats())["summary"]["failures"] == {}


# -- over HTTP, and the example plugin ---------------------------------------------------------


async def test_the_triage_plugin_decides_from_the_kind(aiohttp_client, caplog) -> None:
    triage.DECISIONS.clear()
    app, _ = make_app({"plugins": ["examples.failure_triage.plugin"]}, clock=Clock())
    client = await aiohttp_client(app)
    statuses = [
        meta_failed_status("wamid.R", code=131026, title="Message undeliverable"),
        meta_failed_status("wamid.W", code=131047, title="Re-engagement message"),
        meta_failed_status("wamid.L", code=130429, title="Rate limit hit"),
        meta_failed_status("wamid.P", code=131000, title="Something went wrong"),
        meta_failed_status("wamid.A", code=131042, title="Business eligibility payment issue"),
        meta_failed_status("wamid.T", code=132001, title="Template does not exist"),
        meta_status("wamid.OK", "delivered"),
    ]
    with caplog.at_level(logging.WARNING, logger="examples.failure_triage"):
        response = await post_meta(client, meta_status_body(statuses))
        assert response.status == 200
        document = await stats(client)  # the admin route waits for queued events
        await _until_decided(6)
    decided = {d.message_id: (d.kind, d.action, d.retry_after) for d in triage.DECISIONS}
    assert decided == {
        "wamid.R": ("recipient", "call_patient", None),
        "wamid.W": ("window", "send_template", None),
        "wamid.L": ("limit", "retry_later", 900),
        "wamid.P": ("provider", "retry_later", 60),
        "wamid.A": ("account", "alert_ops", None),
        "wamid.T": ("template", "alert_ops", None),
    }
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "message wamid.R failed (recipient, code 131026" in logged and "call_patient" in logged
    assert "retry_later in 900s" in logged
    assert any(r.levelno == logging.ERROR and "alert_ops" in r.getMessage() for r in caplog.records)
    assert document["summary"]["failures"] == {
        "recipient": 1,
        "window": 1,
        "limit": 1,
        "template": 1,
        "account": 1,
        "provider": 1,
    }
    assert document["sessions"][0]["failures"] == document["summary"]["failures"]


async def _until_decided(count: int) -> None:
    for _ in range(200):
        if len(triage.DECISIONS) >= count:
            return
        await asyncio.sleep(0.01)


def test_the_triage_decision_of_a_change_without_an_error() -> None:
    change = StatusChange(
        "m1", "2026-11-30", Status.SENT, Status.FAILED, Outcome.APPLIED, None, "waha", 0.0, None
    )
    decision = triage.decide(change)
    assert decision is not None and (decision.kind, decision.action) == ("unknown", "alert_ops")
    delivered = StatusChange(
        "m1", "2026-11-30", Status.SENT, Status.DELIVERED, Outcome.APPLIED, None, "meta", 0.0, None
    )
    assert triage.decide(delivered) is None
