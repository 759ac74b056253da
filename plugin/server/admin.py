"""Admin routes: ``/sessions`` (the status page), ``/sessions/stats``, ``/sessions/debug``,
``/metrics`` (guarded), ``/healthz`` and ``/readyz`` (open).

With ``server.admin_token`` set, the guarded routes need ``Authorization: Bearer <token>`` or
HTTP Basic with the token as password (any user name, so a browser can prompt for it), from
loopback too (compared in constant time, as bytes; during a rotation either of the two tokens is
accepted; a header that is not ASCII is refused with 401, never decoded further). No
credential or a wrong one (bearer token or Basic password) gets 401 with both challenges
(``Bearer`` and ``Basic realm="wa-sessions"``), so a browser prompts for it. Without a token
they answer loopback clients only: a request that came through a proxy on the same host is a
loopback request, so keep the token set whenever anything else can reach the port.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp_jinja2
from aiohttp import web
from multidict import CIMultiDict
from prometheus_client.registry import CollectorRegistry

from plugin.server.metrics import CONTENT_TYPE, render
from plugin.server.runtime import Runtime
from plugin.server.status_page import TEMPLATES_KEY, page_context, setup_templates

__all__ = ["REALM", "AdminRoutes", "basic_password", "is_loopback"]

log = logging.getLogger("plugin.server.admin")

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

REALM = "wa-sessions"


def basic_password(credentials: str) -> bytes | None:
    """The password of an HTTP Basic credential (``base64(user:password)``), or None when it is
    not one."""
    try:
        decoded = base64.b64decode(credentials.strip().encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError):
        return None
    _user, colon, password = decoded.partition(b":")
    return password if colon else None


def _challenge(error: str) -> web.Response:
    headers: CIMultiDict[str] = CIMultiDict()
    headers.add("WWW-Authenticate", f'Bearer realm="{REALM}"')
    headers.add("WWW-Authenticate", f'Basic realm="{REALM}", charset="UTF-8"')
    return web.json_response({"error": error}, status=401, headers=headers)


def is_loopback(remote: str | None) -> bool:
    """Whether a peer address is loopback (IPv4, IPv6, or IPv4 mapped into IPv6). An unknown
    peer (a Unix socket behind a proxy) is not."""
    if not remote:
        return False
    try:
        address = ipaddress.ip_address(remote.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


class AdminRoutes:
    """The admin handlers of one runtime."""

    def __init__(self, runtime: Runtime, registry: CollectorRegistry) -> None:
        self.runtime = runtime
        self.registry = registry
        tokens = runtime.settings.server.admin_tokens
        self._tokens = tuple(token.encode("utf-8", "surrogateescape") for token in tokens)

    def add_to(self, app: web.Application) -> None:
        setup_templates(app)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_get("/sessions", self._guarded(self.status_page))
        app.router.add_get("/sessions/stats", self._guarded(self.stats))
        app.router.add_get("/sessions/debug", self._guarded(self.debug))
        app.router.add_get("/metrics", self._guarded(self.metrics))

    def _refusal(self, request: web.Request) -> web.Response | None:
        """None when the request may see admin data; else the answer to give."""
        if not self._tokens:
            if is_loopback(request.remote):
                return None
            return web.json_response(
                {
                    "error": "admin routes answer loopback clients only while server.admin_token "
                    "is not set"
                },
                status=403,
            )
        # aiohttp decodes header bytes that are not UTF-8 as surrogates: such a header (or any
        # other non-ASCII one) is refused as a missing credential, never encoded further.
        header = request.headers.get("Authorization", "")
        scheme, _, given = header.partition(" ") if header.isascii() else ("", "", "")
        scheme = scheme.lower()
        if scheme == "basic" and given.strip():
            password = basic_password(given)
            if password is not None and self._accepts(password):
                return None
            return _challenge("wrong admin credentials (the password is server.admin_token)")
        if scheme != "bearer" or not given.strip():
            return _challenge(
                "missing Authorization: Bearer <server.admin_token> "
                "(or Basic with the token as password)"
            )
        if not self._accepts(given.strip().encode("ascii")):
            return _challenge("wrong admin token")
        return None

    def _accepts(self, given: bytes) -> bool:
        # Every token is compared, so the time taken does not say which one nearly matched.
        matches = [hmac.compare_digest(given, token) for token in self._tokens]
        return any(matches)

    def _guarded(self, handler: _Handler) -> _Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            refusal = self._refusal(request)
            if refusal is not None:
                log.warning(
                    "admin route %s refused for %s (HTTP %d)",
                    request.path,
                    request.remote,
                    refusal.status,
                )
                return refusal
            return await handler(request)

        guarded.__name__ = handler.__name__
        return guarded

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(self, request: web.Request) -> web.Response:
        """200 when the store answers and start-up (any restore) finished, else 503."""
        runtime = self.runtime
        if not runtime.ready:
            return web.json_response({"status": "starting"}, status=503)
        if not await runtime.store.ready():
            return web.json_response(
                {"status": "store unavailable"}, status=503, headers={"Retry-After": "5"}
            )
        return web.json_response({"status": "ready"})

    async def read_stats(self) -> dict[str, Any]:
        """What ``/sessions/stats`` answers (and the status page shows): the store's
        ``get_all_stats()``, which settles what is due first, and the webhook counters."""
        stats = await self.runtime.store.get_all_stats()
        stats["webhooks"] = {name: c.as_dict() for name, c in self.runtime.webhooks.items()}
        return stats

    async def stats(self, request: web.Request) -> web.Response:
        stats = await self.read_stats()
        return web.json_response(stats)

    async def status_page(self, request: web.Request) -> web.Response:
        stats = await self.read_stats()  # a store error becomes 503 in the middleware
        context = page_context(stats, time.time())
        response = aiohttp_jinja2.render_template(
            "status.html", request, context, app_key=TEMPLATES_KEY
        )
        response.headers["Cache-Control"] = "no-store"
        response.headers["Content-Security-Policy"] = (
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
            "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
        )
        return response

    async def debug(self, request: web.Request) -> web.Response:
        return web.json_response(await self.runtime.store.get_debug_info())

    async def metrics(self, request: web.Request) -> web.Response:
        store = self.runtime.store
        try:  # the collector is synchronous: read the store's views first
            self.runtime.views = (await store.get_debug_info(), await store.get_all_stats())
            body = render(self.registry)
        finally:
            self.runtime.views = None
        response = web.Response(body=body)
        response.headers["Content-Type"] = CONTENT_TYPE
        return response
