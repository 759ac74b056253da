"""Real-time soak of ``wa-sessions serve``: continuous signed Meta load, RSS every second.

    make bench-soak-server       # or: .venv/bin/python benchmarks/soak_server.py [--minutes 10]

The server runs as its own process on loopback with the default profile and shipped
settings (development environment, an app secret so every request is signed). The load
generator (aiohttp, this process) POSTs signed status notifications at a steady rate for ever
new messages (``sent``, then ``delivered``, then ``read``; ~5% repeated deliveries), fast enough
that the manager reaches its caps (``max_tracked_messages`` records, as many tombstones) within
the first minute. RSS is read from ``/proc/PID/status`` every second; the target is that it stays
within 10% of its value after the first minute.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loadgen import (
    HOST,
    SECRET,
    LoadResult,
    StatusFeed,
    drive,
    free_port,
    rss_bytes,
    start_server,
    stop_server,
    wait_ready,
)

TARGET = 0.10


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second")
    parser.add_argument("--per-post", type=int, default=90, help="statuses per request")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--log", type=Path, default=Path("/tmp/wa-sessions-soak-server.log"))
    parser.add_argument(
        "--mmap-threshold",
        type=int,
        metavar="BYTES",
        help="run the server with MALLOC_MMAP_THRESHOLD_=BYTES (glibc: allocations from this "
        "size are mmapped and returned to the system when freed)",
    )
    args = parser.parse_args()

    port = free_port()
    base = f"http://{HOST}:{port}"
    server = start_server(
        [
            str(Path(sys.executable).parent / "wa-sessions"),
            "--log-level",
            "WARNING",
            "serve",
            "--host",
            HOST,
            "--port",
            str(port),
        ],
        env={
            "WHATSAPP_ENV": "development",
            "WHATSAPP_META__APP_SECRET": SECRET,
            **({"MALLOC_MMAP_THRESHOLD_": str(args.mmap_threshold)} if args.mmap_threshold else {}),
        },
        log=args.log,
    )
    samples: list[tuple[float, int, int]] = []  # (seconds, rss, requests so far)
    try:
        wait_ready(f"{base}/healthz", server)
        feed = StatusFeed(args.per_post)
        seconds = args.minutes * 60

        def source() -> tuple[bytes, str]:
            # Built and signed as it goes: every body is distinct, its messages new.
            return feed.bodies(1)[0]

        def sample(at: float, result: LoadResult) -> None:
            samples.append((at, rss_bytes(server.pid), result.requests))
            if len(samples) % 60 == 0:
                print(
                    f"  ({at / 60:.0f} min: rss {samples[-1][1] / 1e6:.1f} MB, "
                    f"{result.requests:,} requests)",
                    file=sys.stderr,
                    flush=True,
                )

        result = asyncio.run(
            drive(
                f"{base}/webhooks/meta",
                source,
                args.connections,
                seconds,
                rate=args.rate,
                on_second=sample,
            )
        )
        with urllib.request.urlopen(f"{base}/sessions/stats") as response:
            stats = json.load(response)
    finally:
        stop_server(server)

    summary = stats["summary"]
    print(
        f"server soak: {args.minutes:g} min of wa-sessions serve (default profile), "
        f"{args.rate:g} requests/s x {args.per_post} statuses, {args.connections} connections, "
        f"loopback; RSS from /proc/PID/status every second; Python {sys.version.split()[0]}"
        + (
            f"; server with MALLOC_MMAP_THRESHOLD_={args.mmap_threshold}"
            if args.mmap_threshold
            else "; glibc malloc defaults"
        )
    )
    print(
        f"requests {result.requests:,} ({result.requests / result.seconds:,.0f}/s), "
        f"answers {result.statuses}, client errors {result.errors}, "
        f"p50 {result.percentile(0.5) * 1e3:.1f} ms, p99 {result.percentile(0.99) * 1e3:.1f} ms"
    )
    print(
        f"server at the end: tracked {summary['tracked_messages']:,}, receipts "
        f"{json.dumps(summary['receipts'])}"
    )
    header = f"{'minute':>6} | {'rss min MB':>10} | {'rss max MB':>10} | {'requests':>10}"
    print(header)
    print("-" * len(header))
    for minute in range(int(args.minutes + 0.999)):
        window = [s for s in samples if minute * 60 <= s[0] < (minute + 1) * 60]
        if window:
            print(
                f"{minute + 1:>6} | {min(s[1] for s in window) / 1e6:>10.1f} | "
                f"{max(s[1] for s in window) / 1e6:>10.1f} | {window[-1][2]:>10,}"
            )
    reference = next((s for s in samples if s[0] >= 60), samples[-1])
    after = [s[1] for s in samples if s[0] >= reference[0]]
    low, high = min(after) / reference[1], max(after) / reference[1]
    worst = max(high - 1, 1 - low)
    print(
        f"rss after minute 1: {reference[1] / 1e6:.1f} MB; since then min {low:.3f}x, "
        f"max {high:.3f}x: largest deviation {worst * 100:.1f}% (target <= {TARGET * 100:.0f}%)"
    )
    return 0 if worst <= TARGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
