"""Webhook throughput: ``wa-sessions serve`` vs a minimal aiohttp handler (vs pywa if installed).

    make bench-webhooks          # or: .venv/bin/python benchmarks/webhook_throughput.py
                                 #        [--pywa-python /path/to/venv/bin/python]

Each server is its own process on loopback, all started up front: ``wa-sessions serve`` (shipped
settings, development environment, an app secret: every request's signature is checked), the
minimal handler of benchmarks/minimal_server.py (HMAC check, ``json.loads``, a dict update per
status: the physical limit of a Python aiohttp webhook on this machine) and, given a Python that
has pywa installed (``pip install pywa fastapi 'uvicorn[standard]'`` in a separate venv),
benchmarks/pywa_server.py. The load: many distinct pre-signed Meta notifications in rotation
(1 status per POST, and 50), for ever new message ids, each with a ``contacts`` block; driven by
``wrk`` with benchmarks/wrk_bodies.lua when installed, otherwise by the bundled aiohttp load
generator (benchmarks/loadgen.py). Runs are interleaved (the server order rotates every
repetition) after a warm-up; figures are medians over the repetitions, ratios medians of the
ratios within each repetition.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from itertools import cycle
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loadgen import (
    HOST,
    SECRET,
    StatusFeed,
    drive,
    free_port,
    start_server,
    stop_server,
    wait_ready,
)

HERE = Path(__file__).resolve().parent
TARGET_MINIMAL = 0.7
TARGET_P99_MS = 20.0
TARGET_PYWA = 1.5


def write_bodies(path: Path, per_post: int, count: int, start: int) -> list[tuple[bytes, str]]:
    bodies = StatusFeed(per_post, start=start).bodies(count)
    with path.open("wb") as out:
        for body, signature in bodies:
            out.write(signature.encode() + b"\t" + body + b"\n")
    return bodies


def run_wrk(
    url: str, bodies_file: Path, seconds: float, connections: int, threads: int
) -> dict[str, float]:
    completed = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{seconds:g}s",
            "--timeout",
            "10s",
            "-s",
            str(HERE / "wrk_bodies.lua"),
            url,
            "--",
            str(bodies_file),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    line = [row for row in completed.stdout.splitlines() if row.startswith("{")][-1]
    got = json.loads(line)
    return {
        "rps": got["requests"] / (got["duration_us"] / 1e6),
        "p50_ms": got["p50_us"] / 1e3,
        "p99_ms": got["p99_us"] / 1e3,
        "errors": got["non2xx"] + got["socket_errors"],
    }


def run_aiohttp(
    url: str, bodies: list[tuple[bytes, str]], seconds: float, connections: int
) -> dict[str, float]:
    source = cycle(bodies)
    result = asyncio.run(drive(url, lambda: next(source), connections, seconds))
    return {
        "rps": result.requests / result.seconds,
        "p50_ms": result.percentile(0.5) * 1e3,
        "p99_ms": result.percentile(0.99) * 1e3,
        "errors": result.errors + sum(n for code, n in result.statuses.items() if code != 200),
    }


Payloads = dict[int, tuple[Path, list[tuple[bytes, str]]]]
Results = dict[tuple[str, int], list[dict[str, float]]]
PER_POST = (1, 50)


def write_payloads(directory: Path, bodies: int) -> Payloads:
    """The bodies file (and bodies) of each payload: ``bodies`` of 1 status, a fifth as many
    of 50."""
    payloads: Payloads = {}
    for index, per_post in enumerate(PER_POST):
        path = directory / f"bodies-{per_post}.txt"
        count = bodies if per_post == 1 else max(1, bodies // 5)
        payloads[per_post] = (path, write_bodies(path, per_post, count, index * 10**7))
    return payloads


def measure_interleaved(
    names: list[str],
    measure: Callable[[str, int, float], dict[str, float]],
    seconds: float,
    repeats: int,
) -> Results:
    """A 2 s warm-up of each server and payload, then ``repeats`` repetitions of every run,
    the server order rotating each repetition."""
    results: Results = {}
    for name in names:
        for per_post in PER_POST:
            measure(name, per_post, 2)
    for rep in range(repeats):
        order = names[rep % len(names) :] + names[: rep % len(names)]
        for per_post in PER_POST:
            for name in order:
                results.setdefault((name, per_post), []).append(measure(name, per_post, seconds))
        print(f"  (repetition {rep + 1}/{repeats} done)", file=sys.stderr, flush=True)
    return results


def print_table(
    results: Results, names: list[str], handled: Callable[[str, int], int] | None = None
) -> dict[tuple[str, int], dict[str, float]]:
    """The medians of each server and payload, as a table (``handled``: statuses a server
    applies of a POST, all of them by default); returns them."""
    width = max(8, *(len(name) for name in names))
    header = (
        f"{'server':<{width}} | {'statuses/POST':>13} | {'requests/s':>10} | "
        f"{'receipts/s':>10} | {'p50 ms':>7} | {'p99 ms':>7} | {'errors':>6}"
    )
    print(header)
    print("-" * len(header))
    medians: dict[tuple[str, int], dict[str, float]] = {}
    for per_post in PER_POST:
        for name in names:
            runs = results[(name, per_post)]
            m = {k: statistics.median(r[k] for r in runs) for k in ("rps", "p50_ms", "p99_ms")}
            m["errors"] = sum(r["errors"] for r in runs)
            medians[(name, per_post)] = m
            count = per_post if handled is None else handled(name, per_post)
            print(
                f"{name:<{width}} | {per_post:>13} | {m['rps']:>10,.0f} | "
                f"{m['rps'] * count:>10,.0f} | {m['p50_ms']:>7.2f} | {m['p99_ms']:>7.2f} | "
                f"{m['errors']:>6.0f}"
            )
    return medians


def paired(results: Results, a: str, b: str, per_post: int) -> float:
    """The median over the repetitions of ``a``'s requests/s over ``b``'s."""
    return statistics.median(
        x["rps"] / y["rps"]
        for x, y in zip(results[(a, per_post)], results[(b, per_post)], strict=True)
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="per measured run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--bodies", type=int, default=4000, help="distinct bodies per payload")
    parser.add_argument("--pywa-python", help="a Python with pywa, fastapi and uvicorn")
    parser.add_argument("--generator", choices=("auto", "wrk", "aiohttp"), default="auto")
    args = parser.parse_args()
    use_wrk = args.generator == "wrk" or (args.generator == "auto" and shutil.which("wrk"))

    ports = {}
    servers: dict[str, subprocess.Popen[bytes]] = {}
    ports["wa-sessions"] = free_port()
    servers["wa-sessions"] = start_server(
        [
            str(Path(sys.executable).parent / "wa-sessions"),
            "--log-level",
            "WARNING",
            "serve",
            "--host",
            HOST,
            "--port",
            str(ports["wa-sessions"]),
        ],
        env={"WHATSAPP_ENV": "development", "WHATSAPP_META__APP_SECRET": SECRET},
    )
    ports["minimal"] = free_port()
    servers["minimal"] = start_server(
        [
            sys.executable,
            str(HERE / "minimal_server.py"),
            "--port",
            str(ports["minimal"]),
            "--secret",
            SECRET,
        ],
    )
    if args.pywa_python:
        ports["pywa"] = free_port()
        servers["pywa"] = start_server(
            [
                args.pywa_python,
                str(HERE / "pywa_server.py"),
                "--port",
                str(ports["pywa"]),
                "--secret",
                SECRET,
            ],
            log=Path("/tmp/pywa-server.log"),
        )
    names = list(servers)
    try:
        for name in names:
            wait_ready(f"http://{HOST}:{ports[name]}/healthz", servers[name])
        with tempfile.TemporaryDirectory() as tmp:
            payloads = write_payloads(Path(tmp), args.bodies)

            def measure(name: str, per_post: int, seconds: float) -> dict[str, float]:
                url = f"http://{HOST}:{ports[name]}/webhooks/meta"
                path, bodies = payloads[per_post]
                if use_wrk:
                    return run_wrk(url, path, seconds, args.connections, args.threads)
                return run_aiohttp(url, bodies, seconds, args.connections)

            results = measure_interleaved(names, measure, args.seconds, args.repeats)
    finally:
        for process in servers.values():
            stop_server(process)

    generator = (
        f"wrk ({args.threads} thread(s), benchmarks/wrk_bodies.lua)"
        if use_wrk
        else "the bundled aiohttp load generator"
    )
    print(
        f"webhook throughput on loopback, {args.connections} connections, {generator}, "
        f"{args.seconds:g} s per run, median of {args.repeats} interleaved repetitions; "
        f"{args.bodies:,} (1 status) / {max(1, args.bodies // 5):,} (50 statuses) distinct "
        f"signed bodies; Python {sys.version.split()[0]}"
    )
    print(
        f"machine: {os.cpu_count()} CPUs, load average at the end "
        f"{', '.join(f'{x:.2f}' for x in os.getloadavg())} (1, 5, 15 min)"
    )
    # pywa builds one update from statuses[0]: it handles one status of a POST
    medians = print_table(results, names, lambda name, n: 1 if name == "pywa" else n)

    if "pywa" in servers:
        print(
            "pywa builds one update per notification from statuses[0]: of a 50-status POST "
            "it handles one status, so its receipts/s column counts 1 per request"
        )

    parts = [
        "ratio wa-sessions/minimal requests/s: "
        + ", ".join(
            f"{p} status{'es' if p > 1 else ''} {paired(results, 'wa-sessions', 'minimal', p):.2f}x"
            for p in (1, 50)
        )
        + f" (target >= {TARGET_MINIMAL}x)",
        "wa-sessions p99: "
        + ", ".join(f"{medians[('wa-sessions', p)]['p99_ms']:.1f} ms" for p in (1, 50))
        + f" (target < {TARGET_P99_MS:g} ms)",
    ]
    if "pywa" in servers:
        parts.append(
            "wa-sessions/pywa requests/s: "
            + ", ".join(
                f"{p} status{'es' if p > 1 else ''} "
                f"{paired(results, 'wa-sessions', 'pywa', p):.2f}x"
                for p in (1, 50)
            )
            + f" (target >= {TARGET_PYWA}x)"
        )
    else:
        parts.append("pywa not measured (no --pywa-python)")
    print("; ".join(parts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
