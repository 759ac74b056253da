"""Session periods: which period a moment belongs to, aligned to local midnight in a time zone."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

__all__ = ["Period", "PeriodCalendar", "completion_time"]


class Period:
    """One session period: ``[start, end)`` in epoch seconds, and its name."""

    __slots__ = ("end", "session_id", "start")

    def __init__(self, session_id: str, start: float, end: float) -> None:
        self.session_id = session_id
        self.start = start
        self.end = end

    def __repr__(self) -> str:
        return f"Period({self.session_id!r}, {self.start}, {self.end})"


class PeriodCalendar:
    """Cuts time into periods of ``period`` seconds counted from local midnight.

    ``period`` divides a day. On a daylight-saving day the last period of the day is shorter or
    longer, so that every day starts a new period at local midnight.
    """

    def __init__(self, period: float, timezone: str) -> None:
        self.period = float(period)
        self.tz = ZoneInfo(timezone)
        self.per_day = round(86400 / self.period)
        self._hours = round(self.period / 3600)
        year = datetime.now(self.tz).year
        self.fixed_offset = (
            datetime(year, 1, 1, tzinfo=self.tz).utcoffset()
            == datetime(year, 7, 1, tzinfo=self.tz).utcoffset()
        )

    def _midnight(self, day: date) -> float:
        return datetime.combine(day, time(0), tzinfo=self.tz).timestamp()

    def period_of(self, moment: float) -> Period:
        day = datetime.fromtimestamp(moment, self.tz).date()
        day_start = self._midnight(day)
        if day_start > moment:  # a zone whose midnight does not exist on that day
            day = day - timedelta(days=1)
            day_start = self._midnight(day)
        day_end = self._midnight(day + timedelta(days=1))
        index = min(int((moment - day_start) // self.period), self.per_day - 1)
        start = day_start + index * self.period
        end = day_end if index == self.per_day - 1 else start + self.period
        if self.per_day == 1:
            name = day.isoformat()
        else:
            name = f"{day.isoformat()}T{index * self._hours:02d}"
        return Period(name, start, end)


def completion_time(period: Period, window: float, max_session_age: float) -> float:
    """When a session of ``period`` completes: ``period_end + window`` or ``start +
    max_session_age``, whichever is first, but never before the period's real end (a 25-hour
    daylight-saving day is 25 hours long)."""
    return max(period.end, min(period.end + window, period.start + max_session_age))
