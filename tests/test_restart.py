"""Restarts without loss: ``wa-sessions serve`` with a ``state_file``, stopped by SIGTERM (or
killed after a periodic snapshot) and started again, carries on with the same counts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.providers import meta_status, meta_status_body, sign_meta
from tests.test_cli_serve import ROOT, free_port, wait_until_up

SECRET = "restart-secret"
ADMIN = "restart-admin"


def write_settings(tmp_path: Path, snapshot_interval: str = "1h") -> Path:
    settings = tmp_path / "settings.toml"
    settings.write_text(
        "[default]\n"
        f'state_file = "{tmp_path / "state" / "sessions.json"}"\n'
        f'snapshot_interval = "{snapshot_interval}"\n'
        'redaction_key = "restart-test-key"\n'
        f'[default.meta]\napp_secret = "{SECRET}"\n'
        f'[default.server]\nadmin_token = "{ADMIN}"\n'
    )
    return settings


class Server:
    def __init__(self, settings: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("WHATSAPP_")}
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "plugin.cli.main",
                "serve",
                "--settings",
                str(settings),
                "--port",
                str(self.port),
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_until_up(f"{self.url}/healthz", self.process)

    def post(self, statuses: list[dict[str, object]]) -> int:
        body = meta_status_body(statuses)
        request = urllib.request.Request(
            f"{self.url}/webhooks/meta",
            data=body,
            headers={"X-Hub-Signature-256": sign_meta(body, SECRET)},
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)

    def stats(self) -> dict[str, object]:
        request = urllib.request.Request(
            f"{self.url}/sessions/stats", headers={"Authorization": f"Bearer {ADMIN}"}
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read())

    def stop(self, sig: int = signal.SIGTERM) -> str:
        self.process.send_signal(sig)
        _, stderr = self.process.communicate(timeout=30)
        return stderr


def traffic(now: int) -> list[dict[str, object]]:
    sent = [
        meta_status(f"wamid.RESTART{i:03d}", "sent", timestamp=str(now - 60)) for i in range(20)
    ]
    delivered = [
        meta_status(f"wamid.RESTART{i:03d}", "delivered", timestamp=str(now - 30))
        for i in range(0, 20, 2)
    ]
    return sent + delivered


def test_sigterm_mid_day_and_a_restart_leave_stats_unchanged(tmp_path):
    settings = write_settings(tmp_path)
    now = int(time.time())
    first = Server(settings)
    try:
        assert first.post(traffic(now)) == 200
        before = first.stats()
    finally:
        stderr = first.stop()
    assert first.process.returncode == 0, stderr
    assert "state saved to" in stderr
    assert before["summary"]["sent"] == 20 and before["summary"]["delivered"] == 10

    second = Server(settings)
    try:
        assert second.stats() == before
        # Receipts for messages sent before the restart are applied, not unknown or adopted.
        assert second.post([meta_status("wamid.RESTART001", "read", timestamp=str(now))]) == 200
        after = second.stats()
    finally:
        second.stop()
    receipts = after["summary"]["receipts"]
    assert receipts["applied"] == before["summary"]["receipts"]["applied"] + 1
    assert receipts["adopted"] == before["summary"]["receipts"]["adopted"]
    assert receipts["unknown"] == 0
    assert after["summary"]["read"] == 1 and after["summary"]["delivered"] == 11


def test_a_crash_loses_at_most_one_snapshot_interval(tmp_path):
    settings = write_settings(tmp_path, snapshot_interval="1s")
    state = tmp_path / "state" / "sessions.json"
    now = int(time.time())
    first = Server(settings)
    try:
        assert first.post(traffic(now)) == 200
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not state.exists():
            time.sleep(0.1)
        assert state.exists(), "no periodic snapshot within 10 s"
        time.sleep(1.2)  # one more interval, so the snapshot holds the posted traffic
    finally:
        first.stop(signal.SIGKILL)  # no graceful shutdown, no final snapshot
    second = Server(settings)
    try:
        summary = second.stats()["summary"]
    finally:
        second.stop()
    assert summary["sent"] == 20 and summary["delivered"] == 10
