"""The settings schema: the key names, the tables and their defaults, which keys are secrets.
Loading (:mod:`plugin.settings.loading`) and validation (:mod:`plugin.settings.validation`) both
build on it; it imports neither, so the two do not import each other."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field, fields

from plugin.core.options import MANAGER_KEYS
from plugin.core.redaction import REDACTED, redact_url

__all__ = [
    "DEFAULT_ENV",
    "ENVVAR_PREFIX",
    "ENV_VARIABLE",
    "KIB",
    "KNOWN_KEYS",
    "MIB",
    "PRODUCTION",
    "PROVIDERS",
    "REDACTED",
    "SECRET_KEYS",
    "SECTIONS",
    "SETTINGS_FILE_VARIABLE",
    "TABLES",
    "BridgeSettings",
    "MetaSettings",
    "Provider",
    "Secret",
    "ServerSettings",
    "TwilioSettings",
    "WahaSettings",
    "format_size",
    "looks_secret",
    "redact_url",
    "secret_values",
    "suggest",
    "table_keys",
]

ENVVAR_PREFIX = "WHATSAPP"
ENV_VARIABLE = "WHATSAPP_ENV"
SETTINGS_FILE_VARIABLE = "WHATSAPP_SETTINGS_FILE"
DEFAULT_ENV = "development"
PRODUCTION = "production"

KIB = 1024
MIB = 1024 * KIB

PROVIDERS = ("meta", "twilio", "waha", "bridge")
SECTIONS = ("server", *PROVIDERS)
OTHER_KEYS = (
    "plugins",
    "store",
    "state_file",
    "snapshot_interval",
    "redis_url",
    "redis_prefix",
    "event_queue_size",
    "hook_timeout",
    "shutdown_timeout",
    "event_stream_maxlen",
)
KNOWN_KEYS = frozenset({*MANAGER_KEYS, *SECTIONS, *OTHER_KEYS, "env"})
#: Keys holding secrets: shown as "***", never logged or printed.
SECRET_KEYS = frozenset(
    {
        "redaction_key",
        "server.admin_token",
        "meta.app_secret",
        "meta.verify_token",
        "meta.access_token",
        "meta.shared_secret",
        "twilio.auth_token",
        "waha.hmac_key",
        "bridge.secret",
    }
)


#: A secret setting: one value, or the two values accepted during a rotation.
Secret = str | tuple[str, ...]


def secret_values(secret: Secret | None) -> tuple[str, ...]:
    """Every accepted value of a secret setting (none when it is not set)."""
    if secret is None:
        return ()
    return (secret,) if isinstance(secret, str) else secret


@dataclass(slots=True, frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    webhook_path: str = "/webhooks"
    #: One token, or two during a rotation (either is accepted; the CLI sends the first).
    admin_token: Secret | None = field(default=None, repr=False)
    max_body_size: int = 3 * MIB
    #: A request body that has not fully arrived after this many seconds is refused with 408.
    read_timeout: float = 30.0

    @property
    def admin_tokens(self) -> tuple[str, ...]:
        return secret_values(self.admin_token)


@dataclass(slots=True, frozen=True)
class MetaSettings:
    """Meta Cloud API, and the BSPs that forward its format (360dialog, Gupshup v3)."""

    enabled: bool = True
    #: One app secret, or two during a rotation (a signature by either is accepted).
    app_secret: Secret | None = field(default=None, repr=False)
    verify_token: str | None = field(default=None, repr=False)
    access_token: str | None = field(default=None, repr=False)
    phone_number_id: str | None = None
    api_base_url: str = "https://graph.facebook.com/v21.0"
    #: For a BSP that does not sign with the app secret: a header it sends with a shared value.
    shared_secret_header: str | None = None
    shared_secret: str | None = field(default=None, repr=False)

    @property
    def signed(self) -> bool:
        return self.app_secret is not None or self.shared_secret is not None

    @property
    def app_secrets(self) -> tuple[str, ...]:
        return secret_values(self.app_secret)


@dataclass(slots=True, frozen=True)
class TwilioSettings:
    enabled: bool = False
    auth_token: str | None = field(default=None, repr=False)
    account_sid: str | None = None
    #: The base URL Twilio calls (scheme, host, optional port): signatures cover it.
    public_url: str | None = None
    api_base_url: str = "https://api.twilio.com"

    @property
    def signed(self) -> bool:
        return self.auth_token is not None


@dataclass(slots=True, frozen=True)
class WahaSettings:
    enabled: bool = False
    hmac_key: str | None = field(default=None, repr=False)

    @property
    def signed(self) -> bool:
        return self.hmac_key is not None


@dataclass(slots=True, frozen=True)
class BridgeSettings:
    """Acks forwarded by a whatsapp-web.js or Baileys bot."""

    enabled: bool = False
    secret: str | None = field(default=None, repr=False)

    @property
    def signed(self) -> bool:
        return self.secret is not None


Provider = MetaSettings | TwilioSettings | WahaSettings | BridgeSettings

#: The sub-tables and the dataclass each one becomes.
TABLES: dict[str, type] = {
    "server": ServerSettings,
    "meta": MetaSettings,
    "twilio": TwilioSettings,
    "waha": WahaSettings,
    "bridge": BridgeSettings,
}


def table_keys(table: str) -> frozenset[str]:
    """The keys sub-table ``table`` accepts."""
    return frozenset(f.name for f in fields(TABLES[table]))


def suggest(key: str, known: frozenset[str] | set[str]) -> str | None:
    """The known key closest to a mistyped one (``max_histroy_size`` -> ``max_history_size``),
    or None when nothing is close."""
    matches = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
    return matches[0] if matches else None


def looks_secret(key: str) -> bool:
    """Whether an unknown key's value may be a secret (then it is never shown)."""
    return key in SECRET_KEYS or any(
        word in key for word in ("secret", "token", "key", "password", "auth")
    )


def format_size(size: int) -> str:
    for unit, factor in (("GiB", 1024 * MIB), ("MiB", MIB), ("KiB", KIB)):
        if size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)
