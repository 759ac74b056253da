"""``wa-sessions check-config`` run for real: a subprocess in the repository root, settings from
the shipped settings.toml and environment variables."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from plugin.core.manager import MessageSessionManager

ROOT = Path(__file__).resolve().parent.parent


def check_config(*args: str, **variables: str) -> subprocess.CompletedProcess[str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("WHATSAPP_") and not name.endswith("_FOR_DYNACONF")
    }
    env.update(variables)
    return subprocess.run(
        [sys.executable, "-m", "plugin.cli.main", "check-config", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_valid_override_exits_0_with_a_summary() -> None:
    result = check_config(WHATSAPP_MAX_HISTORY_SIZE="3")
    assert result.returncode == 0, result.stderr
    assert "env=development" in result.stdout
    assert "max_history_size = 3" in result.stdout
    assert "providers: meta" in result.stdout
    assert "UNSIGNED WEBHOOKS ACCEPTED for provider meta" in result.stderr
    bound = MessageSessionManager(max_history_size=3).memory_bound_bytes()
    assert f"memory bound (in-process manager, from these options): {bound / 1e6:.1f} MB" in (
        result.stdout
    )


def test_invalid_value_exits_2_naming_key_and_value() -> None:
    result = check_config(WHATSAPP_MAX_HISTORY_SIZE="-1")
    assert result.returncode == 2
    assert "max_history_size" in result.stderr
    assert "-1" in result.stderr
    assert result.stdout == ""


def test_every_error_is_printed_at_once() -> None:
    result = check_config(
        WHATSAPP_MAX_HISTORY_SIZE="-1", WHATSAPP_SESSION_PERIOD="5h", WHATSAPP_SERVER__PORT="x"
    )
    assert result.returncode == 2
    for key in ("max_history_size", "session_period", "server.port"):
        assert key in result.stderr


def test_production_without_secrets_exits_2_naming_them() -> None:
    result = check_config(WHATSAPP_ENV="production")
    assert result.returncode == 2
    for key in ("server.admin_token", "meta.app_secret", "meta.verify_token"):
        assert key in result.stderr


def test_production_with_secrets_passes_and_prints_none_of_them() -> None:
    result = check_config(
        WHATSAPP_ENV="production",
        WHATSAPP_SERVER__ADMIN_TOKEN="admin-7f3a",
        WHATSAPP_META__APP_SECRET="app-9c1e",
        WHATSAPP_META__VERIFY_TOKEN="verify-2b4d",
        WHATSAPP_REDACTION_KEY="hash-5e6f",
    )
    assert result.returncode == 0, result.stderr
    assert "env=production" in result.stdout
    for secret in ("admin-7f3a", "app-9c1e", "verify-2b4d", "hash-5e6f"):
        assert secret not in result.stdout + result.stderr


def test_missing_settings_file_exits_2() -> None:
    result = check_config("--settings", "does-not-exist.toml")
    assert result.returncode == 2
    assert "settings_file" in result.stderr
