"""Manager options: defaults, the seed's three profiles, explicit overrides, every error at once."""

from __future__ import annotations

from datetime import timedelta

import pytest

from plugin.core.errors import SettingsError
from plugin.core.options import DEFAULTS, MANAGER_KEYS, PRESETS, resolve_options

HOUR = 3600.0


def test_the_defaults_are_those_of_the_design():
    options = resolve_options()
    assert options.as_settings() == {
        "profile": "default",
        "ack_tracking_window": "1d",
        "session_period": "1d",
        "timezone": "UTC",
        "max_session_age": "2d",
        "keep_history": True,
        "max_history_size": 10,
        "cleanup_interval": "6h",
        "max_tracked_messages": 100_000,
        "track_unknown_receipts": True,
        "redact_recipients": True,
        "max_tags_per_session": 32,
    }
    assert options.ack_tracking_window == 24 * HOUR


def test_ultra_lean_is_a_12h_window_and_3_summaries():
    options = resolve_options(profile="ultra_lean")
    assert options.ack_tracking_window == 12 * HOUR
    assert options.max_history_size == 3
    assert options.max_tracked_messages < DEFAULTS["max_tracked_messages"]


def test_zero_history_keeps_no_history_and_six_hour_sessions():
    options = resolve_options(profile="zero_history")
    assert (options.session_period, options.ack_tracking_window) == (6 * HOUR, 6 * HOUR)
    assert (options.max_history_size, options.keep_history, options.history_limit) == (
        0,
        False,
        0,
    )
    assert (options.cleanup_interval, options.max_session_age) == (HOUR, 12 * HOUR)
    assert options.max_tracked_messages < PRESETS["ultra_lean"]["max_tracked_messages"]


def test_explicit_keys_override_the_profile():
    options = resolve_options({"profile": "ultra_lean"}, max_history_size=5)
    assert options.max_history_size == 5
    assert options.ack_tracking_window == 12 * HOUR


def test_history_limit_is_zero_when_history_is_off():
    assert resolve_options(keep_history=False, max_history_size=10).history_limit == 0


@pytest.mark.parametrize(
    "value",
    ["12h", "720m", 43_200_000, "43200000", timedelta(hours=12), "0.5d"],
)
def test_durations_accept_strings_integer_milliseconds_and_timedelta(value):
    assert resolve_options(ack_tracking_window=value).ack_tracking_window == 12 * HOUR


@pytest.mark.parametrize(("text", "value"), [("true", True), ("Off", False), ("1", True)])
def test_booleans_accept_the_environment_spellings(text, value):
    assert resolve_options(keep_history=text).keep_history is value


@pytest.mark.parametrize("period", ["1h", "2h", "3h", "4h", "6h", "8h", "12h", "1d", "24h"])
def test_a_session_period_must_divide_a_day(period):
    assert resolve_options(session_period=period, max_session_age="2d").session_period > 0


@pytest.mark.parametrize("period", ["5h", "90m", "2d", "7h", "0s"])
def test_other_session_periods_are_refused(period):
    with pytest.raises(SettingsError) as caught:
        resolve_options(session_period=period)
    assert [p.key for p in caught.value.problems] == ["session_period"]


def test_every_problem_is_reported_at_once_with_key_value_and_range():
    with pytest.raises(SettingsError) as caught:
        resolve_options(
            profile="tiny",
            ack_tracking_window="31d",
            cleanup_interval="soon",
            timezone="Nowhere/City",
            max_history_size=10_001,
            max_tracked_messages="lots",
            track_unknown_receipts="maybe",
            redaction_key=42,
            colour="blue",
        )
    problems = {p.key: p for p in caught.value.problems}
    assert set(problems) == {
        "profile",
        "ack_tracking_window",
        "cleanup_interval",
        "timezone",
        "max_history_size",
        "max_tracked_messages",
        "track_unknown_receipts",
        "redaction_key",
        "colour",
    }
    assert problems["ack_tracking_window"].value == "31d"
    assert "30d" in problems["ack_tracking_window"].accepted
    assert "0 to 10000" in problems["max_history_size"].accepted
    assert all(key in str(caught.value) for key in problems)


def test_max_session_age_below_the_session_period_is_refused():
    with pytest.raises(SettingsError) as caught:
        resolve_options(session_period="1d", max_session_age="12h")
    (problem,) = caught.value.problems
    assert problem.key == "max_session_age"
    assert "1d" in problem.accepted


def test_the_settings_spelling_round_trips():
    options = resolve_options(profile="zero_history", timezone="Europe/Berlin")
    assert resolve_options(options.as_settings()) == options


def test_every_settings_key_is_known():
    assert set(MANAGER_KEYS) == set(DEFAULTS)
    assert {
        "ack_tracking_window",
        "session_period",
        "timezone",
        "max_session_age",
        "keep_history",
        "max_history_size",
        "cleanup_interval",
        "max_tracked_messages",
        "track_unknown_receipts",
        "redact_recipients",
        "profile",
    } <= set(MANAGER_KEYS)
