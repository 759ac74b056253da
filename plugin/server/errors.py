"""Store errors become HTTP answers here, and only here: a store that cannot answer gives 503
with ``Retry-After``, so a provider retries the webhook later and nothing answered 200 is lost."""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.typedefs import Handler

from plugin.core.errors import StoreUnavailable
from plugin.server.runtime import RUNTIME_KEY

__all__ = ["RETRY_AFTER_SECONDS", "store_errors"]

log = logging.getLogger("plugin.server.errors")

#: What ``Retry-After`` says when the store is away.
RETRY_AFTER_SECONDS = 5


@web.middleware
async def store_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """503 with ``Retry-After`` for :class:`StoreUnavailable`, on every route."""
    try:
        return await handler(request)
    except StoreUnavailable as exc:
        runtime = request.app.get(RUNTIME_KEY)
        if runtime is not None:
            runtime.store_errors += 1
        log.error("%s %s: store unavailable, answering 503: %s", request.method, request.path, exc)
        return web.json_response(
            {"error": "store unavailable, retry later"},
            status=503,
            headers={"Retry-After": str(getattr(exc, "retry_after", RETRY_AFTER_SECONDS))},
        )
