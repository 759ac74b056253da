"""The status ladder: what a receipt does to a message's status and to its session's funnel.

One definition for every store: the in-memory manager indexes :data:`TRANSITIONS`, and the Redis
store's Lua scripts are generated from the same table (:mod:`plugin.stores.redis.scripts`).
"""

from __future__ import annotations

from plugin.core.model import Outcome, Status

__all__ = [
    "DELIVERED",
    "EVICTED",
    "EXPIRED",
    "FAILED",
    "LATENCY_MARKS",
    "MAKES_DELIVERED",
    "MAKES_READ",
    "OPEN",
    "OUTCOMES",
    "O_ADOPTED",
    "O_APPLIED",
    "O_DUPLICATE",
    "O_LATE",
    "O_STALE",
    "O_UNKNOWN",
    "PENDING",
    "PLAYED",
    "POSITIVE",
    "READ",
    "SENT",
    "STATUSES",
    "TRANSITIONS",
    "transition",
]

# Counter and outcome indices (the order of COUNTER_KEYS / OUTCOME_KEYS).
SENT, DELIVERED, READ, PLAYED, FAILED, PENDING, EXPIRED, EVICTED = range(8)
O_APPLIED, O_DUPLICATE, O_STALE, O_LATE, O_UNKNOWN, O_ADOPTED = range(6)
OUTCOMES = tuple(Outcome)
STATUSES = tuple(Status)

_Q, _S, _D, _R, _P, _F = (int(s) for s in Status)
#: Statuses that count as delivered.
POSITIVE = frozenset({_D, _R, _P})
#: Statuses of a message still pending (neither delivered nor failed).
OPEN = frozenset({_Q, _S})


def transition(current: int, new: int) -> tuple[int, int, tuple[tuple[int, int], ...]]:
    """(outcome, resulting status, counter deltas) for a receipt ``new`` on a message at
    ``current``. The rules of DESIGN.md: never down the ladder; READ/PLAYED imply DELIVERED; a
    positive delivery beats FAILED; FAILED after DELIVERED is stale."""
    if new == current:
        return O_DUPLICATE, current, ()
    if new == _F:
        if current in POSITIVE:
            return O_STALE, current, ()
    elif current == _F:
        if new in OPEN:
            return O_STALE, current, ()
    elif new < current:
        return O_STALE, current, ()
    deltas: dict[int, int] = {}

    def add(counter: int, delta: int) -> None:
        deltas[counter] = deltas.get(counter, 0) + delta

    if current in OPEN and new not in OPEN:
        add(PENDING, -1)
    if current == _F:
        add(FAILED, -1)
    if new == _F:
        add(FAILED, +1)
    if new in POSITIVE and current not in POSITIVE:
        add(DELIVERED, +1)
    if new in (_R, _P) and current not in (_R, _P):
        add(READ, +1)
    if new == _P:
        add(PLAYED, +1)
    return O_APPLIED, new, tuple((k, v) for k, v in deltas.items() if v)


#: ``TRANSITIONS[current * 6 + new]`` for every pair of statuses.
TRANSITIONS = tuple(transition(c, n) for c in range(6) for n in range(6))

#: Latency marks of each transition: 1 when it makes the message delivered for the first time,
#: 2 when it makes it read (a read with no delivered before it does both).
MAKES_DELIVERED, MAKES_READ = 1, 2
LATENCY_MARKS = tuple(
    sum(
        mark
        for counter, mark in ((DELIVERED, MAKES_DELIVERED), (READ, MAKES_READ))
        if (counter, 1) in deltas
    )
    for _, _, deltas in TRANSITIONS
)
