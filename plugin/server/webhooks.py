"""Webhook routes: one per enabled provider under ``server.webhook_path``.

Each request: read the raw body once, with a limit; hand it to the provider's adapter, which
checks the signature over those bytes and parses them; run the receive pipeline; answer 200.
An :class:`~adapters.base.AdapterError` becomes its ``http_status`` here and nowhere else.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable

from aiohttp import web

from adapters import bridge, meta, twilio, waha
from adapters.base import AdapterError, ParseResult, WebhookRequest
from plugin.server.runtime import Runtime, WebhookCounters

__all__ = ["BodyTooLarge", "WebhookRoutes", "read_body"]

log = logging.getLogger("plugin.server.webhooks")

_Parse = Callable[[web.Request, bytes], ParseResult]


# whatsapp-web.js and WAHA ids embed the chat's phone number ("true_16505551234@c.us_3EB0…"):
# the problems logged for malformed items show no run of digits long enough to be one.
_PHONE_LIKE = re.compile(r"\d{7,}")


def _redact_numbers(problems: list[str]) -> str:
    return _PHONE_LIKE.sub("<number>", "; ".join(problems))


class BodyTooLarge(AdapterError):
    """The body is larger than ``server.max_body_size``."""

    http_status = 413


async def read_body(request: web.Request, limit: int) -> bytes:
    """The raw body, or BodyTooLarge as soon as it passes ``limit`` bytes (whatever
    Content-Length claims, and for chunked bodies that have none)."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise BodyTooLarge(f"body of {declared} bytes is over server.max_body_size ({limit})")
    content = request.content
    if declared is not None:
        # The HTTP parser never feeds more than Content-Length bytes: one read gets it all.
        return await content.read()
    body = bytearray()
    while chunk := await content.readany():
        body += chunk
        if len(body) > limit:
            raise BodyTooLarge(f"body is over server.max_body_size ({limit} bytes)")
    return bytes(body)


class WebhookRoutes:
    """The provider handlers of one runtime."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        settings = runtime.settings
        self.limit = settings.server.max_body_size
        self._meta_secret = settings.meta.app_secret
        self._meta_header = (
            (settings.meta.shared_secret_header, settings.meta.shared_secret)
            if settings.meta.shared_secret_header and settings.meta.shared_secret
            else None
        )
        self._verify_token = settings.meta.verify_token
        self._twilio_token = settings.twilio.auth_token
        self._twilio_url = settings.twilio.public_url
        self._waha_key = settings.waha.hmac_key
        self._bridge_secret = settings.bridge.secret

    def add_to(self, app: web.Application) -> None:
        """Add the route of every enabled provider."""
        base = self.runtime.settings.server.webhook_path
        parsers: dict[str, _Parse] = {
            "meta": self._parse_meta,
            "twilio": self._parse_twilio,
            "waha": self._parse_waha,
            "bridge": self._parse_bridge,
        }
        for name in self.runtime.settings.enabled_providers:
            counters = self.runtime.webhooks.setdefault(name, WebhookCounters())
            app.router.add_post(f"{base}/{name}", self._handler(name, counters, parsers[name]))
        if "meta" in self.runtime.webhooks:
            app.router.add_get(f"{base}/meta", self.meta_handshake)

    def _handler(
        self, provider: str, counters: WebhookCounters, parse: _Parse
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        runtime = self.runtime
        limit = self.limit
        outcomes = counters.outcomes

        async def receive(request: web.Request) -> web.Response:
            counters.requests += 1
            try:
                body = await read_body(request, limit)
                result = parse(request, body)
            except AdapterError as exc:
                return self._refuse(provider, counters, exc)
            counters.receipts += len(result.receipts)
            counters.inbound += len(result.inbound)
            if result.ignored:
                counters.ignored += result.ignored
            if result.rejected:
                counters.rejected += result.rejected
                log.warning("%s webhook: %d malformed item(s) skipped, e.g. %s",
                            provider, result.rejected, _redact_numbers(result.problems[:3]))
            pipeline = runtime.pipeline
            if pipeline is None:  # not started: an app used without its start-up signals
                raise web.HTTPServiceUnavailable(text="the WhatsApp plugin is not started")
            # StoreUnavailable becomes 503 (plugin.server.errors): the provider retries the batch.
            await pipeline.run(result, provider, outcomes)
            return web.Response(text="OK")

        receive.__name__ = f"{provider}_webhook"
        return receive

    @staticmethod
    def _refuse(provider: str, counters: WebhookCounters, exc: AdapterError) -> web.Response:
        status = exc.http_status
        if status in (401, 403):
            counters.unauthorized += 1
        else:
            counters.rejected += 1
        log.warning("%s webhook refused (HTTP %d): %s", provider, status, exc)
        return web.Response(status=status, text=str(exc))

    # -- per provider: raw request -> ParseResult -------------------------------------------------

    def _parse_meta(self, request: web.Request, body: bytes) -> ParseResult:
        raw = WebhookRequest("POST", "", request.headers, body)
        return meta.handle(raw, self._meta_secret, shared_secret_header=self._meta_header)

    def _parse_twilio(self, request: web.Request, body: bytes) -> ParseResult:
        raw = WebhookRequest("POST", str(request.url), request.headers, body, request.query)
        return twilio.handle(raw, self._twilio_token, self._twilio_url)

    def _parse_waha(self, request: web.Request, body: bytes) -> ParseResult:
        return waha.handle(WebhookRequest("POST", "", request.headers, body), self._waha_key)

    def _parse_bridge(self, request: web.Request, body: bytes) -> ParseResult:
        return bridge.handle(WebhookRequest("POST", "", request.headers, body), self._bridge_secret)

    async def meta_handshake(self, request: web.Request) -> web.Response:
        """``GET ?hub.mode=subscribe&hub.verify_token=…&hub.challenge=…`` → the challenge."""
        counters = self.runtime.webhooks["meta"]
        counters.requests += 1
        try:
            challenge = meta.verify_handshake(request.query, self._verify_token)
        except AdapterError as exc:
            return self._refuse("meta", counters, exc)
        log.info("Meta verification handshake accepted")
        return web.Response(text=challenge)
