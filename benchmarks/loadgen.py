"""Webhook load for the server benchmarks: signed Meta status notifications, a server process
on loopback, an aiohttp load generator, and the RSS of a process."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from traffic import message_id, recipient

__all__ = [
    "LoadResult",
    "StatusFeed",
    "drive",
    "free_port",
    "meta_body",
    "rss_bytes",
    "sign",
    "start_server",
    "stop_server",
    "wait_ready",
]

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-app-secret"
HOST = "127.0.0.1"


def sign(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _status(mid: str, name: str, stamp: int, to: str) -> dict[str, Any]:
    item: dict[str, Any] = {"id": mid, "status": name, "timestamp": str(stamp), "recipient_id": to}
    if name != "read":
        item["conversation"] = {
            "id": hashlib.md5(to.encode()).hexdigest(),
            "origin": {"type": "utility"},
        }
        item["pricing"] = {
            "billable": True,
            "pricing_model": "PMP",
            "category": "utility",
            "type": "regular",
        }
    return item


def meta_body(statuses: Sequence[tuple[str, str, int, str]]) -> bytes:
    """A Meta notification: one entry, one change, the statuses (id, status, timestamp,
    recipient), with a ``contacts`` block naming the recipients (pywa drops statuses without
    one)."""
    recipients = dict.fromkeys(to for _, _, _, to in statuses)
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
        "contacts": [{"profile": {"name": "Patient"}, "wa_id": to} for to in recipients],
        "statuses": [_status(*s) for s in statuses],
    }
    document = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"value": value, "field": "messages"}]}],
    }
    return json.dumps(document, separators=(",", ":")).encode()


class StatusFeed:
    """An endless feed of status batches for ever new messages: each batch carries ``sent``
    for a third of its statuses' new messages, ``delivered`` for the previous third's, ``read``
    for the one before (about 1 in 20 deliveries repeated)."""

    def __init__(self, per_post: int, start: int = 0) -> None:
        self.per_post = per_post
        self.next = start
        self.backlog: list[tuple[str, str]] = []  # (id, recipient) waiting for delivered
        self.delivered: list[tuple[str, str]] = []  # waiting for read

    def batch(self) -> list[tuple[str, str, int, str]]:
        now = int(time.time())
        out: list[tuple[str, str, int, str]] = []
        while len(out) < self.per_post:
            if self.delivered and len(out) % 3 == 2:
                mid, to = self.delivered.pop()
                out.append((mid, "read", now, to))
            elif self.backlog and len(out) % 3 == 1:
                mid, to = self.backlog.pop()
                out.append((mid, "delivered", now, to))
                self.delivered.append((mid, to))
                if self.next % 20 == 0:
                    out.append((mid, "delivered", now, to))
            else:
                to = recipient(self.next)
                mid = message_id(self.next, to)
                self.next += 1
                out.append((mid, "sent", now, to))
                self.backlog.append((mid, to))
        return out[: self.per_post]

    def bodies(self, count: int) -> list[tuple[bytes, str]]:
        """``count`` distinct signed bodies."""
        out = []
        for _ in range(count):
            body = meta_body(self.batch())
            out.append((body, sign(body)))
        return out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def start_server(
    argv: Sequence[str], env: dict[str, str] | None = None, log: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start a server process from the repository root, its output to ``log`` (or dropped)."""
    out = open(log, "wb") if log is not None else subprocess.DEVNULL  # noqa: SIM115
    return subprocess.Popen(
        list(argv), cwd=ROOT, env={**os.environ, **(env or {})}, stdout=out, stderr=out
    )


def stop_server(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Wait until ``url`` answers (any status)."""

    async def poll() -> None:
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                if process.poll() is not None:
                    raise RuntimeError(f"server exited with status {process.returncode}")
                try:
                    async with session.get(url) as response:
                        await response.read()
                        return
                except aiohttp.ClientError:
                    await asyncio.sleep(0.1)
        raise RuntimeError(f"server not ready after {timeout} s: {url}")

    asyncio.run(poll())


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


@dataclass
class LoadResult:
    requests: int = 0
    errors: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def drive(
    url: str,
    next_body: Callable[[], tuple[bytes, str]],
    connections: int,
    seconds: float,
    rate: float | None = None,
    on_second: Callable[[float, LoadResult], None] | None = None,
) -> LoadResult:
    """POST signed bodies over ``connections`` keep-alive connections for ``seconds``, as fast as
    the server answers or at ``rate`` requests per second; ``on_second`` is called about once a
    second."""
    result = LoadResult()
    start = time.perf_counter()
    deadline = start + seconds
    slot = 0
    headers = {"Content-Type": "application/json"}

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal slot
        while True:
            if rate is not None:
                at = start + slot / rate
                slot += 1
                delay = at - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            if time.perf_counter() >= deadline:
                return
            body, signature = next_body()
            began = time.perf_counter()
            try:
                async with session.post(
                    url, data=body, headers={**headers, "X-Hub-Signature-256": signature}
                ) as response:
                    await response.read()
                    code = response.status
            except aiohttp.ClientError:
                result.errors += 1
                continue
            result.latencies.append(time.perf_counter() - began)
            result.requests += 1
            result.statuses[code] = result.statuses.get(code, 0) + 1

    async def ticker() -> None:
        while time.perf_counter() < deadline:
            await asyncio.sleep(1.0)
            if on_second is not None:
                on_second(time.perf_counter() - start, result)

    connector = aiohttp.TCPConnector(limit=connections, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as session:
        tick = asyncio.create_task(ticker())
        await asyncio.gather(*(worker(session) for _ in range(connections)))
        tick.cancel()
    result.seconds = time.perf_counter() - start
    return result
