"""Delivery insights in the manager: latency percentiles from bounded histograms, and per-tag
funnels (DESIGN.md, "Delivery insights")."""

from __future__ import annotations

import math
import sys

from hypothesis import given, settings
from hypothesis import strategies as st

from plugin.core.latency import MAX_BUCKET, bucket_of, bucket_value, latency_view, percentile
from plugin.core.manager import MessageSessionManager
from plugin.core.model import COUNTER_KEYS, Receipt, Status
from tests.clock import Clock, at

NOW = at("2026-11-30T10:00")


def make(**options) -> tuple[MessageSessionManager, Clock]:
    clock = Clock(NOW)
    return MessageSessionManager(clock=clock, **options), clock


def nearest_rank(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(fraction * len(ordered))) - 1]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(min_value=1.0, max_value=2_000_000.0), min_size=1, max_size=200),
    st.sampled_from([0.5, 0.9, 0.99]),
)
def test_percentiles_are_within_five_percent_of_the_exact_ones(values, fraction):
    histogram: dict[int, int] = {}
    for value in values:
        histogram[bucket_of(value)] = histogram.get(bucket_of(value), 0) + 1
    estimate = percentile(histogram, fraction)
    exact = nearest_rank(values, fraction)
    assert estimate is not None
    assert abs(estimate - exact) <= 0.05 * exact + 0.001


def test_sub_second_latencies_and_negative_ones_report_zero_and_the_buckets_are_bounded():
    assert bucket_of(-5.0) == bucket_of(0.0) == bucket_of(0.99) == 0
    assert bucket_value(0) == 0.0
    assert bucket_of(10 * 365 * 86400.0) == MAX_BUCKET
    view = latency_view({}, {})
    assert view == {
        kind: {"count": 0, "p50": None, "p90": None, "p99": None} for kind in ("delivered", "read")
    }


def test_latency_from_send_to_first_delivered_and_first_read():
    manager, clock = make()
    for index, (delivered_after, read_after) in enumerate([(2, 60), (4, 120), (10, 600)]):
        manager.track_sent(f"m{index}", sent_at=NOW)
        manager.apply_receipt(Receipt(f"m{index}", Status.DELIVERED, NOW + delivered_after))
        manager.apply_receipt(Receipt(f"m{index}", Status.READ, NOW + read_after))
    clock.set(NOW + 3600)
    stats = manager.get_all_stats()
    latency = stats["sessions"][0]["latency"]
    assert latency["delivered"]["count"] == 3 and latency["read"]["count"] == 3
    assert abs(latency["delivered"]["p50"] - 4) <= 0.2
    assert abs(latency["read"]["p99"] - 600) <= 30
    assert stats["summary"]["latency"] == latency


def test_a_read_without_delivered_counts_for_both_and_negative_differences_clamp():
    manager, _ = make()
    manager.track_sent("m1", sent_at=NOW)
    manager.apply_receipt(Receipt("m1", Status.READ, NOW - 3))  # clocks disagree: clamp to 0
    latency = manager.get_all_stats()["sessions"][0]["latency"]
    assert latency["delivered"] == {"count": 1, "p50": 0.0, "p90": 0.0, "p99": 0.0}
    assert latency["read"]["count"] == 1


def test_a_message_adopted_past_sent_has_no_latency_but_one_adopted_from_sent_has():
    manager, clock = make()
    clock.set(NOW + 120)
    manager.apply_receipt(Receipt("adopted-read", Status.READ, NOW + 100))
    manager.apply_receipt(Receipt("adopted-sent", Status.SENT, NOW))
    manager.apply_receipt(Receipt("adopted-sent", Status.DELIVERED, NOW + 30))
    latency = manager.get_all_stats()["sessions"][0]["latency"]
    assert latency["delivered"]["count"] == 1
    assert abs(latency["delivered"]["p50"] - 30) <= 1.5


def test_latency_survives_into_history():
    manager, clock = make(ack_tracking_window="1h")
    manager.track_sent("m1", sent_at=NOW)
    manager.apply_receipt(Receipt("m1", Status.DELIVERED, NOW + 5))
    clock.set(NOW + 2 * 86400)
    manager.cleanup()
    entry = manager.get_all_stats()["history"][0]
    assert entry["latency"]["delivered"]["count"] == 1
    assert entry["latency"]["read"]["p50"] is None


def funnel_adds_up(funnel: dict[str, int]) -> bool:
    return funnel["sent"] == (
        funnel["delivered"]
        + funnel["failed"]
        + funnel["pending"]
        + funnel["expired"]
        + funnel["evicted"]
    )


def test_tag_funnels_have_every_counter_and_add_up():
    manager, clock = make(ack_tracking_window="1h")
    manager.track_sent("r1", tag="appointment_reminder")
    manager.track_sent("r2", tag="appointment_reminder")
    manager.track_sent("l1", tag="lab_results")
    manager.track_sent("u1")
    manager.apply_receipt(Receipt("r1", Status.READ, NOW + 5))
    manager.apply_receipt(Receipt("l1", Status.FAILED, NOW + 5))
    tags = manager.get_all_stats()["sessions"][0]["tags"]
    assert set(tags) == {"appointment_reminder", "lab_results"}  # untagged: in no tag
    reminders = tags["appointment_reminder"]
    assert set(reminders) == set(COUNTER_KEYS)
    assert (reminders["sent"], reminders["delivered"], reminders["read"]) == (2, 1, 1)
    assert reminders["pending"] == 1
    assert tags["lab_results"]["failed"] == 1
    clock.set(NOW + 2 * 3600)  # r2's window ends: it expires in its tag too
    tags = manager.get_all_stats()["sessions"][0]["tags"]
    assert tags["appointment_reminder"]["expired"] == 1
    assert all(funnel_adds_up(funnel) for funnel in tags.values())


def test_tags_past_the_limit_count_as_other_and_eviction_reaches_the_tag():
    manager, _ = make(max_tags_per_session=2, max_tracked_messages=3)
    for index, tag in enumerate(["a", "b", "c", "d"]):
        manager.track_sent(f"m{index}", tag=tag)
    tags = manager.get_all_stats()["sessions"][0]["tags"]
    assert set(tags) == {"a", "b", "other"}
    assert tags["a"]["evicted"] == 1 and tags["a"]["pending"] == 0  # m0 went with the cap
    assert tags["other"]["sent"] == 2
    assert all(funnel_adds_up(funnel) for funnel in tags.values())


def test_an_untagged_record_stays_a_60_bit_int_and_a_tagged_one_grows_by_4_bytes_at_most():
    manager, _ = make()
    manager.track_sent("plain", recipient="16505551234")
    manager.track_sent("tagged", recipient="16505551234", tag="appointment_reminder")
    records = manager.sessions[0].records
    assert records["plain"].bit_length() <= 60
    assert sys.getsizeof(records["tagged"]) - sys.getsizeof(records["plain"]) <= 4


def test_heap_with_every_tag_and_latency_bucket_used_stays_within_the_bound():
    import gc
    import tracemalloc

    clock = Clock(NOW)
    cap = 1500
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        manager = MessageSessionManager(
            clock=clock,
            ack_tracking_window="1h",
            session_period="1h",
            max_session_age="2h",
            max_history_size=4,
            max_tracked_messages=cap,
            max_tags_per_session=62,
        )
        n = 0
        for hour in range(6):
            for index in range(cap + cap // 4):
                message_id = f"wamid.{n:0122d}"
                tag = f"template-{index % 70:02d}-" + "é" * 50  # 70 tags: past the limit
                manager.track_sent(message_id, recipient=str(16505550000 + n), tag=tag)
                delay = 1.1 ** (n % 100)  # many latency buckets
                manager.apply_receipt(Receipt(message_id, Status.READ, clock.now + delay))
                n += 1
                clock.advance(1)
            clock.set(NOW + (hour + 1) * 3600 - 1)
        assert manager.history_size == 4
        assert len(manager.history[-1].tags) == 63
        gc.collect()
        growth = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert growth <= manager.memory_bound_bytes(), (growth, manager.memory_bound_bytes())
