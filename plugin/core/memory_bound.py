"""The memory bound: an upper bound of the manager's heap, computed from its options.

Every structure is taken at its cap and at its worst layout (a CPython dict or set just after it
grew, never shrunk by deletions), with object sizes rounded up to the allocator's 16-byte classes.
A test fills a manager to its caps and checks the heap tracemalloc measures stays below it.
"""

from __future__ import annotations

import math

from plugin.core.latency import MAX_BUCKET
from plugin.core.options import ManagerOptions
from plugin.core.records import (
    MAX_ERROR_CODES,
    MAX_MESSAGE_ID_LENGTH,
    MAX_TAG_LENGTH,
    RECIPIENT_CACHE_SIZE,
)

__all__ = [
    "MAX_MESSAGE_ID_LENGTH",
    "RECIPIENT_CACHE_SIZE",
    "max_active_sessions",
    "memory_bound_bytes",
]

_ALIGN = 16


def _aligned(size: int) -> int:
    return -(-size // _ALIGN) * _ALIGN


def _table_bytes(entries: int, slot_bytes: int, entry_bytes: int) -> int:
    """Worst case for a CPython dict or set holding ``entries``: the table may be twice as
    large as needed just after it grew, and never shrinks on deletion."""
    slots = 8
    while slots * 2 // 3 < entries:
        slots *= 2
    slots *= 2
    return slots * slot_bytes + (slots * 2 // 3) * entry_bytes


# Object sizes on 64-bit CPython, rounded to the allocator's 16-byte classes.
_ID_BYTES = _aligned(49 + MAX_MESSAGE_ID_LENGTH)  # an ASCII str of the longest accepted id
_PACKED_BYTES = _aligned(36)  # an int of up to 90 bits
_DIGEST_BYTES = _aligned(32)  # an int of up to 60 bits
_SESSION_BYTES = 4096  # a session object, its counter lists and dict headers
_ERROR_TALLY_BYTES = _aligned(49 + 32) + _aligned(32) + 64  # code string, count, dict share
_SUMMARY_BYTES = 4096 + MAX_ERROR_CODES * _ERROR_TALLY_BYTES


#: A tag's name: a string of up to 64 characters of up to 4 bytes each.
_TAG_NAME_BYTES = _aligned(74 + 4 * MAX_TAG_LENGTH)
#: One tag in a session: its name, its index entry and its funnel (a list of 8 counters).
_SESSION_TAG_BYTES = _TAG_NAME_BYTES + _aligned(56 + 8 * 8) + 8 * _DIGEST_BYTES + 4 * 32
#: One tag in a summary: its name and its funnel as a dict of 8 counters.
_SUMMARY_TAG_BYTES = _TAG_NAME_BYTES + 360 + 8 * _DIGEST_BYTES + 32
#: The two latency histograms of a session, every bucket used.
_HISTOGRAMS_BYTES = 2 * (_table_bytes(MAX_BUCKET + 1, 8, 24) + (MAX_BUCKET + 1) * _DIGEST_BYTES)
_LATENCY_VIEW_BYTES = 2048


def memory_bound_bytes(options: ManagerOptions, max_sessions: int) -> int:
    """Records, tombstones, sessions and history at their caps, each structure at its worst."""
    cap = options.max_tracked_messages
    tags = options.max_tags_per_session + 1  # "other" too
    records = cap * (_ID_BYTES + _PACKED_BYTES) + max_sessions * _table_bytes(cap, 8, 16)
    tombstones = cap * (_DIGEST_BYTES + 8) + _table_bytes(cap, 0, 16) * 2
    sessions = max_sessions * (
        _SESSION_BYTES
        + MAX_ERROR_CODES * _ERROR_TALLY_BYTES
        + tags * _SESSION_TAG_BYTES
        + _HISTOGRAMS_BYTES
        + _LATENCY_VIEW_BYTES
    )
    history = options.history_limit * (
        _SUMMARY_BYTES + tags * _SUMMARY_TAG_BYTES + _LATENCY_VIEW_BYTES
    )
    recipient_cache = _table_bytes(RECIPIENT_CACHE_SIZE, 8, 16) + RECIPIENT_CACHE_SIZE * (
        _aligned(49 + 64) + _DIGEST_BYTES
    )
    return records + tombstones + sessions + history + recipient_cache


def max_active_sessions(options: ManagerOptions, fixed_offset: bool) -> int:
    """Most sessions that can be active at once with these options, for every store.

    A session is active from its start until ``min(end + window, start + max_session_age)``
    (never before its end), and periods start ``session_period`` apart, so at most
    ``ceil(lifetime / period)`` starts fall in one lifetime; one more where daylight saving can
    shorten or lengthen a period (``fixed_offset`` False).
    """
    lifetime = min(options.session_period + options.ack_tracking_window, options.max_session_age)
    return math.ceil(lifetime / options.session_period) + (0 if fixed_offset else 1)
