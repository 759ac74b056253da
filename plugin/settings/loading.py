"""Settings: ``settings.toml`` (+ ``.secrets.toml``) through dynaconf, with environments and
``WHATSAPP_*`` environment variables, validated into a frozen :class:`Settings` that reports every
problem at once (the names and tables: :mod:`plugin.settings.schema`; the checks:
:mod:`plugin.settings.validation`). A host app may hand over its own settings object instead:
keys of its own are then only warned about, while production refuses unknown keys in the plugin's
own settings file and ``WHATSAPP_*`` variables."""

from __future__ import annotations

import logging
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from dynaconf import Dynaconf
from dynaconf.base import LazySettings
from dynaconf.utils.parse_conf import boolean_fix

from plugin.core.durations import format_duration
from plugin.core.errors import SettingProblem, SettingsError
from plugin.core.options import ManagerOptions
from plugin.settings.schema import (
    DEFAULT_ENV,
    ENV_VARIABLE,
    ENVVAR_PREFIX,
    KIB,
    KNOWN_KEYS,
    MIB,
    PRODUCTION,
    PROVIDERS,
    REDACTED,
    SECRET_KEYS,
    SECTIONS,
    SETTINGS_FILE_VARIABLE,
    BridgeSettings,
    MetaSettings,
    Provider,
    Secret,
    ServerSettings,
    TwilioSettings,
    WahaSettings,
    format_size,
    redact_url,
    secret_values,
)
from plugin.settings.validation import validate

__all__ = [
    "DEFAULT_ENV",
    "ENV_VARIABLE",
    "KIB",
    "MIB",
    "PRODUCTION",
    "REDACTED",
    "BridgeSettings",
    "MetaSettings",
    "Secret",
    "ServerSettings",
    "Settings",
    "TwilioSettings",
    "WahaSettings",
    "load_settings",
    "secret_values",
    "settings_source",
]

log = logging.getLogger(__name__)

#: String keys whose environment variable is taken verbatim: dynaconf would turn
#: ``WHATSAPP_META__VERIFY_TOKEN=0x1F`` into the integer 31.
_VERBATIM_KEYS = frozenset(
    {
        "redaction_key",
        "timezone",
        "state_file",
        "redis_url",
        "redis_prefix",
        "server.host",
        "server.webhook_path",
        "server.admin_token",
        "meta.app_secret",
        "meta.verify_token",
        "meta.access_token",
        "meta.phone_number_id",
        "meta.api_base_url",
        "meta.shared_secret_header",
        "meta.shared_secret",
        "twilio.auth_token",
        "twilio.account_sid",
        "twilio.public_url",
        "twilio.api_base_url",
        "waha.hmac_key",
        "bridge.secret",
    }
)
#: Secret keys that accept two values during a rotation.
_ROTATING_KEYS = frozenset({"server.admin_token", "meta.app_secret"})
_SWITCHES = frozenset({ENV_VARIABLE, SETTINGS_FILE_VARIABLE})
#: Keys dynaconf adds to ``as_dict()`` itself, and our own switch WHATSAPP_SETTINGS_FILE.
_DYNACONF_KEYS = frozenset({"load_dotenv", "settings_file", "settings_files"})


def _is_dynaconf_key(key: str) -> bool:
    return key in _DYNACONF_KEYS or key.endswith("_for_dynaconf")


@dataclass(slots=True, frozen=True, repr=False)
class Settings:
    """Everything the plugin reads from configuration, validated; durations in seconds."""

    env: str
    manager: ManagerOptions
    server: ServerSettings = field(default_factory=ServerSettings)
    meta: MetaSettings = field(default_factory=MetaSettings)
    twilio: TwilioSettings = field(default_factory=TwilioSettings)
    waha: WahaSettings = field(default_factory=WahaSettings)
    bridge: BridgeSettings = field(default_factory=BridgeSettings)
    plugins: tuple[str, ...] = ()
    store: Literal["memory", "redis"] = "memory"
    state_file: str | None = None
    snapshot_interval: float = 300.0
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_prefix: str = "wa-sessions"
    event_queue_size: int = 10_000
    hook_timeout: float = 10.0
    shutdown_timeout: float = 10.0
    #: Entries of the Redis Stream of completed sessions (Redis store), oldest trimmed first.
    event_stream_maxlen: int = 100_000

    @classmethod
    def from_mapping(cls, obj: object, *, env: str | None = None) -> Settings:
        """Validate a host's settings: a dict (any key case, nested dicts for sub-tables), a
        dynaconf ``Dynaconf``/``LazySettings`` instance, or any Mapping. The environment is
        ``env``, else the dynaconf object's current one, else an ``env`` key, else
        ``WHATSAPP_ENV``, else development. Raises SettingsError with every problem."""
        if isinstance(obj, Settings):
            return obj
        if isinstance(obj, LazySettings):
            data = _lower_keys(obj.as_dict())
            if getattr(obj, "ENVIRONMENTS_FOR_DYNACONF", False):
                env = env or str(obj.current_env)
        elif isinstance(obj, Mapping):
            data = _lower_keys(obj)
        else:
            raise TypeError(f"settings must be a mapping or a dynaconf object, not {type(obj)!r}")
        data = {k: v for k, v in data.items() if not _is_dynaconf_key(k)}
        chosen = env or data.get("env") or os.environ.get(ENV_VARIABLE) or DEFAULT_ENV
        return cls(**validate(data, chosen, own=False))

    @property
    def production(self) -> bool:
        return self.env == PRODUCTION

    @property
    def enabled_providers(self) -> tuple[str, ...]:
        return tuple(name for name in PROVIDERS if self.provider(name).enabled)

    def provider(self, name: str) -> Provider:
        """The settings of provider ``name`` (meta, twilio, waha, bridge)."""
        if name not in PROVIDERS:
            raise KeyError(name)
        value: Provider = getattr(self, name)
        return value

    def warnings(self) -> list[str]:
        """Loud warnings the server logs at start (development allows what production refuses)."""
        out: list[str] = []
        path = self.server.webhook_path
        for name in self.enabled_providers:
            if not self.provider(name).signed:
                out.append(
                    f"UNSIGNED WEBHOOKS ACCEPTED for provider {name}: {_SECRET_OF[name]} is not "
                    f"set, so anyone who reaches POST {path}/{name} can inject receipts "
                    f"(allowed in {self.env} only; production refuses to start)"
                )
        if self.meta.enabled and self.meta.verify_token is None:
            out.append(
                f"meta.verify_token is not set: the Meta verification handshake "
                f"(GET {path}/meta) will be refused"
            )
        if self.twilio.enabled and self.twilio.signed and self.twilio.public_url is None:
            out.append(
                "twilio.public_url is not set: Twilio signs the public URL it calls, so "
                "signatures are checked against the URL each request arrived on, which "
                "differs behind a proxy"
            )
        if self.manager.redact_recipients and not self.manager.redaction_key:
            out.append(
                "redaction_key is empty: recipient hashes use a random key per process, "
                "so they change at each restart and differ between replicas; set "
                "WHATSAPP_REDACTION_KEY (production requires it with state_file or the "
                "Redis store)"
            )
        return out

    def as_dict(self, *, redact: bool = True) -> dict[str, Any]:
        """Settings spelled as settings values (durations as strings); secrets as "***" unless
        ``redact=False``. Without redaction the result loads back through ``from_mapping``."""
        out: dict[str, Any] = {"env": self.env, **self.manager.as_settings()}
        out["redaction_key"] = self.manager.redaction_key
        for name in SECTIONS:
            section = getattr(self, name)
            out[name] = {f.name: getattr(section, f.name) for f in fields(section)}
        out["server"]["max_body_size"] = format_size(self.server.max_body_size)
        out["server"]["read_timeout"] = format_duration(self.server.read_timeout)
        for head, tail in (("server", "admin_token"), ("meta", "app_secret")):
            if isinstance(out[head][tail], tuple):  # a rotation: a list, as settings spell it
                out[head][tail] = list(out[head][tail])
        out.update(
            plugins=list(self.plugins),
            store=self.store,
            state_file=self.state_file,
            snapshot_interval=format_duration(self.snapshot_interval),
            redis_url=self.redis_url,
            redis_prefix=self.redis_prefix,
            event_queue_size=self.event_queue_size,
            hook_timeout=format_duration(self.hook_timeout),
            shutdown_timeout=format_duration(self.shutdown_timeout),
            event_stream_maxlen=self.event_stream_maxlen,
        )
        if redact:
            for dotted in SECRET_KEYS:
                head, _, tail = dotted.rpartition(".")
                table = out[head] if head else out
                if table[tail]:
                    table[tail] = REDACTED
            out["redis_url"] = redact_url(self.redis_url)
        return out

    def redacted(self) -> dict[str, Any]:
        """``as_dict()`` with secrets shown as "***": the only form fit for printing."""
        return self.as_dict(redact=True)

    def __repr__(self) -> str:
        return f"Settings({self.redacted()!r})"


_SECRET_OF = {
    "meta": "meta.app_secret",
    "twilio": "twilio.auth_token",
    "waha": "waha.hmac_key",
    "bridge": "bridge.secret",
}


def load_settings(
    settings_file: str | os.PathLike[str] | None = None, *, env: str | None = None
) -> Settings:
    """Load ``settings_file`` (default ``$WHATSAPP_SETTINGS_FILE``, else ``./settings.toml``) and
    ``.secrets.toml`` beside it, in environment ``env`` (default ``$WHATSAPP_ENV``, else
    development), with ``WHATSAPP_*`` environment variables on top. Raises SettingsError."""
    path, named = _settings_path(settings_file)
    if not path.is_file():
        if named:
            raise SettingsError([SettingProblem("settings_file", str(path), "an existing file")])
        log.info("no %s: using defaults and WHATSAPP_* environment variables", path)
    files = [p for p in (path, path.with_name(".secrets.toml")) if p.is_file()]
    problems: list[SettingProblem] = []
    environments = {DEFAULT_ENV, PRODUCTION}
    for file in files:
        environments |= _toml_environments(file, problems)
    chosen = (env or os.environ.get(ENV_VARIABLE) or DEFAULT_ENV).strip().lower()
    if chosen not in environments - {"default", "global"}:
        problems.append(
            SettingProblem(
                "env",
                chosen,
                f"one of {', '.join(sorted(environments - {'default', 'global'}))} "
                f"(set by {ENV_VARIABLE}; an environment is a table of the settings file)",
            )
        )
    if problems:
        raise SettingsError(problems)
    # A new instance per call: dynaconf reads the files when it is built.
    dyn = Dynaconf(
        envvar_prefix=ENVVAR_PREFIX,
        settings_files=[str(p) for p in files],
        environments=True,
        env_switcher=ENV_VARIABLE,
        force_env=chosen,
        merge_enabled=True,
        load_dotenv=False,
        includes=[],
        preload=[],
        loaders=[],
    )
    verbatim = _apply_environment(dyn, problems)
    data = _lower_keys(dyn.as_dict())
    for dotted, raw in verbatim.items():
        head, _, tail = dotted.rpartition(".")
        table = data.setdefault(head, {}) if head else data
        if isinstance(table, dict):
            table[tail] = raw
    data = {k: v for k, v in data.items() if not _is_dynaconf_key(k)}
    try:  # the plugin's own file and variables: production refuses keys it does not know
        settings = Settings(**validate(data, chosen, own=True))
    except SettingsError as exc:
        raise SettingsError(problems + exc.problems) from None
    if problems:
        raise SettingsError(problems)
    return settings


def _settings_path(settings_file: str | os.PathLike[str] | None) -> tuple[Path, bool]:
    """The settings file to read, and whether it was named (then it must exist)."""
    named = settings_file if settings_file is not None else os.environ.get(SETTINGS_FILE_VARIABLE)
    return Path(named or "settings.toml").expanduser().resolve(), bool(named)


def settings_source(settings_file: str | os.PathLike[str] | None = None) -> Path | None:
    """The settings file :func:`load_settings` reads for ``settings_file``, None if none."""
    path, _ = _settings_path(settings_file)
    return path if path.is_file() else None


def _apply_environment(dyn: Any, problems: list[SettingProblem]) -> dict[str, str]:
    """Set ``WHATSAPP_*`` variables on ``dyn`` as dynaconf's own loader would (values read as
    TOML, ``__`` for nesting, merged into tables); return the text keys, kept verbatim. Done
    here, not by dynaconf's loader, so that a token such as ``0x1F`` or ``@x`` is not parsed
    and that dynaconf's unprefixed ``DYNACONF_*`` variables are not read."""
    verbatim: dict[str, str] = {}
    for name, raw in sorted(os.environ.items()):
        if not name.startswith(f"{ENVVAR_PREFIX}_") or name in _SWITCHES:
            continue
        key = name.removeprefix(f"{ENVVAR_PREFIX}_")
        dotted = key.lower().replace("__", ".")
        if dotted in _VERBATIM_KEYS:
            verbatim[dotted] = _rotation_list(raw) if dotted in _ROTATING_KEYS else raw
            continue
        try:
            dyn.set(key, boolean_fix(raw), tomlfy=True)
        except Exception as exc:  # dynaconf's parse errors (@int, @json, @format…) share no base
            shown = REDACTED if dotted in SECRET_KEYS else raw
            problems.append(
                SettingProblem(
                    dotted, shown, f"a value dynaconf can parse from {name} ({type(exc).__name__})"
                )
            )
    return verbatim


def _rotation_list(raw: str) -> Any:
    """A secret variable as given, or the list it spells as a TOML array of strings
    (``WHATSAPP_META__APP_SECRET='["new", "old"]'`` during a rotation)."""
    if not raw.lstrip().startswith("["):
        return raw
    try:
        value = tomllib.loads(f"value = {raw}")["value"]
    except tomllib.TOMLDecodeError:
        return raw
    return value if all(isinstance(item, str) for item in value) else raw


def _lower_keys(value: Mapping[Any, Any]) -> dict[str, Any]:
    """Keys in lower case at every level (dynaconf upper-cases top-level and env-var keys)."""
    out: dict[str, Any] = {}
    for key, item in value.items():
        name = str(key).lower()
        if isinstance(item, Mapping):
            item = _lower_keys(item)
            if isinstance(out.get(name), dict):
                item = {**out[name], **item}
        out[name] = item
    return out


def _toml_environments(path: Path, problems: list[SettingProblem]) -> set[str]:
    """The environment tables of a settings file; keys outside them would be silently ignored by
    dynaconf, so they are problems here."""
    try:
        with path.open("rb") as handle:
            document = tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        problems.append(SettingProblem("settings_file", str(path), f"valid TOML ({exc})"))
        return set()
    envs: set[str] = set()
    for key, value in document.items():
        if isinstance(value, dict) and key.lower() not in KNOWN_KEYS:
            envs.add(key.lower())
        else:
            problems.append(
                SettingProblem(
                    key,
                    REDACTED if key in SECRET_KEYS else value,
                    f"inside an environment table of {path.name}, "
                    f"e.g. [default] or [default.{key}]",
                )
            )
    return envs
