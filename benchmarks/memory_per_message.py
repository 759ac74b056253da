"""Heap bytes per tracked message: the manager vs a dict of slotted dataclasses vs a TTLCache.

    make bench-memory            # or: .venv/bin/python benchmarks/memory_per_message.py

Method: for each tracker and size N, tracing starts (``tracemalloc``) before the tracker is built;
then N messages are sent to it, each with a new Meta-like id (58-64 chars) and a new E.164
recipient string, built inside the traced region as a request would build them; after
``gc.collect()`` the traced heap divided by N is what one tracked message costs, ids, recipients,
tables and the tracker's fixed part included. Messages are spread over the 20 hours before the
(fixed) clock, so the manager holds two daily sessions; ``max_tracked_messages`` is N + 1.
tracemalloc counts the bytes requested from the allocator (not its 16-byte rounding, nor free
space in its arenas). Memory is deterministic, so one measurement per cell.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from baselines import DictTracker, TTLCacheTracker
from traffic import message_id, recipient

from plugin.core.manager import MessageSessionManager

NOW = 1_767_369_600.0 + 16 * 3600  # 2026-01-02 16:00 UTC
SPREAD = 20 * 3600.0
WINDOW = 24 * 3600.0
TARGET_BYTES = 200
TARGET_RATIO = 0.5


def _clock() -> float:
    return NOW


def _manager(n: int) -> Callable[[str, str, float], object]:
    manager = MessageSessionManager(clock=_clock, max_tracked_messages=n + 1)
    return manager.track_sent


def _dict(n: int) -> Callable[[str, str, float], object]:
    return DictTracker(WINDOW, _clock).track_sent


def _ttlcache(n: int) -> Callable[[str, str, float], object]:
    return TTLCacheTracker(WINDOW, _clock, maxsize=n + 1).track_sent


TRACKERS: dict[str, Callable[[int], Callable[[str, str, float], object]]] = {
    "manager": _manager,
    "dict+dataclass": _dict,
    "ttlcache": _ttlcache,
}


def bytes_per_message(build: Callable[[int], Callable[[str, str, float], object]], n: int) -> float:
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    track = build(n)
    first = NOW - SPREAD
    step = SPREAD / n
    for i in range(n):
        to = recipient(i)
        track(message_id(i, to), to, first + i * step)
    gc.collect()
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    del track
    gc.collect()
    return used / n


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--sizes", default="10000,100000,1000000", help="comma-separated message counts"
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"heap bytes per tracked message (tracemalloc), Python {sys.version.split()[0]}")
    header = f"{'messages':>10} | " + " | ".join(f"{name:>15}" for name in TRACKERS)
    header += " | manager/dict | manager/ttlcache | manager bound/msg"
    print(header)
    print("-" * len(header))
    results: dict[int, dict[str, float]] = {}
    for n in sizes:
        row: dict[str, float] = {}
        for name, build in TRACKERS.items():
            started = time.perf_counter()
            row[name] = bytes_per_message(build, n)
            print(
                f"  ({name} at {n:,}: {time.perf_counter() - started:.0f} s traced)",
                file=sys.stderr,
                flush=True,
            )
        results[n] = row
        bound = MessageSessionManager(max_tracked_messages=n + 1).memory_bound_bytes() / (n + 1)
        print(
            f"{n:>10,} | "
            + " | ".join(f"{row[name]:>15.1f}" for name in TRACKERS)
            + f" | {row['manager'] / row['dict+dataclass']:>12.2f}"
            + f" | {row['manager'] / row['ttlcache']:>16.2f}"
            + f" | {bound:>17.0f}",
            flush=True,
        )
    ratio_at = 100_000 if 100_000 in results else sizes[len(sizes) // 2]
    largest = max(results)
    ratio = results[ratio_at]["manager"] / results[ratio_at]["ttlcache"]
    per_message = results[largest]["manager"]
    print(
        f"ratio manager/ttlcache at {ratio_at:,}: {ratio:.2f} (target <= {TARGET_RATIO}); "
        f"manager bytes/message at {largest:,}: {per_message:.0f} (target <= {TARGET_BYTES})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
