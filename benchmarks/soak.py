"""Soak: the real manager on a simulated clock for many days, per profile; heap, records, bounds.

    make bench-soak              # or: .venv/bin/python benchmarks/soak.py [--days 1000]
                                 #        [--per-day 100000] [--profiles default,ultra_lean,...]

Each profile runs in its own process: one ``MessageSessionManager`` (never rebuilt) driven day
after day by realistic traffic (benchmarks/traffic.py ids and recipients; a send per message,
``sent``/``delivered``/``read`` receipts with delays, ~5% duplicates, ~4% read-before-delivered,
~3% failures, ~7% silence, ~1% ids this process never sent, ~0.5% reads the next evening, after
the window) and ``cleanup()`` every ``cleanup_interval``, as the server runs it.

How the heap is measured (tracemalloc costs ~1.5 us per allocation on this Python, far too slow
for 10^8 receipts):

* ``heap``: on checkpoint days, the bytes of every object reachable from the manager
  (``sys.getsizeof`` over the object graph, each object once, stopping at classes, modules and
  functions): what the long-running manager really holds, leaks inside it included.
* ``traced``: on the first days (``--trace-days``), ``tracemalloc`` runs from before the manager
  is built, as a cross-check of the ``heap`` method.
* ``rss``: the process's resident set (``/proc/self/status``) every day: also catches memory
  held outside the manager.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import sys
import time
import tracemalloc
import types
from array import array
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from traffic import recipient

from plugin.core.manager import MessageSessionManager
from plugin.core.model import Receipt, ReceiptError, Status

DAY = 86400.0
START = 1_767_225_600.0  # 2026-01-01 00:00 UTC
PATTERNS = 7  # distinct daily traffic patterns, in a weekly rotation
SEND = -1
FAILURE = ReceiptError("131026", "Message undeliverable", None)
PLOT = Path(__file__).resolve().parent.parent / "docs" / "soak.png"

_STOP = (
    type,
    types.ModuleType,
    types.FunctionType,
    types.BuiltinFunctionType,
    types.CodeType,
    types.MethodType,
    types.MethodDescriptorType,
    types.WrapperDescriptorType,
)


class Clock:
    __slots__ = ("now",)

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def deep_size(root: object) -> int:
    """Bytes of every object reachable from ``root`` (each once), stopping at shared code."""
    seen: set[int] = set()
    stack = [root]
    total = 0
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, _STOP):
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        stack.extend(gc.get_referents(obj))
    return total


def rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def day_pattern(rng: random.Random, per_day: int) -> tuple[array[float], array[int], array[int]]:
    """One day's events, sorted: (seconds after midnight, status or SEND, message index).
    Indices from ``per_day`` on are ids this process never sent. Times may pass midnight:
    those events happen the next day."""
    events: list[tuple[float, int, int]] = []
    add = events.append
    unknown = per_day // 100
    for i in range(per_day + unknown):
        at = rng.random() * DAY
        if i < per_day:
            add((at, SEND, i))
        at += rng.expovariate(1.0)
        add((at, Status.SENT, i))
        fate = rng.random()
        if fate < 0.03:
            add((at + rng.expovariate(1 / 30), Status.FAILED, i))
            continue
        if fate < 0.10:
            continue
        delivered = at + rng.expovariate(1 / 60)
        if fate < 0.75:
            read = delivered + rng.expovariate(1 / 3600)
            if rng.random() < 0.04:
                read, delivered = delivered, read
            add((read, Status.READ, i))
        elif fate < 0.755:
            add((at + DAY + rng.random() * 6 * 3600, Status.READ, i))  # read after the window
        add((delivered, Status.DELIVERED, i))
        if rng.random() < 0.05:
            add((delivered + rng.expovariate(1 / 600), Status.DELIVERED, i))
    events.sort()
    return (
        array("d", (e[0] for e in events)),
        array("b", (e[1] for e in events)),
        array("l", (e[2] for e in events)),
    )


def checkpoints(days: int) -> set[int]:
    """Every day of the first two weeks, then every ``days // 100`` days, and the last."""
    step = max(1, days // 100)
    return {d for d in range(1, days + 1) if d <= 14 or d % step == 0 or d == days}


def day_sequences(
    rng: random.Random, per_day: int, count: int
) -> list[tuple[array[float], array[int], array[int], array[int]]]:
    """For each pattern p, the events of a day whose messages follow p and whose previous day's
    followed p - 1: (seconds after midnight, status or SEND, message index, 1 if the message
    is yesterday's else 0)."""
    patterns = [day_pattern(rng, per_day) for _ in range(count)]
    sequences = []
    for index, today in enumerate(patterns):
        yesterday = patterns[index - 1]
        merged = sorted(
            [(at, code, i, 0) for at, code, i in zip(*today, strict=True) if at < DAY]
            + [
                (at - DAY, code, i, 1)
                for at, code, i in zip(*yesterday, strict=True)
                if DAY <= at < 2 * DAY
            ]
        )
        sequences.append(
            (
                array("d", (e[0] for e in merged)),
                array("b", (e[1] for e in merged)),
                array("l", (e[2] for e in merged)),
                array("b", (e[3] for e in merged)),
            )
        )
    return sequences


def run_profile(
    profile: str, days: int, per_day: int, trace_days: int, seed: int
) -> dict[str, Any]:
    rng = random.Random(seed)
    sequences = day_sequences(rng, per_day, min(PATTERNS, days))
    recipients = [recipient(i) for i in range(min(per_day, 50_000) or 1)]
    suffixes = [f"{(i * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF:016X}A" for i in range(per_day)]
    statuses = list(Status)
    marks = checkpoints(days)
    gc.collect()
    if trace_days:
        tracemalloc.start()
    clock = Clock(START)
    manager = MessageSessionManager(profile=profile, clock=clock)
    interval = manager.options.cleanup_interval
    next_cleanup = START + interval
    track, apply = manager.track_sent, manager.apply_receipt
    n_recipients = len(recipients)
    rows: list[dict[str, Any]] = []
    max_tracked = max_tombstones = max_sessions = max_history = 0
    started = time.perf_counter()
    for day in range(1, days + 1):
        day_start = START + (day - 1) * DAY
        prefixes = (
            f"wamid.HBgLMTY0NjcwNDM1OTUVAgARGBI{day:06X}",
            f"wamid.HBgLMTY0NjcwNDM1OTUVAgARGBI{day - 1:06X}",
        )
        sequence = zip(*sequences[(day - 1) % len(sequences)], strict=True)
        for at, code, index, back in sequence:
            if back and day == 1:
                continue
            now = clock.now = day_start + at
            if now >= next_cleanup:
                manager.cleanup()
                next_cleanup += interval
            if code == SEND:
                track(prefixes[0] + suffixes[index], recipients[index % n_recipients])
            elif index < per_day:
                apply(
                    Receipt(
                        prefixes[back] + suffixes[index],
                        statuses[code],
                        now,
                        recipients[index % n_recipients],
                        "meta",
                        FAILURE if code == Status.FAILED else None,
                    )
                )
            else:  # an id this process never sent
                apply(
                    Receipt(
                        f"wamid.HBgLNDQ3OTExMjIzMzQ0FQIAERgSX{day - back:06X}{index:08X}",
                        statuses[code],
                        now,
                        recipients[index % n_recipients],
                        "meta",
                        FAILURE if code == Status.FAILED else None,
                    )
                )
        clock.now = day_start + DAY
        peaks = manager.peaks()
        max_tracked = max(max_tracked, peaks["tracked_messages"])
        max_sessions = max(max_sessions, peaks["active_sessions"])
        max_history = max(max_history, manager.history_size)
        max_tombstones = max(max_tombstones, manager.tombstone_count)
        row: dict[str, Any] = {
            "day": day,
            "tracked": manager.tracked_messages,
            "tombstones": manager.tombstone_count,
            "sessions": len(manager.sessions),
            "history": manager.history_size,
            "rss": rss_bytes(),
            "heap": deep_size(manager) if day in marks else None,
            "traced": None,
        }
        if tracemalloc.is_tracing():
            gc.collect()
            row["traced"] = tracemalloc.get_traced_memory()[0]
            if day >= trace_days:
                tracemalloc.stop()
        rows.append(row)
        if day in marks:
            print(
                f"  ({profile}: day {day}/{days}, {time.perf_counter() - started:.0f} s)",
                file=sys.stderr,
                flush=True,
            )
    heaps = [r["heap"] for r in rows if r["heap"] is not None]
    return {
        "profile": profile,
        "rows": rows,
        "bound": manager.memory_bound_bytes(),
        "limits": {
            "tracked": manager.options.max_tracked_messages,
            "tombstones": manager.options.max_tracked_messages,
            "sessions": manager.max_active_sessions(),
            "history": manager.options.history_limit,
        },
        "max": {
            "tracked": max_tracked,
            "tombstones": max_tombstones,
            "sessions": max_sessions,
            "history": max_history,
            "heap": max(heaps),
        },
        "receipts": manager.get_all_stats()["summary"]["receipts"],
        "seconds": time.perf_counter() - started,
    }


def plot(results: list[dict[str, Any]], days: int, per_day: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_heap, ax_tracked) = plt.subplots(2, 1, figsize=(10, 8), sharex=True)
    for index, result in enumerate(results):
        color = f"C{index}"
        rows = result["rows"]
        heap = [(r["day"], r["heap"] / 1e6) for r in rows if r["heap"] is not None]
        ax_heap.plot(
            *zip(*heap, strict=True),
            color=color,
            marker=".",
            markersize=3,
            label=f"{result['profile']}: heap held by the manager",
        )
        ax_heap.axhline(
            result["bound"] / 1e6,
            color=color,
            linestyle="--",
            linewidth=1,
            label=f"{result['profile']}: computed bound",
        )
        ax_tracked.plot(
            [r["day"] for r in rows],
            [r["tracked"] for r in rows],
            color=color,
            label=f"{result['profile']}: tracked records (end of day)",
        )
        ax_tracked.axhline(
            result["limits"]["tracked"],
            color=color,
            linestyle="--",
            linewidth=1,
            label=f"{result['profile']}: max_tracked_messages",
        )
    ax_heap.set_ylabel("MB")
    ax_heap.set_ylim(bottom=0)
    ax_heap.set_title(f"Soak: {days} simulated days at {per_day:,} messages a day")
    ax_heap.legend(fontsize=7, loc="center right")
    ax_tracked.set_ylabel("records")
    ax_tracked.set_ylim(bottom=0)
    ax_tracked.set_xlabel("simulated day")
    ax_tracked.legend(fontsize=7, loc="center right")
    ax_heap.grid(alpha=0.3)
    ax_tracked.grid(alpha=0.3)
    ax_tracked.set_xlim(0, days + 1)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=int, default=1000)
    parser.add_argument("--per-day", type=int, default=100_000)
    parser.add_argument("--profiles", default="default,ultra_lean,zero_history")
    parser.add_argument(
        "--trace-days",
        type=int,
        default=3,
        help="days traced with tracemalloc from the start, as a cross-check",
    )
    parser.add_argument("--jobs", type=int, default=1, help="profiles run in parallel")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--plot", type=Path, default=PLOT, help="PNG to write (default docs/)")
    parser.add_argument("--json", type=Path, help="also write every row to this file")
    args = parser.parse_args()
    profiles = [p for p in args.profiles.split(",") if p]
    trace_days = min(args.trace_days, args.days)

    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = [
            pool.submit(run_profile, p, args.days, args.per_day, trace_days, args.seed)
            for p in profiles
        ]
        results = [f.result() for f in futures]

    print(
        f"soak: {args.days} simulated days x {args.per_day:,} messages/day, "
        f"Python {sys.version.split()[0]}; heap = bytes reachable from the manager "
        f"(sys.getsizeof over its object graph) on {len(checkpoints(args.days))} checkpoint days; "
        f"traced = tracemalloc from start, days 1-{trace_days}; rss = process resident set"
    )
    if trace_days:
        print("cross-check, heap vs traced (MB):")
        for result in results:
            pairs = [
                f"day {r['day']}: {r['heap'] / 1e6:.2f} vs {r['traced'] / 1e6:.2f}"
                for r in result["rows"][:trace_days]
            ]
            print(f"  {result['profile']:<13} " + "; ".join(pairs))
    # RSS from the first day after tracing (tracemalloc's own tables inflate it before).
    rss_day = min(args.days, trace_days + 2)
    header = (
        f"{'profile':<13} | {'max tracked':>16} | {'max tombstones':>16} | {'max sessions':>12} | "
        f"{'max history':>11} | {'max heap MB':>11} | {'bound MB':>8} | {'heap day 3':>10} | "
        f"{'heap last':>9} | {'growth':>7} | {f'rss day {rss_day}':>10} | {'rss last':>8}"
    )
    print(header)
    print("-" * len(header))
    verdicts = []
    for result in results:
        rows, top, lim = result["rows"], result["max"], result["limits"]
        heaps = {r["day"]: r["heap"] for r in rows if r["heap"] is not None}
        ref_day = min(3, args.days)
        growth = 100.0 * (heaps[args.days] - heaps[ref_day]) / heaps[ref_day]
        rss_ref, rss_last = rows[rss_day - 1]["rss"], rows[-1]["rss"]
        bounded = (
            top["tracked"] <= lim["tracked"]
            and top["tombstones"] <= lim["tombstones"]
            and top["sessions"] <= lim["sessions"]
            and top["history"] <= lim["history"]
            and top["heap"] <= result["bound"]
        )
        verdicts.append((result["profile"], bounded, growth))
        print(
            f"{result['profile']:<13} | {top['tracked']:>7,} / {lim['tracked']:>6,} | "
            f"{top['tombstones']:>7,} / {lim['tombstones']:>6,} | "
            f"{top['sessions']:>5} / {lim['sessions']:>4} | "
            f"{top['history']:>4} / {lim['history']:>4} | "
            f"{top['heap'] / 1e6:>11.2f} | {result['bound'] / 1e6:>8.2f} | "
            f"{heaps[ref_day] / 1e6:>10.2f} | {heaps[args.days] / 1e6:>9.2f} | {growth:>+6.2f}% | "
            f"{rss_ref / 1e6:>10.1f} | {rss_last / 1e6:>8.1f}"
        )
    for result in results:
        print(
            f"  {result['profile']}: receipts {json.dumps(result['receipts'])}, "
            f"{result['seconds']:.0f} s"
        )
    plot(results, args.days, args.per_day, args.plot)
    print(f"plot: {args.plot}")
    if args.json:
        args.json.write_text(json.dumps(results))
    worst = max(abs(g) for _, _, g in verdicts)
    print(
        "soak: "
        + ", ".join(f"{p} {'bounded' if b else 'BOUND EXCEEDED'}" for p, b, _ in verdicts)
        + f"; largest heap change from day {min(3, args.days)} to day {args.days}: {worst:.2f}%"
        + (
            " (max heap / bound: "
            + ", ".join(f"{r['max']['heap'] / r['bound']:.2f}" for r in results)
            + ")"
        )
    )
    return 0 if all(b for _, b, _ in verdicts) else 1


if __name__ == "__main__":
    raise SystemExit(main())
