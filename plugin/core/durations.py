"""Durations as the settings accept them: "90s", "30m", "12h", "1d", integer milliseconds (as the
seed's environment variables used), or a timedelta."""

from __future__ import annotations

import re
from datetime import timedelta

__all__ = ["DURATION_HELP", "format_duration", "parse_duration"]

DURATION_HELP = 'a duration like "90s", "30m", "12h", "1d", or integer milliseconds'
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$", re.IGNORECASE)


def parse_duration(value: object) -> float:
    """Return the duration in seconds; raise ``ValueError`` for anything else.

    A bare number (int, or a string of digits as environment variables give) is milliseconds.
    """
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float):
        seconds = float(value) / 1000.0
    elif isinstance(value, str):
        match = _PATTERN.match(value)
        if match is None:
            raise ValueError(f"not a duration: {value!r}")
        number, unit = match.groups()
        seconds = float(number) * (_UNITS[unit.lower()] if unit else 0.001)
    else:
        raise ValueError(f"not a duration: {value!r}")
    if seconds < 0:
        raise ValueError(f"negative duration: {value!r}")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest exact spelling of a duration: 86400 -> "1d", 5400 -> "90m"."""
    for unit in ("w", "d", "h", "m", "s"):
        size = _UNITS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{round(seconds * 1000)}ms"
