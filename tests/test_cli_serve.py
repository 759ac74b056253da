"""``wa-sessions serve`` as a real process (start, answer, graceful SIGTERM) and ``stats`` /
``debug-info`` against running servers."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from plugin.cli.main import main
from tests.providers import meta_status, meta_status_body, sign_meta
from tests.serving import make_app

ROOT = Path(__file__).resolve().parent.parent
SERVE = (sys.executable, "-m", "plugin.cli.main", "serve")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_up(url: str, process: subprocess.Popen[str], timeout: float = 15.0) -> None:
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


def start_serve(
    settings: Path, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[str], int]:
    """``wa-sessions serve --settings settings`` on a free port, up (``/healthz`` answers), with
    ``env`` (default: this environment without its ``WHATSAPP_*`` variables); killed if it
    does not come up."""
    if env is None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("WHATSAPP_")}
    port = free_port()
    process = subprocess.Popen(
        [*SERVE, "--settings", str(settings), "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until_up(f"http://127.0.0.1:{port}/healthz", process)
    except BaseException:
        process.kill()
        process.communicate(timeout=10)
        raise
    return process, port


def test_serve_answers_and_shuts_down_gracefully_on_sigterm(tmp_path):
    settings = tmp_path / "settings.toml"
    settings.write_text(
        '[default.meta]\napp_secret = "serve-secret"\n'
        '[default.server]\nadmin_token = "serve-admin"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHATSAPP_")}
    process, port = start_serve(settings, env)
    try:
        now = str(int(time.time()))
        body = meta_status_body([meta_status("wamid.SERVE", "sent", timestamp=now)])
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/webhooks/meta",
            data=body,
            headers={"X-Hub-Signature-256": sign_meta(body, "serve-secret")},
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 200
        stats = subprocess.run(
            [
                sys.executable,
                "-m",
                "plugin.cli.main",
                "stats",
                "--settings",
                str(settings),
                "--url",
                f"http://127.0.0.1:{port}",
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert stats.returncode == 0, stats.stderr
        document = json.loads(stats.stdout)
        assert document["summary"]["receipts"]["adopted"] == 1
        assert document["webhooks"]["meta"]["requests"] == 1
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert "Periodic cleanup completed" in stderr  # the final cleanup
    assert "WhatsApp session plugin stopped" in stderr
    assert "serve-secret" not in stderr and "serve-admin" not in stderr


async def test_stats_and_debug_info_query_a_running_server(aiohttp_server, capsys):
    app, _ = make_app({"server": {"admin_token": "query-token"}})
    server = await aiohttp_server(app)
    url = str(server.make_url("")).rstrip("/")
    loop = asyncio.get_running_loop()
    code = await loop.run_in_executor(None, main, ["stats", "--url", url, "--token", "query-token"])
    assert code == 0
    assert set(json.loads(capsys.readouterr().out)) == {
        "summary",
        "sessions",
        "history",
        "webhooks",
    }
    code = await loop.run_in_executor(
        None, main, ["debug-info", "--url", url, "--token", "query-token"]
    )
    assert code == 0
    assert "manager_stats" in json.loads(capsys.readouterr().out)
    code = await loop.run_in_executor(None, main, ["stats", "--url", url, "--token", "wrong"])
    assert code == 1
    assert "HTTP 401" in capsys.readouterr().err  # DESIGN.md: a wrong credential gets 401


def test_stats_against_an_unreachable_server_exits_1(capsys):
    code = main(["stats", "--url", f"http://127.0.0.1:{free_port()}", "--token", "t"])
    assert code == 1
    err = capsys.readouterr().err
    assert "cannot reach the server at http://127.0.0.1:" in err


def test_stats_defaults_come_from_the_settings(tmp_path, capsys):
    port = free_port()
    settings = tmp_path / "settings.toml"
    settings.write_text(f'[default.server]\nport = {port}\nadmin_token = "x"\n')
    assert main(["debug-info", "--settings", str(settings)]) == 1
    assert f"http://127.0.0.1:{port}" in capsys.readouterr().err


def test_serve_fixes_glibc_mmap_threshold_unless_the_environment_does(monkeypatch):
    from plugin.server.app import _pin_mmap_threshold

    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")
    assert _pin_mmap_threshold() is False  # the operator's own setting wins
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_")
    glibc = (
        Path("/lib/x86_64-linux-gnu/libc.so.6").exists()
        or Path("/lib/aarch64-linux-gnu/libc.so.6").exists()
    )
    assert _pin_mmap_threshold() is glibc
