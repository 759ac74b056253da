"""Settings: real TOML files in tmp_path and real environment variables, as a deployment has."""

from __future__ import annotations

import logging
import re
import tomllib
from pathlib import Path

import pytest
from dynaconf import Dynaconf

from plugin.core.errors import SettingsError
from plugin.core.options import DEFAULTS, MANAGER_KEYS
from plugin.settings.loading import MIB, Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "settings.toml"

PRODUCTION_SECRETS = {
    "WHATSAPP_SERVER__ADMIN_TOKEN": "admin-token-value",
    "WHATSAPP_META__APP_SECRET": "app-secret-value",
    "WHATSAPP_META__VERIFY_TOKEN": "verify-token-value",
}


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty current directory: no settings.toml unless a test writes one."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(directory: Path, text: str, name: str = "settings.toml") -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def problems(exc: pytest.ExceptionInfo[SettingsError]) -> dict[str, object]:
    return {p.key: p.value for p in exc.value.problems}


# -- the seed's environment variables work exactly as they did ---------------------------------


def test_ack_tracking_window_integer_is_milliseconds(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WHATSAPP_ACK_TRACKING_WINDOW", "43200000")
    assert load_settings().manager.ack_tracking_window == 12 * 3600


def test_max_history_size_from_environment(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WHATSAPP_MAX_HISTORY_SIZE", "3")
    assert load_settings().manager.max_history_size == 3


def test_keep_history_false_from_environment(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WHATSAPP_KEEP_HISTORY", "false")
    manager = load_settings().manager
    assert manager.keep_history is False
    assert manager.history_limit == 0


def test_environment_variable_beats_the_file(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(workdir, '[default]\nmax_history_size = 7\nack_tracking_window = "6h"\n')
    monkeypatch.setenv("WHATSAPP_MAX_HISTORY_SIZE", "3")
    manager = load_settings().manager
    assert (manager.max_history_size, manager.ack_tracking_window) == (3, 6 * 3600)


def test_duration_strings_from_environment(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WHATSAPP_ACK_TRACKING_WINDOW", "90m")
    monkeypatch.setenv("WHATSAPP_SNAPSHOT_INTERVAL", "30s")
    settings = load_settings()
    assert settings.manager.ack_tracking_window == 5400
    assert settings.snapshot_interval == 30


# -- validation reports key, value, accepted range, and everything at once ---------------------


def test_negative_history_size_is_refused_naming_key_and_value(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WHATSAPP_MAX_HISTORY_SIZE", "-1")
    with pytest.raises(SettingsError) as exc:
        load_settings()
    assert problems(exc) == {"max_history_size": -1}
    assert "max_history_size=-1" in str(exc.value)
    assert "0 to 10000" in str(exc.value)


def test_every_bad_value_is_reported_at_once(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(
        workdir,
        """
[default]
store = "disk"
plugins = ["not a module"]
[default.meta]
api_base_url = "ftp://graph.example"
[default.server]
max_body_size = "lots"
webhook_path = "webhooks"
""",
    )
    monkeypatch.setenv("WHATSAPP_MAX_HISTORY_SIZE", "-1")
    monkeypatch.setenv("WHATSAPP_SESSION_PERIOD", "5h")
    monkeypatch.setenv("WHATSAPP_TIMEZONE", "Mars/Olympus")
    monkeypatch.setenv("WHATSAPP_SERVER__PORT", "70000")
    monkeypatch.setenv("WHATSAPP_EVENT_QUEUE_SIZE", "0")
    with pytest.raises(SettingsError) as exc:
        load_settings()
    assert problems(exc) == {
        "max_history_size": -1,
        "session_period": "5h",
        "timezone": "Mars/Olympus",
        "server.port": 70000,
        "server.max_body_size": "lots",
        "server.webhook_path": "webhooks",
        "meta.api_base_url": "ftp://graph.example",
        "store": "disk",
        "plugins": "not a module",
        "event_queue_size": 0,
    }


def test_max_session_age_below_session_period_is_an_error(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WHATSAPP_SESSION_PERIOD", "12h")
    monkeypatch.setenv("WHATSAPP_MAX_SESSION_AGE", "6h")
    with pytest.raises(SettingsError) as exc:
        load_settings()
    assert problems(exc) == {"max_session_age": "6h"}


def test_key_outside_an_environment_table_is_an_error(workdir: Path) -> None:
    # dynaconf would silently ignore both: a user would believe they are in effect.
    write(workdir, "max_history_size = 3\n[meta]\napp_secret = 'x'\n[default]\n")
    with pytest.raises(SettingsError) as exc:
        load_settings()
    assert set(problems(exc)) == {"max_history_size", "meta"}


def test_invalid_toml_is_a_settings_error(workdir: Path) -> None:
    write(workdir, "[default\n")
    with pytest.raises(SettingsError) as exc:
        load_settings()
    assert set(problems(exc)) == {"settings_file"}


def test_unknown_keys_warn_and_do_not_fail(workdir: Path, caplog: pytest.LogCaptureFixture) -> None:
    write(workdir, "[default]\ncolour = 'blue'\n[default.meta]\nsecrett = 'x'\n")
    with caplog.at_level(logging.WARNING, logger="plugin.settings.loading"):
        load_settings()
    text = caplog.text
    assert "colour" in text
    assert "meta.secrett" in text
    assert "load_dotenv" not in text.lower()  # dynaconf's own keys are not the user's


def test_misplaced_table_key_gets_a_hint(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("WHATSAPP_VERIFY_TOKEN", "t")
    with caplog.at_level(logging.WARNING, logger="plugin.settings.loading"):
        settings = load_settings()
    assert settings.meta.verify_token is None
    assert "WHATSAPP_META__VERIFY_TOKEN" in caplog.text


def test_unparseable_variable_is_reported_with_the_other_problems(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WHATSAPP_MAX_HISTORY_SIZE", "@int many")
    monkeypatch.setenv("WHATSAPP_SESSION_PERIOD", "5h")
    with pytest.raises(SettingsError) as exc:
        load_settings()
    assert problems(exc) == {"max_history_size": "@int many", "session_period": "5h"}
    assert "WHATSAPP_MAX_HISTORY_SIZE" in str(exc.value)


def test_only_whatsapp_variables_are_read(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # dynaconf's own loader would also read DYNACONF_* variables.
    monkeypatch.setenv("DYNACONF_MAX_HISTORY_SIZE", "1")
    monkeypatch.setenv("MAX_HISTORY_SIZE", "2")
    assert load_settings().manager.max_history_size == DEFAULTS["max_history_size"]


# -- sizes, lists, urls ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [('"512KiB"', 512 * 1024), ('"3MiB"', 3 * MIB), ("1048576", MIB), ('"2MB"', 2_000_000)],
)
def test_max_body_size_accepts_bytes_and_size_strings(
    workdir: Path, value: str, expected: int
) -> None:
    write(workdir, f"[default.server]\nmax_body_size = {value}\n")
    assert load_settings().server.max_body_size == expected


def test_server_defaults(workdir: Path) -> None:
    server = load_settings().server
    assert (server.host, server.port, server.webhook_path) == ("127.0.0.1", 8080, "/webhooks")
    assert server.admin_token is None
    assert server.max_body_size == 3 * MIB


def test_plugins_from_a_list_or_a_comma_separated_variable(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(workdir, '[default]\nplugins = ["mybot.audit", "mybot.crm:Plugin"]\n')
    assert load_settings().plugins == ("mybot.audit", "mybot.crm:Plugin")
    write(workdir, "[default]\n")
    monkeypatch.setenv("WHATSAPP_PLUGINS", "mybot.audit, mybot.alerts")
    assert load_settings().plugins == ("mybot.audit", "mybot.alerts")


def test_store_settings(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WHATSAPP_STORE", "redis")
    monkeypatch.setenv("WHATSAPP_REDIS_URL", "redis://:pw@cache:6380/2")
    monkeypatch.setenv("WHATSAPP_REDIS_PREFIX", "clinic")
    monkeypatch.setenv("WHATSAPP_STATE_FILE", "state/snap.json")
    settings = load_settings()
    assert settings.store == "redis"
    assert settings.redis_url == "redis://:pw@cache:6380/2"
    assert settings.redis_prefix == "clinic"
    assert settings.state_file == "state/snap.json"
    assert settings.snapshot_interval == 300
    assert settings.event_queue_size == 10_000


# -- profiles ----------------------------------------------------------------------------------


def test_profile_sets_its_preset(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WHATSAPP_PROFILE", "ultra_lean")
    manager = load_settings().manager
    assert manager.profile == "ultra_lean"
    assert (manager.ack_tracking_window, manager.max_history_size) == (12 * 3600, 3)


def test_explicit_key_overrides_the_preset(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(workdir, '[default]\nprofile = "zero_history"\n')
    monkeypatch.setenv("WHATSAPP_CLEANUP_INTERVAL", "30m")
    manager = load_settings().manager
    assert manager.profile == "zero_history"
    assert manager.keep_history is False
    assert manager.session_period == 6 * 3600
    assert manager.cleanup_interval == 1800  # explicit, instead of the preset's 1h


def test_unknown_profile_is_an_error(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WHATSAPP_PROFILE", "tiny")
    with pytest.raises(SettingsError) as exc:
        load_settings()
    assert problems(exc) == {"profile": "tiny"}


# -- environments ------------------------------------------------------------------------------

ENVIRONMENTS = """
[default]
max_history_size = 10
[default.server]
port = 9000
[default.meta]
verify_token = "default-token"
[development]
max_history_size = 4
[production]
max_history_size = 2
[production.server]
host = "0.0.0.0"
[staging]
max_history_size = 6
"""


def test_development_is_the_default_environment(workdir: Path) -> None:
    write(workdir, ENVIRONMENTS)
    settings = load_settings()
    assert settings.env == "development"
    assert settings.manager.max_history_size == 4


def test_whatsapp_env_switches_environment(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(workdir, ENVIRONMENTS)
    for name, value in PRODUCTION_SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("WHATSAPP_ENV", "production")
    settings = load_settings()
    assert settings.env == "production"
    assert settings.manager.max_history_size == 2
    # sub-tables merge: production changes the host, keeps [default.server]'s port
    assert (settings.server.host, settings.server.port) == ("0.0.0.0", 9000)
    monkeypatch.setenv("WHATSAPP_ENV", "staging")
    assert load_settings().manager.max_history_size == 6


def test_env_argument_beats_whatsapp_env(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(workdir, ENVIRONMENTS)
    monkeypatch.setenv("WHATSAPP_ENV", "production")
    assert load_settings(env="development").manager.max_history_size == 4


def test_unknown_environment_is_an_error(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(workdir, ENVIRONMENTS)
    monkeypatch.setenv("WHATSAPP_ENV", "prodution")
    with pytest.raises(SettingsError) as exc:
        load_settings()
    assert problems(exc) == {"env": "prodution"}


# -- production refuses what development only warns about --------------------------------------


def test_production_names_every_missing_secret(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(
        workdir,
        "[production.twilio]\nauth_token = 'tw'\n[production.waha]\nenabled = true\n"
        "[production.bridge]\nenabled = true\n",
    )
    monkeypatch.setenv("WHATSAPP_ENV", "production")
    with pytest.raises(SettingsError) as exc:
        load_settings()
    assert set(problems(exc)) == {
        "server.admin_token",
        "meta.app_secret",
        "meta.verify_token",
        "twilio.public_url",
        "waha.hmac_key",
        "bridge.secret",
    }
    message = str(exc.value)
    assert "WHATSAPP_SERVER__ADMIN_TOKEN" in message
    assert "WHATSAPP_META__APP_SECRET" in message


def test_production_starts_with_its_secrets(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in PRODUCTION_SECRETS.items():
        monkeypatch.setenv(name, value)
    settings = load_settings(env="production")
    assert settings.production
    assert settings.enabled_providers == ("meta",)
    assert settings.meta.signed


def test_production_without_meta_needs_only_the_admin_token(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WHATSAPP_META__ENABLED", "false")
    monkeypatch.setenv("WHATSAPP_SERVER__ADMIN_TOKEN", "t")
    assert load_settings(env="production").enabled_providers == ()


def test_development_allows_unsigned_providers_with_loud_warnings(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WHATSAPP_WAHA__ENABLED", "true")
    settings = load_settings()
    assert settings.enabled_providers == ("meta", "waha")
    warnings = "\n".join(settings.warnings())
    assert "UNSIGNED WEBHOOKS ACCEPTED for provider meta" in warnings
    assert "UNSIGNED WEBHOOKS ACCEPTED for provider waha" in warnings


def test_a_secret_enables_its_provider(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WHATSAPP_TWILIO__AUTH_TOKEN", "tw-token")
    monkeypatch.setenv("WHATSAPP_TWILIO__PUBLIC_URL", "https://bot.example.com:8443/")
    monkeypatch.setenv("WHATSAPP_BRIDGE__SECRET", "bridge-secret")
    settings = load_settings()
    assert settings.enabled_providers == ("meta", "twilio", "bridge")
    assert settings.twilio.public_url == "https://bot.example.com:8443"
    assert not any("twilio" in w or "bridge" in w for w in settings.warnings())


# -- tokens, nested variables, secrets files ---------------------------------------------------


@pytest.mark.parametrize(
    "token", ["12345", "0x1F", "true", "1_000", "007", "@int not-a-number", "@json {"]
)
def test_tokens_stay_strings(workdir: Path, monkeypatch: pytest.MonkeyPatch, token: str) -> None:
    monkeypatch.setenv("WHATSAPP_META__VERIFY_TOKEN", token)
    monkeypatch.setenv("WHATSAPP_META__PHONE_NUMBER_ID", "106540352242922")
    monkeypatch.setenv("WHATSAPP_REDACTION_KEY", token)
    settings = load_settings()
    assert settings.meta.verify_token == token
    assert settings.meta.phone_number_id == "106540352242922"
    assert settings.manager.redaction_key == token


def test_unquoted_ids_in_toml_become_strings(workdir: Path) -> None:
    write(workdir, "[default.meta]\nphone_number_id = 106540352242922\nverify_token = 42\n")
    meta = load_settings().meta
    assert (meta.phone_number_id, meta.verify_token) == ("106540352242922", "42")


def test_nested_variable_merges_into_the_table(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(workdir, '[default.meta]\nverify_token = "from-file"\n')
    monkeypatch.setenv("WHATSAPP_META__APP_SECRET", "s3cr3t")
    meta = load_settings().meta
    assert meta.app_secret == "s3cr3t"
    assert meta.verify_token == "from-file"
    assert meta.signed


def test_secrets_file_beside_the_settings_is_picked_up(workdir: Path) -> None:
    write(workdir, '[default.meta]\nverify_token = "v"\n')
    write(
        workdir,
        '[default.meta]\napp_secret = "from-secrets"\n[production.server]\nadmin_token = "admin"\n',
        name=".secrets.toml",
    )
    settings = load_settings(env="production")
    assert settings.meta.app_secret == "from-secrets"
    assert settings.meta.verify_token == "v"
    assert settings.server.admin_token == "admin"


def test_settings_file_from_variable_and_missing_file(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = workdir / "conf"
    conf.mkdir()
    write(conf, "[default]\nmax_history_size = 5\n", name="bot.toml")
    monkeypatch.setenv("WHATSAPP_SETTINGS_FILE", str(conf / "bot.toml"))
    assert load_settings().manager.max_history_size == 5
    with pytest.raises(SettingsError) as exc:
        load_settings(workdir / "nope.toml")
    assert set(problems(exc)) == {"settings_file"}
    monkeypatch.setenv("WHATSAPP_SETTINGS_FILE", str(workdir / "gone.toml"))
    with pytest.raises(SettingsError):
        load_settings()


def test_no_settings_file_in_the_current_directory_means_defaults(workdir: Path) -> None:
    settings = load_settings()
    assert settings.manager.max_history_size == DEFAULTS["max_history_size"]
    assert settings.enabled_providers == ("meta",)


def test_secret_values_never_appear_in_errors_or_prints(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(workdir, "[default.server]\nadmin_token = ['leaked-admin']\n")
    with pytest.raises(SettingsError) as exc:
        load_settings()
    assert "leaked-admin" not in str(exc.value)
    assert problems(exc) == {"server.admin_token": "***"}

    write(workdir, "[default]\n")
    monkeypatch.setenv("WHATSAPP_META__APP_SECRET", "leaked-secret")
    monkeypatch.setenv("WHATSAPP_SERVER__ADMIN_TOKEN", "leaked-admin")
    monkeypatch.setenv("WHATSAPP_REDIS_URL", "redis://user:leaked-pw@cache:6379/0")
    settings = load_settings()
    shown = repr(settings) + repr(settings.redacted()) + repr(settings.meta) + str(settings)
    for secret in ("leaked-secret", "leaked-admin", "leaked-pw"):
        assert secret not in shown
    assert settings.redacted()["meta"]["app_secret"] == "***"
    assert settings.as_dict(redact=False)["meta"]["app_secret"] == "leaked-secret"


def test_as_dict_round_trips_through_from_mapping(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WHATSAPP_PROFILE", "ultra_lean")
    monkeypatch.setenv("WHATSAPP_META__APP_SECRET", "s")
    monkeypatch.setenv("WHATSAPP_SERVER__MAX_BODY_SIZE", "512KiB")
    settings = load_settings()
    assert Settings.from_mapping(settings.as_dict(redact=False)) == settings


# -- a host app's own settings object ----------------------------------------------------------


def test_plain_dict_in_any_case(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings.from_mapping(
        {
            "MAX_HISTORY_SIZE": 4,
            "ack_tracking_window": "2h",
            "META": {"APP_SECRET": "s", "verify_token": 99},
            "server": {"port": "9001"},
        }
    )
    assert settings.env == "development"
    assert settings.manager.max_history_size == 4
    assert settings.manager.ack_tracking_window == 7200
    assert (settings.meta.app_secret, settings.meta.verify_token) == ("s", "99")
    assert settings.server.port == 9001


def test_plain_dict_with_production_env_is_held_to_production_rules() -> None:
    with pytest.raises(SettingsError) as exc:
        Settings.from_mapping({"env": "production"})
    assert "server.admin_token" in problems(exc)


def test_host_dynaconf_object(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(
        tmp_path,
        """
[default]
database_url = "postgres://db/bot"
max_history_size = 4
[default.meta]
app_secret = "host-secret"
[production]
max_history_size = 1
""",
        name="host.toml",
    )
    monkeypatch.setenv("HOSTAPP_PROFILE", "ultra_lean")
    host = Dynaconf(envvar_prefix="HOSTAPP", settings_files=[str(path)], environments=True)
    with caplog.at_level(logging.WARNING, logger="plugin.settings.loading"):
        settings = Settings.from_mapping(host)
    assert settings.env == "development"
    assert settings.manager.profile == "ultra_lean"
    assert settings.manager.max_history_size == 4
    assert settings.meta.app_secret == "host-secret"
    assert "database_url" in caplog.text  # the host's own keys: a warning, not an error


def test_host_object_of_another_type_is_refused() -> None:
    with pytest.raises(TypeError):
        Settings.from_mapping(["max_history_size", 3])


# -- the shipped settings.toml -----------------------------------------------------------------


def test_shipped_settings_load_in_development(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    settings = load_settings()  # what `make serve` does
    assert settings.env == "development"
    assert settings.meta.verify_token == "dev-verify-token"
    assert settings.server.admin_token is None
    assert settings.manager == load_settings(SHIPPED).manager


def test_shipped_settings_leave_profiles_in_charge(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WHATSAPP_PROFILE", "zero_history")
    manager = load_settings(SHIPPED).manager
    assert (manager.session_period, manager.keep_history) == (6 * 3600, False)


def test_shipped_production_needs_secrets_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(SettingsError) as exc:
        load_settings(SHIPPED, env="production")
    assert {"server.admin_token", "meta.app_secret", "meta.verify_token"} <= set(problems(exc))
    for name, value in PRODUCTION_SECRETS.items():
        monkeypatch.setenv(name, value)
    assert load_settings(SHIPPED, env="production").production


def test_shipped_settings_document_every_manager_key_with_its_default() -> None:
    lines = SHIPPED.read_text(encoding="utf-8").splitlines()
    default_table = lines[lines.index("[default]") :]
    default_table = default_table[
        : next(i for i, line in enumerate(default_table) if line.startswith("[default.server]"))
    ]
    for key in MANAGER_KEYS:
        pattern = re.compile(rf"^#?\s*{key}\s*=\s*(.+)$")
        found = [i for i, line in enumerate(default_table) if pattern.match(line)]
        assert len(found) == 1, f"{key} is not written once in [default]"
        index = found[0]
        assert default_table[index - 1].startswith("#"), f"{key} has no comment above it"
        written = pattern.match(default_table[index])
        assert written is not None
        value = tomllib.loads(f"v = {written.group(1)}")["v"]
        assert value == DEFAULTS[key], f"{key} documents {value!r}, not {DEFAULTS[key]!r}"


def test_shipped_settings_document_every_table() -> None:
    text = SHIPPED.read_text(encoding="utf-8")
    for table in (
        "[default]",
        "[default.server]",
        "[default.meta]",
        "[default.twilio]",
        "[default.waha]",
        "[default.bridge]",
        "[development]",
        "[production]",
    ):
        assert f"\n{table}\n" in text


def test_hook_and_shutdown_timeouts(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    assert (settings.hook_timeout, settings.shutdown_timeout) == (10.0, 10.0)
    assert settings.as_dict()["hook_timeout"] == "10s"
    monkeypatch.setenv("WHATSAPP_HOOK_TIMEOUT", "250ms")
    monkeypatch.setenv("WHATSAPP_SHUTDOWN_TIMEOUT", "30s")
    settings = load_settings()
    assert (settings.hook_timeout, settings.shutdown_timeout) == (0.25, 30.0)
    monkeypatch.setenv("WHATSAPP_HOOK_TIMEOUT", "2h")
    monkeypatch.setenv("WHATSAPP_SHUTDOWN_TIMEOUT", "soon")
    with pytest.raises(SettingsError) as exc:
        load_settings()
    assert problems(exc) == {"hook_timeout": "2h", "shutdown_timeout": "soon"}


@pytest.mark.parametrize("durable", [{"store": "redis"}, {"state_file": "/tmp/wa-state.json"}])
def test_production_keeping_recipients_across_restarts_requires_a_redaction_key(durable) -> None:
    base = {
        "env": "production",
        "server": {"admin_token": "admin"},
        "meta": {"app_secret": "s", "verify_token": "v"},
        **durable,
    }
    with pytest.raises(SettingsError) as exc:
        Settings.from_mapping(base)
    assert set(problems(exc)) == {"redaction_key"}
    settings = Settings.from_mapping({**base, "redaction_key": "a-long-secret"})
    assert not any("redaction_key" in warning for warning in settings.warnings())


def test_development_warns_that_hashes_change_without_a_redaction_key() -> None:
    settings = Settings.from_mapping({"meta": {"app_secret": "s"}})
    assert any("change at each restart" in warning for warning in settings.warnings())
