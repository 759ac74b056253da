"""Realistic inputs shared by the benchmarks: Meta-like message ids, E.164 recipients, and
receipt streams with duplicates, out-of-order pairs, unknown ids and failures."""

from __future__ import annotations

import base64
import random
from dataclasses import dataclass

__all__ = ["ReceiptStream", "message_id", "receipt_stream", "recipient"]

# (country code, national digits): a mix of number lengths, 11 to 13 digits in all.
_COUNTRIES = ((1, 10), (44, 10), (55, 11), (91, 10), (49, 11), (34, 9), (52, 10), (234, 10))
_PATIENTS = 50_000  # distinct recipients; messages go to them in rotation
_MASK128 = (1 << 128) - 1


def recipient(i: int) -> str:
    """The E.164 number (digits only, as Meta's ``recipient_id``) message ``i`` goes to: a new
    str object on every call, as a parsed request would give."""
    k = (i * 7919) % _PATIENTS
    cc, digits = _COUNTRIES[k % len(_COUNTRIES)]
    low = 10 ** (digits - 1)
    return f"{cc}{low + (k * 2654435761) % (9 * low)}"


def message_id(i: int, to: str) -> str:
    """A Meta-like id, 58 to 64 characters (``wamid.HBgL`` + base64 of the recipient +
    ``VAgARGBI`` + a per-message token), as a new str object."""
    encoded = base64.b64encode(to.encode()).decode().rstrip("=")
    head = f"wamid.HBgL{encoded}VAgARGBI"
    token = f"{((i + 1) * 0x9E3779B97F4A7C15F39CC0605CEDC835 + 0x5BD1E995) & _MASK128:032X}"
    return head + token[: 58 + i % 7 - len(head)]


@dataclass(slots=True)
class ReceiptStream:
    """Messages to track before the stream, and the stream in arrival order."""

    #: (message id, recipient, sent_at) for each message sent by this process
    tracked: list[tuple[str, str, float]]
    #: (message id as bytes, Meta status name, timestamp string, recipient, (code, title) for
    #: failures else None): the fields the Meta adapter reads from one status item
    events: list[tuple[bytes, str, str, str, tuple[str, str] | None]]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for _, name, *_ in self.events:
            out[name] = out.get(name, 0) + 1
        return out


def receipt_stream(
    messages: int, now: float, seed: int = 5, unknown: float = 0.02
) -> ReceiptStream:
    """``messages`` sent over the 3 hours before ``now``, and their receipts: a ``sent`` for
    each; ~3% fail; ~7% are never delivered; the rest are delivered, ~65% of all are read; ~4% of
    reads arrive before their delivered (out of order); ~5% of deliveries arrive twice; plus
    receipts for ``unknown`` x ``messages`` ids this process did not send (adopted)."""
    rng = random.Random(seed)
    start = now - 3 * 3600
    tracked: list[tuple[str, str, float]] = []
    timed: list[tuple[float, bytes, str, str, tuple[str, str] | None]] = []
    failure = ("131026", "Message undeliverable")
    total = messages + int(messages * unknown)
    for i in range(total):
        to = recipient(i)
        mid = message_id(i, to)
        sent_at = start + rng.random() * 2.5 * 3600
        if i < messages:
            tracked.append((mid, to, sent_at))
        key = mid.encode()
        at = sent_at + rng.expovariate(1.0)
        timed.append((at, key, "sent", to, None))
        fate = rng.random()
        if fate < 0.03:
            timed.append((at + rng.expovariate(1 / 30), key, "failed", to, failure))
            continue
        if fate < 0.10:
            continue
        delivered = at + rng.expovariate(1 / 60)
        if fate < 0.75:
            read = delivered + rng.expovariate(1 / 600)
            if rng.random() < 0.04:
                read, delivered = delivered, read
            timed.append((read, key, "read", to, None))
        timed.append((delivered, key, "delivered", to, None))
        if rng.random() < 0.05:
            timed.append((delivered + rng.expovariate(1 / 120), key, "delivered", to, None))
    timed.sort(key=lambda event: event[0])
    # Replayed at once: no receipt may be in the future.
    events = [(key, name, str(int(min(at, now))), to, err) for at, key, name, to, err in timed]
    return ReceiptStream(tracked, events)
