"""Session periods: aligned to local midnight, named by day (and first hour), DST-aware."""

from __future__ import annotations

from itertools import pairwise

import pytest

from plugin.core.periods import PeriodCalendar
from tests.clock import at

HOUR = 3600.0


def test_a_day_period_runs_from_local_midnight_to_the_next():
    period = PeriodCalendar(86400, "UTC").period_of(at("2026-11-30T13:45"))
    assert period.session_id == "2026-11-30"
    assert (period.start, period.end) == (at("2026-11-30T00:00"), at("2026-12-01T00:00"))


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        ("2026-11-30T00:00", "2026-11-30"),
        ("2026-11-30T23:59:59", "2026-11-30"),
        ("2026-12-01T00:00", "2026-12-01"),
    ],
)
def test_the_boundaries_belong_to_the_period_that_starts_there(moment, expected):
    assert PeriodCalendar(86400, "UTC").period_of(at(moment)).session_id == expected


def test_days_begin_at_midnight_in_the_time_zone():
    calendar = PeriodCalendar(86400, "Asia/Kolkata")  # UTC+05:30
    period = calendar.period_of(at("2026-11-30T20:00"))  # 01:30 on Dec 1st in Kolkata
    assert period.session_id == "2026-12-01"
    assert period.start == at("2026-12-01T00:00", "Asia/Kolkata") == at("2026-11-30T18:30")


@pytest.mark.parametrize(
    ("hours", "moment", "name", "start"),
    [
        (1, "2026-11-30T07:30", "2026-11-30T07", "2026-11-30T07:00"),
        (6, "2026-11-30T07:30", "2026-11-30T06", "2026-11-30T06:00"),
        (8, "2026-11-30T23:59", "2026-11-30T16", "2026-11-30T16:00"),
        (12, "2026-11-30T12:00", "2026-11-30T12", "2026-11-30T12:00"),
        (3, "2026-11-30T02:59", "2026-11-30T00", "2026-11-30T00:00"),
    ],
)
def test_sub_day_periods_are_named_after_their_first_hour(hours, moment, name, start):
    period = PeriodCalendar(hours * HOUR, "UTC").period_of(at(moment))
    assert period.session_id == name
    assert period.start == at(start)
    assert period.end == period.start + hours * HOUR


@pytest.mark.parametrize(
    ("day", "next_day", "last_hours"),
    [("2026-03-29", "2026-03-30", 5), ("2026-10-25", "2026-10-26", 7)],
)
def test_on_a_dst_day_periods_count_hours_from_midnight_and_the_last_absorbs_the_change(
    day, next_day, last_hours
):
    tz = "Europe/Berlin"
    calendar = PeriodCalendar(6 * HOUR, tz)
    midnight, next_midnight = at(f"{day}T00:00", tz), at(f"{next_day}T00:00", tz)
    periods = []
    moment = midnight
    while moment < next_midnight:
        period = calendar.period_of(moment)
        periods.append(period)
        moment = period.end
    assert [p.session_id for p in periods] == [f"{day}T{h:02d}" for h in (0, 6, 12, 18)]
    assert [round((p.end - p.start) / HOUR) for p in periods] == [6, 6, 6, last_hours]
    assert periods[0].start == midnight
    assert periods[-1].end == next_midnight
    # Contiguous: each period ends where the next begins.
    assert all(a.end == b.start for a, b in pairwise(periods))


def test_on_a_dst_day_a_day_period_is_23_or_25_hours():
    calendar = PeriodCalendar(86400, "America/New_York")
    spring = calendar.period_of(at("2026-03-08T12:00", "America/New_York"))
    autumn = calendar.period_of(at("2026-11-01T12:00", "America/New_York"))
    assert (spring.end - spring.start, autumn.end - autumn.start) == (23 * HOUR, 25 * HOUR)


def test_a_zone_whose_midnight_does_not_exist_starts_its_day_at_the_first_instant():
    # Santiago springs forward at 24:00 on the first Saturday of September: Sept 6th, 2026
    # begins at 01:00 local time. The moment still falls in a period that contains it.
    tz = "America/Santiago"
    calendar = PeriodCalendar(86400, tz)
    moment = at("2026-09-06T12:00", tz)
    period = calendar.period_of(moment)
    assert period.start <= moment < period.end
    assert period.session_id == "2026-09-06"


def test_fixed_offset_zones_are_recognised():
    assert PeriodCalendar(86400, "UTC").fixed_offset
    assert PeriodCalendar(86400, "Asia/Kolkata").fixed_offset
    assert not PeriodCalendar(86400, "Europe/Berlin").fixed_offset
