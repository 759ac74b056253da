"""Webhook routes: one per enabled provider under ``server.webhook_path``.

Each request: read the raw body once, with a limit; hand it to the provider's adapter, which
checks the signature over those bytes and parses them; run the receive pipeline; answer 200.
An :class:`~adapters.base.AdapterError` becomes its ``http_status`` here and nowhere else.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable

from aiohttp import StreamReader, web

from adapters import bridge, meta, twilio, waha
from adapters.base import AdapterError, ParseResult, WebhookRequest
from plugin.core.durations import format_duration
from plugin.server.protocol_log import quiet_protocol_errors
from plugin.server.runtime import Runtime, WebhookCounters

__all__ = ["BodyTooLarge", "BodyTooSlow", "WebhookRoutes", "read_body"]

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


class BodyTooSlow(AdapterError):
    """The body has not fully arrived within ``server.read_timeout``."""

    http_status = 408


async def read_body(request: web.Request, limit: int, timeout: float | None = None) -> bytes:
    """The raw body, or BodyTooLarge as soon as it passes ``limit`` bytes (whatever
    Content-Length claims, and for chunked bodies that have none), or BodyTooSlow when it has
    not fully arrived ``timeout`` seconds after the handler started reading it."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise BodyTooLarge(f"body of {declared} bytes is over server.max_body_size ({limit})")
    content = request.content
    if timeout is None or content.is_eof():  # the usual case: it came with the headers
        return await _read(content, declared, limit)
    try:
        async with asyncio.timeout(timeout):
            return await _read(content, declared, limit)
    except TimeoutError:
        raise BodyTooSlow(
            f"body not received within server.read_timeout ({format_duration(timeout)})"
        ) from None


async def _read(content: StreamReader, declared: int | None, limit: int) -> bytes:
    if declared is not None:
        # The HTTP parser never feeds more than Content-Length bytes: one read gets it all.
        whole: bytes = await content.read()
        return whole
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
        self.read_timeout = settings.server.read_timeout
        self._meta_secret = settings.meta.app_secret  # one, or the two of a rotation
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
        quiet_protocol_errors()
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
        timeout = self.read_timeout

        async def receive(request: web.Request) -> web.Response:
            counters.requests += 1
            try:
                body = await read_body(request, limit, timeout)
                result = parse(request, body)
            except AdapterError as exc:
                return self._refuse(provider, counters, exc)
            counters.receipts += len(result.receipts)
            counters.inbound += len(result.inbound)
            if result.ignored:
                counters.ignored += result.ignored
            if result.rejected:
                counters.rejected += result.rejected
                log.warning(
                    "%s webhook: %d malformed item(s) skipped, e.g. %s",
                    provider,
                    result.rejected,
                    _redact_numbers(result.problems[:3]),
                )
            pipeline = runtime.pipeline
            if pipeline is None:  # not started: an app used without its start-up signals
                raise web.HTTPServiceUnavailable(text="the WhatsApp plugin is not started")
            # StoreUnavailable becomes 503 (plugin.server.errors): the provider retries the batch.
            await pipeline.run(result, provider, counters)
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
        response = web.Response(status=status, text=str(exc))
        if status == 408:  # the rest of a slow body is not waited for
            response.force_close()
        return response

    # -- per provider: raw request -> ParseResult -------------------------------------------------

    def _parse_meta(self, request: web.Request, body: bytes) -> ParseResult:
        raw = WebhookRequest("POST", "", request.headers, body)
        return meta.handle(raw, self._meta_secret, shared_secret_header=self._meta_header)

    def _parse_twilio(self, request: web.Request, body: bytes) -> ParseResult:
        # The signed URL is twilio.public_url + the raw path and query, joined as text: the
        # Host header is never parsed (``Host: x:99999`` would make ``request.url`` raise).
        # Without a public URL (development only), scheme + Host + path, as text too.
        if self._twilio_url:
            url = twilio.join_public_url(self._twilio_url, request.raw_path)
        else:
            url = f"{request.scheme}://{request.host}{request.raw_path}"
        return twilio.handle(WebhookRequest("POST", url, request.headers, body), self._twilio_token)

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
