"""No phone number at rest in Redis: with ``redact_recipients`` (the default), after sends,
receipts, expiry and completion, no key name and no value under the prefix holds the number,
even when message ids are WAHA / whatsapp-web.js serialized ids that embed it."""

from __future__ import annotations

import redis

from plugin.core.model import Receipt, Status
from plugin.server.app import create_app
from plugin.server.runtime import MANAGER_KEY
from plugin.stores.redis.store import RedisStore
from tests.providers import meta_status, meta_status_body, sign_meta
from tests.redis_support import redis_prefix, redis_url
from tests.serving import META_SECRET, Clock, make_settings

__all__ = ["redis_prefix", "redis_url"]  # fixtures used here

NUMBER = "16505551234"
DIGITS = "6505551234"


def everything_under(url: str, prefix: str) -> list[str]:
    """Every key name and every value (by type) under ``{prefix}``, as text."""
    client = redis.Redis.from_url(url, decode_responses=True)
    seen: list[str] = []
    try:
        for key in client.scan_iter(match="{" + prefix + "}*", count=1000):
            seen.append(key)
            kind = client.type(key)
            if kind == "string":
                seen.append(str(client.get(key)))
            elif kind == "hash":
                seen += [f"{k}={v}" for k, v in client.hgetall(key).items()]
            elif kind == "zset":
                seen += [f"{m}:{s}" for m, s in client.zrange(key, 0, -1, withscores=True)]
            elif kind == "list":
                seen += client.lrange(key, 0, -1)
            elif kind == "set":
                seen += list(client.smembers(key))
            elif kind == "stream":
                seen += [f"{i}:{fields}" for i, fields in client.xrange(key)]
            else:
                raise AssertionError(f"unexpected {kind} at {key}")
    finally:
        client.close()
    return seen


async def test_no_phone_number_in_any_redis_key_or_value(aiohttp_client, redis_url, redis_prefix):
    clock = Clock()
    settings = make_settings(
        {
            "store": "redis",
            "redis_url": redis_url,
            "redis_prefix": redis_prefix,
            "ack_tracking_window": "1h",
            "redaction_key": "privacy-key",
        }
    )
    app = create_app(settings, clock=clock, entry_points=False)
    client = await aiohttp_client(app)
    store: RedisStore = app[MANAGER_KEY]
    waha_sent = f"true_{NUMBER}@c.us_3EB0C767D71D4A0B6E8D"
    waha_unknown = f"false_{NUMBER}@c.us_3EB0AAAA1111BBBB2222"
    group = f"false_120363025246125486@g.us_3EB0CCCC_{NUMBER}@c.us"

    # sent: a WAHA id, a Meta id, a group message; received: acks for each, one unknown
    assert await store.track_sent(waha_sent, NUMBER)
    assert await store.track_sent("wamid.PRIVACY1", f"+{NUMBER}")
    assert await store.track_sent(group, NUMBER)
    now = clock.now
    outcomes = await store.apply_receipts(
        [
            Receipt(waha_sent, Status.DELIVERED, now, NUMBER, "waha"),
            Receipt(waha_unknown, Status.READ, now, NUMBER, "waha"),
            Receipt(group, Status.FAILED, now, NUMBER, "waha"),
        ]
    )
    assert [o.value for o in outcomes] == ["applied", "adopted", "applied"]
    body = meta_status_body(
        [
            meta_status("wamid.PRIVACY1", "read", str(int(now)), NUMBER),
            meta_status("wamid.PRIVACY2", "delivered", str(int(now)), NUMBER),
        ]
    )
    response = await client.post(
        "/webhooks/meta",
        data=body,
        headers={
            "X-Hub-Signature-256": sign_meta(body, META_SECRET),
            "Content-Type": "application/json",
        },
    )
    assert response.status == 200
    # the same WAHA id still matches its record (its stored form is stable)
    assert (
        await store.apply_receipt(Receipt(waha_sent, Status.READ, now, NUMBER, "waha"))
    ).value == "applied"
    during = everything_under(redis_url, redis_prefix)
    assert any(":m:" in key for key in during)  # records are there

    # windows end (tombstones), the day completes (history)
    clock.advance(2 * 86400)
    assert await store.cleanup() is not None
    assert (
        await store.apply_receipt(Receipt(waha_sent, Status.READ, now, NUMBER, "waha"))
    ).value == "late"
    after = everything_under(redis_url, redis_prefix)
    assert any(key.endswith(":tombs") for key in after)
    assert any(key.endswith(":history") for key in after)

    leaks = [text for text in during + after if DIGITS in text]
    assert leaks == []
