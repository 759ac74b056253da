"""A lease in Redis: one holder at a time, for a bounded time. ``SET key token NX PX ttl`` takes
it; renewing and releasing check the token in one script, so a replica whose lease already
expired can never release (or extend) the lease another replica holds now.

The three scripts declare ``allow-oom``: the lease guards cleanup, the work that makes room when
Redis is over ``maxmemory``, so it must still be taken then.
"""

from __future__ import annotations

import secrets

import redis.asyncio as aioredis

__all__ = ["Lease"]

_ACQUIRE = """#!lua flags=allow-oom
return redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2])
"""

_RELEASE = """#!lua flags=allow-oom
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

_RENEW = """#!lua flags=allow-oom
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""


class Lease:
    """The lease at ``key``, held for ``ttl`` seconds unless renewed."""

    def __init__(self, client: aioredis.Redis, key: str, ttl: float) -> None:
        self.key = key
        self.ttl_ms = max(1, round(ttl * 1000))
        self._client = client
        self._acquire = client.register_script(_ACQUIRE)
        self._release = client.register_script(_RELEASE)
        self._renew = client.register_script(_RENEW)

    async def acquire(self, token: str | None = None) -> str | None:
        """``token`` (a new one by default) when the lease was free (now ours), else None."""
        token = token or secrets.token_hex(16)
        taken = await self._acquire(keys=[self.key], args=[token, self.ttl_ms])
        return token if taken else None

    async def renew(self, token: str) -> bool:
        """Extend our lease by its ttl; False when it is no longer ours."""
        return bool(await self._renew(keys=[self.key], args=[token, self.ttl_ms]))

    async def release(self, token: str) -> None:
        """Give the lease back, if it is still ours."""
        await self._release(keys=[self.key], args=[token])
