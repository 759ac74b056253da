"""The Redis store against the in-memory store: requests/s and p99 of ``wa-sessions serve``.

    make bench-redis             # or: .venv/bin/python benchmarks/redis_store.py
                                 #        [--seconds 10 --repeats 3 --redis-url redis://…]

Two ``wa-sessions serve`` processes on loopback, started up front, identical but for the store:
one on the embedded in-memory store, one on Redis (``store = "redis"``, a prefix of its own,
deleted at the end). The load is the one of benchmarks/webhook_throughput.py: distinct pre-signed
Meta notifications in rotation (``sent``, ``delivered``, ``read`` for new messages: the first
pass through the rotation adopts and applies, later passes are duplicates), 1 status per POST
and 50, driven by ``wrk`` (32 connections)
with benchmarks/wrk_bodies.lua when installed, otherwise by the bundled aiohttp load generator.
Runs are interleaved after a warm-up; figures are medians over the repetitions, the ratio is the
median of the ratios within each repetition.

Target (issue 10): with 1 status per POST, the Redis store at least 0.5x the in-memory store's
requests/s, with p99 under 30 ms. 50 statuses per POST is reported with no target. The last line
prints the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loadgen import HOST, SECRET, free_port, start_server, stop_server, wait_ready
from webhook_throughput import (
    PER_POST,
    measure_interleaved,
    paired,
    print_table,
    run_aiohttp,
    run_wrk,
    write_payloads,
)

TARGET_RATIO = 0.5
TARGET_P99_MS = 30.0
STORES = ("memory", "redis")  # the server names in the table too


def start(store: str, port: int, redis_url: str, prefix: str) -> subprocess.Popen[bytes]:
    env = {
        "WHATSAPP_ENV": "development",
        "WHATSAPP_META__APP_SECRET": SECRET,
        "WHATSAPP_STORE": store,
        "WHATSAPP_REDIS_URL": redis_url,
        "WHATSAPP_REDIS_PREFIX": prefix,
    }
    argv = [str(Path(sys.executable).parent / "wa-sessions"), "--log-level", "WARNING", "serve"]
    return start_server([*argv, "--host", HOST, "--port", str(port)], env=env)


async def drop_prefix(redis_url: str, prefix: str) -> int:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_url)
    try:
        keys = [key async for key in client.scan_iter(match="{" + prefix + "}*", count=1000)]
        for first in range(0, len(keys), 1000):
            await client.delete(*keys[first : first + 1000])
        return len(keys)
    finally:
        await client.aclose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="per measured run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--bodies", type=int, default=4000, help="distinct bodies per payload")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--generator", choices=("auto", "wrk", "aiohttp"), default="auto")
    args = parser.parse_args()
    use_wrk = args.generator == "wrk" or (args.generator == "auto" and shutil.which("wrk"))
    prefix = f"wa-bench-{secrets.token_hex(4)}"

    ports = {store: free_port() for store in STORES}
    servers = {store: start(store, ports[store], args.redis_url, prefix) for store in STORES}
    try:
        for store in STORES:
            wait_ready(f"http://{HOST}:{ports[store]}/healthz", servers[store])
        with tempfile.TemporaryDirectory() as tmp:
            payloads = write_payloads(Path(tmp), args.bodies)

            def measure(store: str, per_post: int, seconds: float) -> dict[str, float]:
                url = f"http://{HOST}:{ports[store]}/webhooks/meta"
                path, bodies = payloads[per_post]
                if use_wrk:
                    return run_wrk(url, path, seconds, args.connections, 1)
                return run_aiohttp(url, bodies, seconds, args.connections)

            results = measure_interleaved(list(STORES), measure, args.seconds, args.repeats)
    finally:
        for process in servers.values():
            stop_server(process)
        asyncio.run(drop_prefix(args.redis_url, prefix))

    generator = "wrk (benchmarks/wrk_bodies.lua)" if use_wrk else "the aiohttp load generator"
    print(
        f"Redis store vs in-memory store, wa-sessions serve on loopback, {args.connections} "
        f"connections, {generator}, {args.seconds:g} s per run, median of {args.repeats} "
        f"interleaved repetitions; {args.bodies:,} (1 status) / {max(1, args.bodies // 5):,} "
        f"(50 statuses) distinct signed bodies in rotation"
    )
    print(
        f"machine: {os.cpu_count()} CPUs, load average at the end "
        f"{', '.join(f'{x:.2f}' for x in os.getloadavg())} (1, 5, 15 min)"
    )
    medians = print_table(results, list(STORES))
    ratio = {n: paired(results, "redis", "memory", n) for n in PER_POST}
    p99 = medians[("redis", 1)]["p99_ms"]
    print(
        f"ratio redis/memory requests/s: 1 status {ratio[1]:.2f}x (target >= {TARGET_RATIO}x), "
        f"50 statuses {ratio[50]:.2f}x (no target); redis p99 with 1 status {p99:.1f} ms "
        f"(target < {TARGET_P99_MS:g} ms)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
