"""A tiny mutable clock for the manager's injected ``clock``: tests move time, never sleep."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

__all__ = ["Clock", "at"]


def at(text: str, tz: str = "UTC") -> float:
    """Epoch seconds of an ISO local time in ``tz``: ``at("2026-11-30T10:00")``."""
    from zoneinfo import ZoneInfo

    moment = datetime.fromisoformat(text)
    zone = UTC if tz == "UTC" else ZoneInfo(tz)
    return moment.replace(tzinfo=zone).timestamp()


class Clock:
    """Callable returning the current time; ``advance()`` and ``set()`` move it."""

    def __init__(self, now: float) -> None:
        self.now = float(now)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float = 0, **delta: float) -> float:
        self.now += seconds + timedelta(**delta).total_seconds()
        return self.now

    def set(self, now: float) -> float:
        self.now = float(now)
        return self.now
