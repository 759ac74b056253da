"""Receipts per second in process: the manager vs a dict of slotted dataclasses vs a TTLCache.

    make bench-receipts          # or: .venv/bin/python benchmarks/receipts_per_second.py

Method: one realistic stream (benchmarks/traffic.py: a ``sent`` for every message, deliveries,
reads, ~5% duplicate deliveries, ~4% read-before-delivered pairs, ~3% failures, ~2% ids this
process never sent) is replayed through each tracker's ``apply_receipt``, with no subscriber
and with one audit subscriber that appends every status change to a list (for the manager: a
pluggy plugin implementing ``whatsapp_status_changed`` behind ``HookEvents``, dispatched at once
since no event loop runs; for the baselines: a plain callable). Each pass starts from a fresh
tracker holding the stream's sent messages (not timed). The timed loop builds each ``Receipt``
as the Meta adapter does (a new id str, the status looked up, ``float`` of the timestamp string,
a ``ReceiptError`` for failures) and applies it; the clock is ``time.time`` for all. Passes are
interleaved (the order rotates every repetition) and each figure is the median over the
repetitions; ratios are medians of the ratios within each repetition.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from baselines import DictTracker, TTLCacheTracker
from traffic import ReceiptStream, receipt_stream

from adapters.meta import STATUSES
from plugin.core.manager import MessageSessionManager
from plugin.core.model import Outcome, Receipt, ReceiptError, StatusChange
from plugin.hooks.events import HookEvents
from plugin.hooks.hookspecs import hookimpl
from plugin.hooks.plugins import make_plugin_manager

WINDOW = 24 * 3600.0
TARGET = 2.0

Apply = Callable[[Receipt], Outcome]


class AuditLog:
    """The audit subscriber: keeps every status change."""

    def __init__(self) -> None:
        self.entries: list[StatusChange] = []

    @hookimpl
    def whatsapp_status_changed(self, change: StatusChange) -> None:
        self.entries.append(change)


def _manager(stream: ReceiptStream, audit: bool) -> tuple[Apply, Callable[[], dict[str, int]]]:
    manager = MessageSessionManager(clock=time.time)
    for mid, to, sent_at in stream.tracked:
        manager.track_sent(mid, to, sent_at)
    if audit:
        pm = make_plugin_manager(manager, entry_points=False)
        pm.register(AuditLog(), name="audit")
        HookEvents(pm, manager).attach(manager)
    return manager.apply_receipt, lambda: manager.get_all_stats()["summary"]["receipts"]


def _baseline(factory: Callable[[], DictTracker | TTLCacheTracker]) -> Any:
    def build(stream: ReceiptStream, audit: bool) -> tuple[Apply, Callable[[], dict[str, int]]]:
        tracker = factory()
        for mid, to, sent_at in stream.tracked:
            tracker.track_sent(mid, to, sent_at)
        if audit:
            entries: list[StatusChange] = []
            tracker.subscribers.append(entries.append)
        return tracker.apply_receipt, lambda: {o.value: n for o, n in tracker.outcomes.items()}

    return build


BUILDERS: dict[str, Callable[[ReceiptStream, bool], tuple[Apply, Callable[[], dict[str, int]]]]]
BUILDERS = {
    "manager": _manager,
    "dict+dataclass": _baseline(lambda: DictTracker(WINDOW, time.time)),
    "ttlcache": _baseline(lambda: TTLCacheTracker(WINDOW, time.time, maxsize=100_000)),
}


def replay(apply: Apply, events: list[Any]) -> float:
    """Build and apply every receipt; seconds taken."""
    statuses = STATUSES
    started = time.perf_counter()
    for key, name, stamp, to, err in events:
        apply(
            Receipt(
                key.decode(),
                statuses[name],
                float(stamp),
                to,
                "meta",
                None if err is None else ReceiptError(err[0], err[1], None),
            )
        )
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=50_000, help="messages sent (default 50k)")
    parser.add_argument("--repeats", type=int, default=7, help="interleaved repetitions")
    args = parser.parse_args()

    stream = receipt_stream(args.messages, time.time())
    events = stream.events
    variants = [(name, audit) for name in BUILDERS for audit in (False, True)]
    rates: dict[tuple[str, bool], list[float]] = {v: [] for v in variants}
    outcomes: dict[tuple[str, bool], dict[str, int]] = {}
    for rep in range(args.repeats):
        shift = rep % len(variants)
        for variant in variants[shift:] + variants[:shift]:
            apply, outcome_counts = BUILDERS[variant[0]](stream, variant[1])
            gc.collect()
            seconds = replay(apply, events)
            rates[variant].append(len(events) / seconds)
            outcomes[variant] = outcome_counts()
            del apply, outcome_counts
        print(f"  (repetition {rep + 1}/{args.repeats} done)", file=sys.stderr, flush=True)

    counts = stream.counts()
    print(
        f"receipts per second in process, Python {sys.version.split()[0]}: "
        f"{len(events):,} receipts per pass over {args.messages:,} sent messages "
        f"({', '.join(f'{k} {v:,}' for k, v in sorted(counts.items()))}); "
        f"median of {args.repeats} interleaved repetitions"
    )
    print(
        f"machine: {os.cpu_count()} CPUs, load average at the end "
        f"{', '.join(f'{x:.2f}' for x in os.getloadavg())} (1, 5, 15 min)"
    )
    header = (
        f"{'tracker':<16} | {'subscriber':<10} | {'receipts/s':>11} | {'min':>11} | {'max':>11} | "
        "outcomes (applied/duplicate/stale/late/unknown/adopted)"
    )
    print(header)
    print("-" * len(header))
    for variant in variants:
        name, audit = variant
        got = outcomes[variant]
        print(
            f"{name:<16} | {'audit' if audit else 'none':<10} | "
            f"{statistics.median(rates[variant]):>11,.0f} | {min(rates[variant]):>11,.0f} | "
            f"{max(rates[variant]):>11,.0f} | "
            + "/".join(str(got.get(o.value, 0)) for o in Outcome)
        )

    def paired(a: tuple[str, bool], b: tuple[str, bool]) -> float:
        return statistics.median(x / y for x, y in zip(rates[a], rates[b], strict=True))

    print()
    for audit in (False, True):
        label = "audit subscriber" if audit else "no subscriber"
        print(
            f"{label}: manager/dict+dataclass "
            f"{paired(('manager', audit), ('dict+dataclass', audit)):.2f}x, "
            f"manager/ttlcache {paired(('manager', audit), ('ttlcache', audit)):.2f}x"
        )
    plain = paired(("manager", False), ("ttlcache", False))
    hooked = paired(("manager", True), ("ttlcache", True))
    print(
        f"ratio manager/ttlcache receipts/s: {plain:.2f}x (target >= {TARGET}x); "
        f"with audit subscriber: {hooked:.2f}x; manager "
        f"{statistics.median(rates[('manager', False)]):,.0f} receipts/s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
