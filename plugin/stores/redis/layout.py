"""The version of the Redis key layout, checked when a store connects.

``{prefix}:format`` holds :data:`~plugin.stores.redis.scripts.LAYOUT_VERSION`. It is also the
data-loss marker: every writing script checks it, and writes it again when it is gone (Redis
restarted without persistence, or the keys were flushed).

At connect:

* the marker holds this version: nothing to do;
* it holds another version: the store refuses to start (``StoreUnavailable`` naming both
  versions): a newer layout is never read by an older replica;
* there is no marker but version-1 keys exist (``{prefix}:meta``, written by a version before
  the marker existed): they are migrated in place (tombstones become digests; with
  ``redact_recipients``, ids carrying a jid's number are renamed to their stored form), logged,
  and the marker is written;
* nothing at all: a new store; the marker is written.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis

from plugin.core.errors import StoreUnavailable
from plugin.stores.redis.scripts import LAYOUT_VERSION

__all__ = ["check_layout", "tomb_digest"]

log = logging.getLogger("plugin.stores.redis.store")


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def tomb_digest(stored_id: str) -> str:
    """The tombstone of an id as the scripts write it (``sha1hex(id)``, first 16 digits)."""
    return hashlib.sha1(stored_id.encode(), usedforsecurity=False).hexdigest()[:16]


async def check_layout(client: aioredis.Redis, base: str, stored_id: Callable[[str], str]) -> None:
    """Check (or write) the layout marker of ``base``; migrate a version-1 layout."""
    marker = base + ":format"
    found = _text(await client.get(marker))
    if found == str(LAYOUT_VERSION):
        return
    if found is not None:
        raise StoreUnavailable(
            f"Redis keys under {base} use key layout version {found}; this version of the "
            f"plugin reads version {LAYOUT_VERSION}: upgrade every replica, or give this one "
            f"another redis_prefix (see docs/stores.md, 'Rolling a new layout')",
            retry_after=60,
        )
    if await client.exists(base + ":meta"):
        tombs, renamed = await _migrate_v1(client, base, stored_id)
        log.warning(
            "Redis key layout under %s migrated from version 1 to %d (%d tombstones as "
            "digests, %d ids renamed without a number)",
            base,
            LAYOUT_VERSION,
            tombs,
            renamed,
        )
    await client.set(marker, str(LAYOUT_VERSION), nx=True)


async def _migrate_v1(
    client: aioredis.Redis, base: str, stored_id: Callable[[str], str]
) -> tuple[int, int]:
    tombs_key = base + ":tombs"
    tombs: list[Any] = await client.zrange(tombs_key, 0, -1, withscores=True)
    if tombs:
        digests = {tomb_digest(stored_id(str(member))): score for member, score in tombs}
        ttl = await client.pttl(tombs_key)
        async with client.pipeline(transaction=True) as pipe:
            pipe.delete(tombs_key)
            pipe.zadd(tombs_key, digests)
            if ttl > 0:
                pipe.pexpire(tombs_key, ttl)
            await pipe.execute()
    renamed = 0
    prefix = base + ":m:"
    async for key in client.scan_iter(match=prefix + "*@*", count=1000):
        old = key[len(prefix) :]
        new = stored_id(old)
        session_id = _text(await client.hget(key, "s"))
        if new == old or session_id is None:
            continue
        order = f"{base}:o:{session_id}"
        score = await client.zscore(order, old)
        async with client.pipeline(transaction=True) as pipe:
            pipe.rename(key, prefix + new)
            pipe.zrem(order, old)
            if score is not None:
                pipe.zadd(order, {new: score})
            await pipe.execute()
        renamed += 1
    return len(tombs), renamed
