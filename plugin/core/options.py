"""The manager's options: defaults, the three profiles, and validation that reports every error."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from plugin.core.durations import DURATION_HELP, format_duration, parse_duration
from plugin.core.errors import SettingProblem, SettingsError
from plugin.core.records import MAX_TAGS
from plugin.core.values import parse_bool, parse_int

__all__ = [
    "DEFAULTS",
    "MANAGER_KEYS",
    "PRESETS",
    "ManagerOptions",
    "resolve_options",
]

HOUR = 3600.0
DAY = 86400.0

DEFAULTS: dict[str, Any] = {
    "profile": "default",
    "ack_tracking_window": "24h",
    "session_period": "1d",
    "timezone": "UTC",
    "max_session_age": "48h",
    "keep_history": True,
    "max_history_size": 10,
    "cleanup_interval": "6h",
    "max_tracked_messages": 100_000,
    "track_unknown_receipts": True,
    "redact_recipients": True,
    "redaction_key": "",
    "max_tags_per_session": 32,
}

#: The seed's three levels. Explicit keys override a preset.
PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    "ultra_lean": {
        "ack_tracking_window": "12h",
        "max_history_size": 3,
        "max_tracked_messages": 50_000,
    },
    "zero_history": {
        "session_period": "6h",
        "ack_tracking_window": "6h",
        "max_history_size": 0,
        "keep_history": False,
        "cleanup_interval": "1h",
        "max_session_age": "12h",
        "max_tracked_messages": 25_000,
    },
}

MANAGER_KEYS: tuple[str, ...] = tuple(DEFAULTS)

_PERIODS = tuple(h * HOUR for h in (1, 2, 3, 4, 6, 8, 12, 24))
_MAX_WINDOW = 30 * DAY
_MAX_HISTORY = 10_000
_MAX_TRACKED = 50_000_000


@dataclass(slots=True, frozen=True)
class ManagerOptions:
    """Validated options; durations in seconds."""

    profile: str
    ack_tracking_window: float
    session_period: float
    timezone: str
    max_session_age: float
    keep_history: bool
    max_history_size: int
    cleanup_interval: float
    max_tracked_messages: int
    track_unknown_receipts: bool
    redact_recipients: bool
    redaction_key: str
    max_tags_per_session: int = 32

    @property
    def history_limit(self) -> int:
        """How many summaries are really kept: none when history is off."""
        return self.max_history_size if self.keep_history else 0

    def as_settings(self) -> dict[str, Any]:
        """The options spelled as settings values (durations as strings)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in _DURATION_KEYS:
                value = format_duration(value)
            out[f.name] = value
        out.pop("redaction_key")
        return out


_DURATION_KEYS = frozenset(
    {"ack_tracking_window", "session_period", "max_session_age", "cleanup_interval"}
)


class _Resolver:
    """Checks the merged values one key at a time, collecting every problem."""

    def __init__(self, merged: dict[str, Any]) -> None:
        self.merged = merged
        self.out: dict[str, Any] = {"profile": merged["profile"]}
        self.problems: list[SettingProblem] = []

    def problem(self, key: str, accepted: str) -> None:
        self.problems.append(SettingProblem(key, self.merged[key], accepted))

    def duration(self, key: str, low: float, high: float, accepted: str) -> None:
        try:
            seconds = parse_duration(self.merged[key])
        except ValueError:
            self.problem(key, DURATION_HELP)
            return
        if not low <= seconds <= high:
            self.problem(key, accepted)
            return
        self.out[key] = seconds

    def period(self) -> None:
        try:
            period = parse_duration(self.merged["session_period"])
        except ValueError:
            period = -1.0
        if period not in _PERIODS:
            self.problem(
                "session_period", "a duration that divides a day: 1h, 2h, 3h, 4h, 6h, 8h, 12h or 1d"
            )
            return
        self.out["session_period"] = period
        if "max_session_age" in self.out and self.out["max_session_age"] < period:
            self.problem("max_session_age", f"at least session_period ({format_duration(period)})")

    def timezone(self) -> None:
        tz = self.merged["timezone"]
        try:
            if not isinstance(tz, str) or not tz:
                raise ValueError(tz)
            ZoneInfo(tz)
            self.out["timezone"] = tz
        except (ValueError, ZoneInfoNotFoundError):
            self.problem("timezone", 'an IANA time zone name like "UTC"')

    def integer(self, key: str, low: int, high: int) -> None:
        try:
            number = parse_int(self.merged[key])
        except ValueError:
            number = low - 1
        if not low <= number <= high:
            self.problem(key, f"an integer from {low} to {high}")
        else:
            self.out[key] = number

    def boolean(self, key: str) -> None:
        try:
            self.out[key] = parse_bool(self.merged[key])
        except ValueError:
            self.problem(key, "true or false")

    def string(self, key: str) -> None:
        if isinstance(self.merged[key], str):
            self.out[key] = self.merged[key]
        else:
            self.problem(key, "a string")


def resolve_options(values: Mapping[str, Any] | None = None, /, **overrides: Any) -> ManagerOptions:
    """Defaults, then the chosen profile's preset, then explicit values; every error at once."""
    given = {k: v for k, v in {**(values or {}), **overrides}.items() if v is not None}
    problems = [
        SettingProblem(key, given[key], f"one of {', '.join(MANAGER_KEYS)}")
        for key in sorted(set(given) - set(DEFAULTS))
    ]
    profile = given.get("profile", "default")
    if profile not in PRESETS:
        problems.append(SettingProblem("profile", profile, f"one of {', '.join(PRESETS)}"))
        profile = "default"
    merged = {**DEFAULTS, **PRESETS[profile], **{k: v for k, v in given.items() if k in DEFAULTS}}
    merged["profile"] = profile
    check = _Resolver(merged)
    check.problems = problems
    check.duration("ack_tracking_window", 1.0, _MAX_WINDOW, "a duration from 1s to 30d")
    check.duration("max_session_age", 1.0, 365 * DAY, "a duration from 1s to 365d")
    check.duration("cleanup_interval", 1.0, 7 * DAY, "a duration from 1s to 7d")
    check.period()
    check.timezone()
    check.integer("max_history_size", 0, _MAX_HISTORY)
    check.integer("max_tracked_messages", 1, _MAX_TRACKED)
    check.integer("max_tags_per_session", 0, MAX_TAGS)
    for key in ("keep_history", "track_unknown_receipts", "redact_recipients"):
        check.boolean(key)
    check.string("redaction_key")
    if check.problems:
        raise SettingsError(check.problems)
    return ManagerOptions(**check.out)
