"""The newcomer's first five minutes, through the installed ``wa-sessions`` console script run
for real from the repository root: --version and help texts, check-config failing exactly when
serve would, the documented example plugin, a port already in use."""

from __future__ import annotations

import importlib.metadata
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from plugin.cli.main import _parser

ROOT = Path(__file__).resolve().parent.parent
#: The console script pip installed beside this interpreter: its sys.path does not start with
#: the working directory, unlike ``python -m``.
SCRIPT = Path(sys.executable).parent / "wa-sessions"
SUBCOMMANDS = ("serve", "check-config", "stats", "debug-info", "simulate")


def clean_env(**variables: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("WHATSAPP_") and not k.endswith("_FOR_DYNACONF")
    }
    env.update(variables)
    return env


def wa_sessions(*args: str, cwd: Path = ROOT, **variables: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), *args],
        cwd=cwd,
        env=clean_env(**variables),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_console_script_is_installed() -> None:
    assert SCRIPT.is_file(), "run `make install`: the tests use the installed console script"


def test_version_comes_from_the_installed_distribution() -> None:
    result = wa_sessions("--version")
    assert result.returncode == 0
    expected = importlib.metadata.version("whatsapp-session-plugin")
    assert result.stdout.strip() == f"wa-sessions {expected}"


def test_every_subcommand_has_a_help_line_and_a_description() -> None:
    parser = _parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    listed = {choice.dest: choice.help for choice in sub._choices_actions}
    assert set(listed) == set(SUBCOMMANDS)
    assert all(listed[name] for name in SUBCOMMANDS)
    for name, command in sub.choices.items():
        assert command.description, name
        for action in command._actions:
            assert action.help, f"{name} {action.option_strings}"
    overview = wa_sessions("--help").stdout
    for name in SUBCOMMANDS:
        assert name in overview
    assert "--verbose" in wa_sessions("simulate", "--help").stdout


# -- check-config fails exactly when serve would ------------------------------------------------


def write_settings(directory: Path, body: str) -> Path:
    path = directory / "settings.toml"
    path.write_text(body, encoding="utf-8")
    return path


def test_an_unimportable_plugin_fails_check_config_and_serve_alike(tmp_path: Path) -> None:
    settings = write_settings(tmp_path, '[default]\nplugins = ["nonexistent.module"]\n')
    check = wa_sessions("check-config", "--settings", str(settings))
    serve = wa_sessions("serve", "--settings", str(settings), "--port", str(free_port()))
    for result in (check, serve):
        assert result.returncode == 2, result.stderr
        assert "nonexistent.module" in result.stderr
        assert "No module named 'nonexistent'" in result.stderr
        assert "Traceback" not in result.stderr
    assert check.stdout == ""


def test_production_rules_are_the_same_for_check_config_and_serve(tmp_path: Path) -> None:
    settings = write_settings(tmp_path, "[default]\nmax_histroy_size = 3\n")
    secrets = {
        "WHATSAPP_ENV": "production",
        "WHATSAPP_SERVER__ADMIN_TOKEN": "a-7f3a",
        "WHATSAPP_META__APP_SECRET": "s-9c1e",
        "WHATSAPP_META__VERIFY_TOKEN": "v-2b4d",
    }
    check = wa_sessions("check-config", "--settings", str(settings), **secrets)
    serve = wa_sessions("serve", "--settings", str(settings), "--port", str(free_port()), **secrets)
    for result in (check, serve):
        assert result.returncode == 2, result.stderr
        assert "max_histroy_size" in result.stderr
        assert "\n    did you mean max_history_size?" in result.stderr


# -- the documented way to enable the example plugin works from the repository root -------------


def test_check_config_loads_the_example_plugin_from_the_repository_root(tmp_path: Path) -> None:
    settings = write_settings(tmp_path, '[default]\nplugins = ["examples.audit_log.plugin"]\n')
    result = wa_sessions("check-config", "--settings", str(settings))
    assert result.returncode == 0, result.stderr
    assert "plugins: examples.audit_log.plugin (loaded: examples.audit_log.plugin)" in (
        result.stdout
    )


def wait_until_up(url: str, process: subprocess.Popen[str], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"serve exited early: {process.communicate()}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"{url} did not come up")


def test_serve_runs_the_example_plugin_listed_in_settings(tmp_path: Path) -> None:
    settings = write_settings(tmp_path, '[default]\nplugins = ["examples.audit_log.plugin"]\n')
    audit = tmp_path / "audit.jsonl"
    port = free_port()
    process = subprocess.Popen(
        [str(SCRIPT), "serve", "--settings", str(settings), "--port", str(port)],
        cwd=ROOT,
        env=clean_env(WA_AUDIT_LOG=str(audit)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until_up(f"http://127.0.0.1:{port}/healthz", process)
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert "plugin loaded: examples.audit_log.plugin" in stderr
    assert '"event": "cleanup"' in audit.read_text()  # its hook ran at shutdown


# -- a port in use: one line naming it, exit 1 ---------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_a_port_in_use_is_one_line_naming_it(tmp_path: Path, host: str) -> None:
    settings = write_settings(tmp_path, "[default]\n")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = wa_sessions(
            "serve", "--settings", str(settings), "--host", host, "--port", str(port)
        )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"wa-sessions: port {port} is already in use")
    assert "serving on" not in result.stderr
