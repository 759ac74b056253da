"""Unknown settings keys: a "did you mean" on its own line; production refuses them in its own
settings file and ``WHATSAPP_*`` variables, while a host's own settings object may carry keys of
its own (only warned about)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from dynaconf import Dynaconf

from plugin.core.errors import SettingsError
from plugin.settings.loading import Settings, load_settings

PRODUCTION = {
    "WHATSAPP_ENV": "production",
    "WHATSAPP_SERVER__ADMIN_TOKEN": "admin-token-value",
    "WHATSAPP_META__APP_SECRET": "app-secret-value",
    "WHATSAPP_META__VERIFY_TOKEN": "verify-token-value",
}
TYPOS = (
    "[default]\nmax_histroy_size = 3\n[default.sever]\nport = 9000\n"
    "[default.meta]\nverfy_token = 'x'\n"
)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_typos_get_a_suggestion_on_their_own_line(
    workdir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (workdir / "settings.toml").write_text(TYPOS)
    with caplog.at_level(logging.WARNING, logger="plugin.settings.loading"):
        settings = load_settings()
    assert settings.manager.max_history_size == 10  # ignored, as it says
    messages = warnings_of(caplog)
    assert "unknown setting ignored: max_histroy_size\n    did you mean max_history_size?" in (
        messages
    )
    assert "unknown setting ignored: sever\n    did you mean server?" in messages
    assert "unknown setting ignored: meta.verfy_token\n    did you mean meta.verify_token?" in (
        messages
    )


def test_a_key_close_to_nothing_gets_no_suggestion(
    workdir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (workdir / "settings.toml").write_text("[default]\ncolour = 'blue'\n")
    with caplog.at_level(logging.WARNING, logger="plugin.settings.loading"):
        load_settings()
    assert warnings_of(caplog) == ["unknown setting ignored: colour"]


def test_production_refuses_unknown_keys_of_its_own_file(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in PRODUCTION.items():
        monkeypatch.setenv(name, value)
    (workdir / "settings.toml").write_text(TYPOS)
    with pytest.raises(SettingsError) as exc:
        load_settings()
    keys = {p.key for p in exc.value.problems}
    assert keys == {"max_histroy_size", "sever", "meta.verfy_token"}
    text = str(exc.value)
    assert "\n    did you mean max_history_size?" in text
    assert "\n    did you mean server?" in text
    assert "'x'" not in text  # an unknown key's value may be a secret: a token is never shown


def test_production_refuses_unknown_whatsapp_variables(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in PRODUCTION.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("WHATSAPP_MAX_HISTROY_SIZE", "3")
    monkeypatch.setenv("WHATSAPP_SEVER__PORT", "9000")
    with pytest.raises(SettingsError) as exc:
        load_settings()
    assert {p.key for p in exc.value.problems} == {"max_histroy_size", "sever"}
    assert "did you mean max_history_size?" in str(exc.value)


def test_production_without_unknown_keys_loads(workdir: Path, monkeypatch: pytest.MonkeyPatch):
    for name, value in PRODUCTION.items():
        monkeypatch.setenv(name, value)
    assert load_settings().production


def test_a_host_object_in_production_may_carry_its_own_keys(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    host = {
        "env": "production",
        "database_url": "postgres://db/bot",
        "max_histroy_size": 3,
        "server": {"admin_token": "a"},
        "meta": {"app_secret": "s", "verify_token": "v"},
    }
    with caplog.at_level(logging.WARNING, logger="plugin.settings.loading"):
        settings = Settings.from_mapping(host)
    assert settings.production
    messages = warnings_of(caplog)
    assert "unknown setting ignored: database_url" in messages
    assert "unknown setting ignored: max_histroy_size\n    did you mean max_history_size?" in (
        messages
    )


def test_a_host_dynaconf_object_in_production_may_carry_its_own_keys(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "host.toml"
    path.write_text(
        "[production]\ndatabase_url = 'postgres://db/bot'\n"
        "[production.server]\nadmin_token = 'a'\n"
        "[production.meta]\napp_secret = 's'\nverify_token = 'v'\n"
    )
    host = Dynaconf(
        envvar_prefix="HOSTAPP", settings_files=[str(path)], environments=True, env="production"
    )
    with caplog.at_level(logging.WARNING, logger="plugin.settings.loading"):
        settings = Settings.from_mapping(host)
    assert settings.production
    assert "unknown setting ignored: database_url" in warnings_of(caplog)
