"""The idempotency ledger of the Redis store: one ledger for every replica.

Keys (``B`` = the store's ``{redis_prefix}`` hash tag, so they share the store's slot):

* ``B:i:<digest>`` string: ``p:<token>`` while the claimer sends (``PX`` = the pending TTL, so a
  replica that dies mid-send frees the key), then ``d:<json>`` with the message id and the
  provider only, never the recipient (``PX`` = ``ack_tracking_window``).
* ``B:idem`` sorted set: digests by claim time (Redis' own ``TIME``), the index that caps the
  entries: entries older than the window leave it, and over ``capacity`` the oldest are
  deleted with their keys. It expires one window after the last claim.

A claim is ``SET NX`` plus the index upkeep in one script, so two replicas claiming one key at
once get one ``"claimed"`` between them; completion and release check the claimer's token.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Literal

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from plugin.core.errors import StoreUnavailable
from plugin.stores.idempotency import DEFAULT_CAPACITY, Claim, SendRecord, key_digest

__all__ = ["RedisSendLedger"]

# Scripts with the Redis 7 shebang and no flags: Redis refuses them under OOM before they write.
_CLAIM = """#!lua
local current = redis.call('GET', KEYS[1])
if current then return current end
redis.call('SET', KEYS[1], 'p:' .. ARGV[2], 'PX', ARGV[3])
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local window_ms = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now_ms - window_ms)
redis.call('ZADD', KEYS[2], now_ms, ARGV[1])
local over = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[5])
if over > 0 then
  local oldest = redis.call('ZPOPMIN', KEYS[2], over)
  for i = 1, #oldest, 2 do redis.call('DEL', ARGV[6] .. oldest[i]) end
end
redis.call('PEXPIRE', KEYS[2], window_ms)
return ''
"""

_COMPLETE = """#!lua
local current = redis.call('GET', KEYS[1])
if current and current ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"""

_RELEASE = """#!lua
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('ZREM', KEYS[2], ARGV[2])
return redis.call('DEL', KEYS[1])
"""


def _entry(value: Any) -> Literal["pending"] | SendRecord | None:
    if not value:
        return None
    text = str(value)
    if text.startswith("d:"):
        try:
            fields = json.loads(text[2:])
            return SendRecord(str(fields["id"]), str(fields["provider"]))
        except (ValueError, KeyError, TypeError):
            return None  # not ours to read: treat as free
    return "pending"


class RedisSendLedger:
    """:class:`~plugin.stores.idempotency.SendLedger` over the store's Redis connection."""

    def __init__(
        self,
        client: Callable[[], aioredis.Redis],
        base: str,
        window: float,
        secret: bytes,
        *,
        capacity: int = DEFAULT_CAPACITY,
    ) -> None:
        self._client = client  # the store's connection as it is now (it may reconnect)
        self._base = base
        self._window = float(window)
        self._secret = secret
        self.capacity = capacity
        self._scripts: dict[int, tuple[Any, Any, Any]] = {}

    @property
    def window(self) -> float:
        return self._window

    def digest(self, key: str) -> str:
        return key_digest(key, self._secret)

    def _keys(self, digest: str) -> list[str]:
        return [f"{self._base}:i:{digest}", f"{self._base}:idem"]

    def _bound(self) -> tuple[Any, Any, Any]:
        client = self._client()
        scripts = self._scripts.get(id(client))
        if scripts is None:
            self._scripts = {
                id(client): (
                    client.register_script(_CLAIM),
                    client.register_script(_COMPLETE),
                    client.register_script(_RELEASE),
                )
            }
            scripts = self._scripts[id(client)]
        return scripts

    async def claim(self, digest: str, token: str, pending_ttl: float) -> Claim:
        claim, _, _ = self._bound()
        args = [
            digest,
            token,
            _ms(pending_ttl),
            _ms(self._window),
            self.capacity,
            f"{self._base}:i:",
        ]
        try:
            reply = await claim(keys=self._keys(digest), args=args)
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"idempotency claim failed: {exc}") from exc
        if reply in ("", b""):
            return "claimed"
        entry = _entry(reply)
        return "pending" if entry is None else entry

    async def lookup(self, digest: str) -> Literal["pending"] | SendRecord | None:
        try:
            value = await self._client().get(self._keys(digest)[0])
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"idempotency lookup failed: {exc}") from exc
        return _entry(value)

    async def complete(self, digest: str, token: str, record: SendRecord) -> None:
        _, complete, _ = self._bound()
        value = "d:" + json.dumps(
            {"id": record.message_id, "provider": record.provider}, separators=(",", ":")
        )
        try:
            await complete(
                keys=self._keys(digest)[:1], args=[f"p:{token}", value, _ms(self._window)]
            )
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"idempotency record failed: {exc}") from exc

    async def release(self, digest: str, token: str) -> None:
        _, _, release = self._bound()
        try:
            await release(keys=self._keys(digest), args=[f"p:{token}", digest])
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"idempotency release failed: {exc}") from exc


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))
