from datetime import timedelta

import pytest

from plugin.core.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("90s", 90),
        ("30m", 1800),
        ("12h", 43200),
        ("1d", 86400),
        (43200000, 43200),
        ("43200000", 43200),
        (timedelta(hours=2), 7200),
        ("250ms", 0.25),
    ],
)
def test_parse_duration_accepts_the_documented_spellings(value, seconds):
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["", "soon", "-5s", True, None, [1], -1])
def test_parse_duration_rejects_anything_else(value):
    with pytest.raises(ValueError):
        parse_duration(value)


@pytest.mark.parametrize(
    ("seconds", "text"), [(86400, "1d"), (5400, "90m"), (90, "90s"), (0.25, "250ms")]
)
def test_format_duration_is_the_shortest_exact_spelling(seconds, text):
    assert format_duration(seconds) == text
