"""Validation of settings: every problem at once, not just the first. Each bad value becomes a
:class:`SettingProblem` (secrets shown as "***") and its default stands in so that checking goes
on; :class:`SettingsError` then carries them all. Validation yields the fields of
:class:`plugin.settings.loading.Settings`; it imports only the schema, not the loader."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, TypeVar
from urllib.parse import urlsplit

from plugin.core.durations import DURATION_HELP, format_duration, parse_duration
from plugin.core.errors import SettingProblem, SettingsError
from plugin.core.options import MANAGER_KEYS, ManagerOptions, resolve_options
from plugin.core.values import parse_bool, parse_int
from plugin.settings.production import production_problems
from plugin.settings.schema import (
    DEFAULT_ENV,
    KIB,
    KNOWN_KEYS,
    MIB,
    PRODUCTION,
    REDACTED,
    SECRET_KEYS,
    TABLES,
    BridgeSettings,
    MetaSettings,
    Secret,
    ServerSettings,
    TwilioSettings,
    WahaSettings,
    looks_secret,
    suggest,
    table_keys,
)

__all__ = ["validate"]

# The logger of plugin.settings.loading, as before the split: hosts and tests filter on that name.
log = logging.getLogger("plugin.settings.loading")

_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "kib": KIB,
    "mb": 1000**2,
    "mib": MIB,
    "gb": 1000**3,
    "gib": 1024 * MIB,
}
_SIZE = re.compile(r"^\s*(\d+)\s*([a-z]*)\s*$", re.IGNORECASE)
_MODULE_PATH = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*(:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*)?$")
_ENV_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")


def validate(data: dict[str, Any], env: object, *, own: bool = False) -> dict[str, Any]:
    """The fields of a Settings from ``data`` (lower-case keys, sub-tables as dicts), or
    SettingsError with every problem. ``own``: ``data`` comes from the plugin's own settings file
    and ``WHATSAPP_*`` variables, where production refuses unknown keys; a host's object may
    carry keys of its own, which are only warned about."""
    problems: list[SettingProblem] = []
    if not isinstance(env, str) or not _ENV_NAME.match(env.strip().lower()):
        problems.append(SettingProblem("env", env, "an environment name like development"))
        env = DEFAULT_ENV
    env = env.strip().lower()
    _check_unknown(data, problems, refuse=own and env == PRODUCTION)
    manager: ManagerOptions | None = None
    try:
        manager = resolve_options({k: data[k] for k in MANAGER_KEYS if k in data})
    except SettingsError as exc:
        problems.extend(exc.problems)
    top = _Reader("", data, problems)
    result: dict[str, Any] = {
        "env": env,
        "manager": manager or resolve_options(),
        **_tables(top, problems),
    }
    store = str(data.get("store", "memory")).strip().lower()
    if store not in ("memory", "redis"):
        problems.append(SettingProblem("store", data.get("store"), '"memory" or "redis"'))
        store = "memory"
    prefix = top.text("redis_prefix", "wa-sessions", required=True) or "wa-sessions"
    if re.search(r"\s", prefix):
        problems.append(SettingProblem("redis_prefix", prefix, "a string without spaces"))
    result.update(
        plugins=top.module_paths("plugins"),
        store="redis" if store == "redis" else "memory",
        state_file=top.text("state_file"),
        snapshot_interval=top.duration("snapshot_interval", 300.0, 1.0, 86400.0),
        redis_url=top.url(
            "redis_url", "redis://127.0.0.1:6379/0", schemes=("redis", "rediss", "unix")
        )
        or "",
        redis_prefix=prefix,
        event_queue_size=top.integer("event_queue_size", 10_000, 1, 10_000_000),
        hook_timeout=top.duration("hook_timeout", 10.0, 0.001, 3600.0),
        shutdown_timeout=top.duration("shutdown_timeout", 10.0, 0.0, 3600.0),
        event_stream_maxlen=top.integer("event_stream_maxlen", 100_000, 1, 10_000_000),
    )
    if env == PRODUCTION:
        problems.extend(production_problems(result))
    if problems:
        raise SettingsError([_hide_secret(p) for p in problems])
    return result


def _tables(top: _Reader, problems: list[SettingProblem]) -> dict[str, Any]:
    """The ``server`` and provider sub-tables."""
    s = top.section("server")
    server = ServerSettings(
        host=s.text("host", "127.0.0.1", required=True) or "127.0.0.1",
        port=s.integer("port", 8080, 0, 65535),
        webhook_path=s.path("webhook_path", "/webhooks"),
        admin_token=s.secret("admin_token"),
        max_body_size=s.size("max_body_size", 3 * MIB),
        read_timeout=s.duration("read_timeout", 30.0, 0.01, 3600.0),
    )
    m = top.section("meta")
    meta = MetaSettings(
        app_secret=m.secret("app_secret"),
        verify_token=m.text("verify_token"),
        access_token=m.text("access_token"),
        phone_number_id=m.text("phone_number_id"),
        api_base_url=m.url("api_base_url", "https://graph.facebook.com/v21.0") or "",
        shared_secret_header=m.text("shared_secret_header"),
        shared_secret=m.text("shared_secret"),
    )
    meta = _with_enabled(meta, m.flag("enabled", True))
    if (meta.shared_secret is None) != (meta.shared_secret_header is None):
        missing = "shared_secret" if meta.shared_secret is None else "shared_secret_header"
        problems.append(
            SettingProblem(f"meta.{missing}", None, "set together with the other of the pair")
        )
    t = top.section("twilio")
    twilio = TwilioSettings(
        auth_token=t.text("auth_token"),
        account_sid=t.text("account_sid"),
        public_url=t.url("public_url", None),
        api_base_url=t.url("api_base_url", "https://api.twilio.com") or "",
    )
    twilio = _with_enabled(twilio, t.flag("enabled", False))
    w = top.section("waha")
    waha = _with_enabled(WahaSettings(hmac_key=w.text("hmac_key")), w.flag("enabled", False))
    b = top.section("bridge")
    bridge = _with_enabled(BridgeSettings(secret=b.text("secret")), b.flag("enabled", False))
    return {"server": server, "meta": meta, "twilio": twilio, "waha": waha, "bridge": bridge}


_UNKNOWN_REFUSED = (
    "a setting this plugin knows (production refuses unknown keys in its own "
    "settings file and WHATSAPP_* variables)"
)


def _check_unknown(
    data: Mapping[str, Any], problems: list[SettingProblem], *, refuse: bool
) -> None:
    """Unknown keys, top-level and in sub-tables, each with a "did you mean" on its own line:
    problems when ``refuse``, else warnings."""
    found: list[tuple[str, object, str | None]] = [
        (key, data[key], _top_level_hint(key)) for key in sorted(set(data) - KNOWN_KEYS)
    ]
    for table in TABLES:
        value = data.get(table)
        if isinstance(value, Mapping):
            known = table_keys(table)
            found += [
                (f"{table}.{key}", value[key], _table_hint(table, key, known))
                for key in sorted(set(value) - known)
            ]
    for key, value, hint in found:
        line = f"\n    did you mean {hint}?" if hint else ""
        if refuse:
            problems.append(SettingProblem(key, _shown(key, value), _UNKNOWN_REFUSED + line))
        else:
            log.warning("unknown setting ignored: %s%s", key, line)


def _shown(key: str, value: object) -> object:
    """An unknown key's value as an error may print it: never a possible secret."""
    if isinstance(value, Mapping):
        return {str(k): REDACTED for k in value}
    return REDACTED if looks_secret(key) else value


def _top_level_hint(key: str) -> str | None:
    """``verify_token`` -> ``meta.verify_token (WHATSAPP_META__VERIFY_TOKEN)`` (hosts often set
    WHATSAPP_TOKEN-like variables of their own; a misplaced key of ours deserves a hint);
    ``max_histroy_size`` -> ``max_history_size``."""
    tables = [name for name in TABLES if key in table_keys(name)]
    if tables:
        return " or ".join(f"{t}.{key} (WHATSAPP_{t.upper()}__{key.upper()})" for t in tables)
    return suggest(key, KNOWN_KEYS - {"env"})


def _table_hint(table: str, key: str, known: frozenset[str]) -> str | None:
    close = suggest(key, known)
    return f"{table}.{close}" if close else None


_P = TypeVar("_P", MetaSettings, TwilioSettings, WahaSettings, BridgeSettings)


def _with_enabled(provider: _P, flag: bool) -> _P:
    """A provider is enabled when ``enabled = true`` or its secret is set."""
    return replace(provider, enabled=flag or provider.signed)


class _Reader:
    """Reads typed values from one table, recording a problem (and using the default) for each
    bad value so that validation goes on and reports everything."""

    def __init__(self, name: str, data: Mapping[str, Any], problems: list[SettingProblem]):
        self.name, self.data, self.problems = name, data, problems

    def key(self, key: str) -> str:
        return f"{self.name}.{key}" if self.name else key

    def fail(self, key: str, accepted: str) -> None:
        self.problems.append(SettingProblem(self.key(key), self.data.get(key), accepted))

    def section(self, key: str) -> _Reader:
        value = self.data.get(key, {})
        if not isinstance(value, Mapping):
            self.fail(key, "a table of settings")
            value = {}
        return _Reader(self.key(key), value, self.problems)

    def text(self, key: str, default: str | None = None, *, required: bool = False) -> str | None:
        value = self.data.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)  # tokens and ids are strings, even when they look like numbers
        if value is None or value == "":
            if required and key in self.data:
                self.fail(key, "a non-empty string")
            return default
        if not isinstance(value, str):
            self.fail(key, "a string")
            return default
        return value

    def secret(self, key: str) -> Secret | None:
        """A secret that accepts a rotation: a string, or a list of two non-empty strings
        (either value is accepted while both are listed)."""
        value = self.data.get(key)
        if not isinstance(value, list | tuple):
            return self.text(key)
        items = [
            str(item) if isinstance(item, int) and not isinstance(item, bool) else item
            for item in value
        ]
        if len(items) != 2 or not all(isinstance(item, str) and item for item in items):
            self.fail(key, "a string, or a list of two non-empty strings (during a rotation)")
            return None
        first, second = str(items[0]), str(items[1])
        return first if first == second else (first, second)

    def flag(self, key: str, default: bool) -> bool:
        try:
            return parse_bool(self.data.get(key, default))
        except ValueError:
            self.fail(key, "true or false")
            return default

    def integer(self, key: str, default: int, low: int, high: int) -> int:
        try:
            value = parse_int(self.data.get(key, default))
        except ValueError:
            value = low - 1
        if not low <= value <= high:
            self.fail(key, f"an integer from {low} to {high}")
            return default
        return value

    def duration(self, key: str, default: float, low: float, high: float) -> float:
        value = self.data.get(key)
        if value is None:
            return default
        try:
            seconds = parse_duration(value)
        except ValueError:
            self.fail(key, DURATION_HELP)
            return default
        if not low <= seconds <= high:
            self.fail(key, f"a duration from {format_duration(low)} to {format_duration(high)}")
            return default
        return seconds

    def size(self, key: str, default: int) -> int:
        value = self.data.get(key, default)
        accepted = 'a size from 1KiB to 1GiB: integer bytes, or like "3MiB", "512KiB"'
        number = value if isinstance(value, int) and not isinstance(value, bool) else None
        match = _SIZE.match(value) if isinstance(value, str) else None
        if match and match.group(2).lower() in _SIZE_UNITS:
            number = int(match.group(1)) * _SIZE_UNITS[match.group(2).lower()]
        if number is None or not KIB <= number <= 1024 * MIB:
            self.fail(key, accepted)
            return default
        return number

    def path(self, key: str, default: str) -> str:
        value = self.text(key, default) or default
        trimmed = value.rstrip("/")
        if not value.startswith("/") or not trimmed or re.search(r"[\s?#]", value):
            self.fail(key, 'a URL path like "/webhooks" (starts with "/", not just "/")')
            return default
        return trimmed

    def url(
        self, key: str, default: str | None, schemes: tuple[str, ...] = ("http", "https")
    ) -> str | None:
        value = self.text(key, default)
        if value is None:
            return None
        parts = urlsplit(value)
        if (
            parts.scheme not in schemes
            or not (parts.netloc or parts.scheme == "unix")
            or (parts.query and parts.scheme in ("http", "https"))
            or parts.fragment
        ):
            self.fail(key, f"a {' or '.join(schemes)} URL")
            return default
        return value.rstrip("/") if parts.scheme in ("http", "https") else value

    def module_paths(self, key: str) -> tuple[str, ...]:
        value = self.data.get(key) or []
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        accepted = 'a list of module paths like ["mybot.audit"]'
        if not isinstance(value, list | tuple):
            self.fail(key, accepted)
            return ()
        paths: list[str] = []
        for item in value:
            if not isinstance(item, str) or not _MODULE_PATH.match(item.strip()):
                self.problems.append(SettingProblem(self.key(key), item, accepted))
            elif item.strip() not in paths:
                paths.append(item.strip())
        return tuple(paths)


def _hide_secret(problem: SettingProblem) -> SettingProblem:
    if problem.key in SECRET_KEYS and problem.value not in (None, ""):
        return SettingProblem(problem.key, REDACTED, problem.accepted)
    return problem
