"""Tombstones: compact digests of released message ids, so that a receipt arriving after its
message's window is ``late`` rather than adopted as a new message.

Each tombstone is a 60-bit digest in one ``set`` (membership in O(1)), also kept in release-time
buckets (``array('Q')``, 8 bytes each) so whole buckets age out one window after release. The
count is capped; over the cap the oldest bucket goes first.
"""

from __future__ import annotations

import zlib
from array import array
from collections import deque
from collections.abc import Iterable

__all__ = ["Tombstones", "id_digest"]


def id_digest(message_id: str) -> int:
    """A 60-bit digest of an id, stable across processes (unlike ``hash()``) so tombstones
    survive a snapshot. CRC-32 and Adler-32 together cost a third of a cryptographic hash; a
    collision (vanishingly rare at these sizes) could only make an unknown receipt ``late``."""
    data = message_id.encode()
    return (zlib.crc32(data) << 28) | (zlib.adler32(data) & 0xFFFFFFF)


class Tombstones:
    """Digests of released ids, kept for ``lifetime`` seconds after release, at most ``cap``."""

    __slots__ = ("_bucket_size", "_bucket_span", "_buckets", "_digests", "cap", "lifetime")

    def __init__(self, lifetime: float, cap: int) -> None:
        self.lifetime = lifetime
        self.cap = cap
        self._digests: set[int] = set()
        self._buckets: deque[tuple[float, array[int]]] = deque()
        self._bucket_span = lifetime / 16
        self._bucket_size = max(1, cap // 16)

    def __len__(self) -> int:
        return len(self._digests)

    def __contains__(self, message_id: str) -> bool:
        return bool(self._digests) and id_digest(message_id) in self._digests

    def add(self, message_id: str, now: float) -> None:
        self.add_digest(id_digest(message_id), now)

    def add_digest(self, digest: int, now: float) -> None:
        digests = self._digests
        if digest in digests:
            return
        buckets = self._buckets
        if (
            not buckets
            or now - buckets[-1][0] >= self._bucket_span
            or len(buckets[-1][1]) >= self._bucket_size
        ):
            buckets.append((now, array("Q")))
        buckets[-1][1].append(digest)
        digests.add(digest)
        if len(digests) > self.cap:
            self.trim(self.cap)

    def trim(self, cap: int) -> int:
        """Drop the oldest buckets until at most ``cap`` remain; return how many went."""
        dropped = 0
        while len(self._digests) > cap and self._buckets:
            dropped += self._drop_oldest()
        return dropped

    def _drop_oldest(self) -> int:
        _, digests = self._buckets.popleft()
        self._digests.difference_update(digests)
        return len(digests)

    def expire(self, now: float) -> int:
        """Drop the buckets released more than ``lifetime`` ago; return how many went."""
        dropped = 0
        buckets = self._buckets
        while buckets and buckets[0][0] + self._bucket_span + self.lifetime <= now:
            dropped += self._drop_oldest()
        return dropped

    def export(self) -> list[list[object]]:
        return [[at, list(digests)] for at, digests in self._buckets]

    def load(self, buckets: Iterable[tuple[float, Iterable[int]]]) -> None:
        for at, digests in buckets:
            bucket = array("Q", (int(d) for d in digests))
            self._buckets.append((float(at), bucket))
            self._digests.update(bucket)
        self.trim(self.cap)
