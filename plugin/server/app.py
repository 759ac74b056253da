"""The aiohttp server: ``create_app()`` for a ready application, ``setup(app)`` to mount the same
routes and background task onto a bot's existing one, and ``wa-sessions serve``.

What each part does lives in its own module: :mod:`plugin.server.webhooks` (provider routes),
:mod:`plugin.server.receive` (the receive pipeline), :mod:`plugin.server.admin` (stats, debug,
metrics, healthz), :mod:`plugin.server.metrics`, :mod:`plugin.client` (sending). This module
wires them to one application and runs its lifecycle: at start-up the receive pipeline is
built (every plugin is registered by then), hook events are dispatched from a background task
and the periodic cleanup starts; on shutdown a final cleanup runs and every queued event is
delivered.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import errno
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import replace
from functools import partial
from typing import Any

import pluggy
from aiohttp import web

from plugin.client import WhatsAppClient
from plugin.core.durations import format_duration
from plugin.core.errors import ServeError
from plugin.core.manager import MessageSessionManager
from plugin.hooks.events import HookEvents
from plugin.hooks.plugins import make_plugin_manager
from plugin.server.admin import AdminRoutes
from plugin.server.errors import store_errors
from plugin.server.metrics import make_registry
from plugin.server.receive import ReceivePipeline
from plugin.server.runtime import (
    CLIENT_KEY,
    MANAGER_KEY,
    PLUGIN_MANAGER_KEY,
    RUNTIME_KEY,
    SETTINGS_KEY,
    Runtime,
    WebhookCounters,
)
from plugin.server.webhooks import WebhookRoutes
from plugin.settings.loading import Settings, load_settings
from plugin.stores.base import Store, as_store, build_store
from plugin.stores.deferred import deferred_writes

__all__ = [
    "CLIENT_KEY",
    "MANAGER_KEY",
    "PLUGIN_MANAGER_KEY",
    "RUNTIME_KEY",
    "SETTINGS_KEY",
    "create_app",
    "serve_command",
    "setup",
]

log = logging.getLogger("plugin.server.app")

SettingsSource = Settings | Mapping[str, Any] | str | os.PathLike[str] | None


def _settings(source: Any) -> Settings:
    """A Settings from what a host hands over: nothing (``settings.toml`` and ``WHATSAPP_*``), a
    path to a settings file, a mapping or dynaconf object, or a Settings."""
    if source is None:
        return load_settings()
    if isinstance(source, str | os.PathLike):
        return load_settings(source)
    return Settings.from_mapping(source)


def setup(
    app: web.Application,
    settings: SettingsSource = None,
    *,
    manager: Store | MessageSessionManager | None = None,
    clock: Callable[[], float] | None = None,
    plugins: pluggy.PluginManager | None = None,
    client: WhatsAppClient | None = None,
    entry_points: bool = True,
) -> Runtime:
    """Mount the webhook routes, the admin routes and the background cleanup onto ``app``.

    ``manager`` (or just its ``clock``) replaces the one built from settings: tests drive
    simulated days this way. ``plugins`` replaces the plugin manager built from settings (it
    should hold the tracking plugin of ``manager``); ``client`` replaces the client built from
    ``[meta]`` (``access_token`` and ``phone_number_id``). Raises SettingsError when the settings
    are invalid or a listed plugin cannot be imported.
    """
    if RUNTIME_KEY in app:
        raise RuntimeError("the WhatsApp session plugin is already set up on this application")
    resolved = _settings(settings)
    if manager is None:
        # The durable in-memory store restores its snapshot here: plugins see it from the start.
        store = build_store(resolved, clock=clock or time.time)
    else:
        store = as_store(manager)
    if plugins is None:
        plugins = make_plugin_manager(store, resolved.plugins, entry_points=entry_points)
    events = HookEvents(
        plugins,
        store,
        max_queue=resolved.event_queue_size,
        hook_timeout=resolved.hook_timeout,
        shutdown_timeout=resolved.shutdown_timeout,
    )
    if client is None:
        client = WhatsAppClient.from_settings(resolved.meta, plugins=plugins, manager=store)
    runtime = Runtime(resolved, store, plugins, events, client, webhooks=_restored_counters(store))
    if hasattr(store, "extra_state"):
        store.extra_state = partial(_snapshot_extra, runtime)
    app[RUNTIME_KEY] = runtime
    app[SETTINGS_KEY] = resolved
    app[MANAGER_KEY] = store
    app[PLUGIN_MANAGER_KEY] = plugins
    app[CLIENT_KEY] = client
    app.middlewares.append(store_errors)
    WebhookRoutes(runtime).add_to(app)
    AdminRoutes(runtime, make_registry(runtime)).add_to(app)
    app.cleanup_ctx.append(partial(_lifecycle, runtime))
    return runtime


def _restored_counters(store: Store) -> dict[str, WebhookCounters]:
    """The webhook counters a durable store's snapshot carried (none for the others)."""
    restored = getattr(store, "restored", None) or {}
    webhooks = restored.get("webhooks")
    return {
        str(name): WebhookCounters.from_state(state)
        for name, state in (webhooks.items() if isinstance(webhooks, dict) else ())
    }


def create_app(
    settings: SettingsSource = None,
    *,
    manager: Store | MessageSessionManager | None = None,
    clock: Callable[[], float] | None = None,
    plugins: pluggy.PluginManager | None = None,
    client: WhatsAppClient | None = None,
    entry_points: bool = True,
) -> web.Application:
    """A ready application: the routes of DESIGN.md and the background cleanup."""
    app = web.Application()
    setup(
        app,
        settings,
        manager=manager,
        clock=clock,
        plugins=plugins,
        client=client,
        entry_points=entry_points,
    )
    return app


async def _lifecycle(runtime: Runtime, app: web.Application) -> AsyncIterator[None]:
    settings, store = runtime.settings, runtime.store
    for warning in settings.warnings():
        log.warning("%s", warning)
    await store.start()  # StoreUnavailable (naming the URL) stops the start-up
    runtime.events.attach(store)
    runtime.pipeline = ReceivePipeline(runtime.plugins, store, runtime.client, runtime.events)
    await runtime.events.start()
    interval = store.options.cleanup_interval
    loop = asyncio.get_running_loop()
    tasks = [loop.create_task(_periodic_cleanup(store, interval), name="whatsapp-cleanup")]
    tasks += [loop.create_task(work, name="whatsapp-store") for work in store.background()]
    log.info(
        "WhatsApp session plugin started: providers %s under %s, cleanup every %s, sending %s",
        ", ".join(settings.enabled_providers) or "none",
        settings.server.webhook_path,
        format_duration(interval),
        "configured" if runtime.client is not None else "not configured",
    )
    runtime.ready = True
    try:
        yield
    finally:
        runtime.ready = False
        for running in tasks:
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running
        try:
            await store.cleanup()
        except Exception:
            log.exception("final cleanup failed")
        await runtime.events.stop()
        if runtime.client is not None:
            await runtime.client.close()
        await deferred_writes(store).close()  # one last try; what is left is logged
        await store.close()
        log.info("WhatsApp session plugin stopped")


def _snapshot_extra(runtime: Runtime) -> dict[str, Any]:
    return {"webhooks": {name: c.as_state() for name, c in runtime.webhooks.items()}}


async def _periodic_cleanup(store: Store, interval: float) -> None:
    # With the Redis store every replica runs this; the lease lets one at a time do the work.
    while True:
        await asyncio.sleep(interval)
        try:
            await store.cleanup()
        except Exception:
            log.exception("periodic cleanup failed")


_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter


def _pin_mmap_threshold(threshold: int = 128 * 1024) -> bool:
    """Fix glibc's mmap threshold (unless MALLOC_MMAP_THRESHOLD_ already does).

    By default glibc raises the threshold to the size of any mmapped block it frees, so the
    multi-megabyte dict and set tables that churn when the manager runs at its cap come from the
    heap afterwards and freed ones are not given back: RSS then climbs in table-sized steps
    while the Python heap stays flat (benchmarks/soak_server.py measured +22% over 10 minutes,
    0.1% with a fixed threshold). Returns whether the threshold was set.
    """
    if os.environ.get("MALLOC_MMAP_THRESHOLD_") is not None:
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, threshold))
    except (OSError, AttributeError):  # not glibc: nothing to do
        return False


def serve_command(args: argparse.Namespace) -> int:
    """``wa-sessions serve``: run the webhook server until SIGINT or SIGTERM, then shut down
    gracefully (final cleanup, queued events delivered). SettingsError propagates (exit 2); so
    does ServeError (exit 1) when the address cannot be listened on, before anything starts."""
    settings = load_settings(getattr(args, "settings", None))
    if _pin_mmap_threshold():
        log.debug("glibc mmap threshold fixed at 128 KiB")
    server = settings.server
    host = args.host if getattr(args, "host", None) else server.host
    port = args.port if getattr(args, "port", None) is not None else server.port
    settings = replace(settings, server=replace(server, host=host, port=port))
    sockets = listen(host, port)
    try:
        app = create_app(settings)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    log.info(
        "serving on http://%s:%d (env=%s, profile=%s)",
        host,
        sockets[0].getsockname()[1],
        settings.env,
        settings.manager.profile,
    )
    # No access log: its request line would carry the handshake's hub.verify_token.
    web.run_app(
        app, sock=sockets, access_log=None, print=None, handle_signals=True, shutdown_timeout=10.0
    )
    return 0


def listen(host: str, port: int) -> list[socket.socket]:
    """Bound sockets for ``host:port``, one per address ``host`` resolves to (as asyncio's
    ``create_server`` binds them), so that a port in use is one clear ServeError before the
    application starts, not a traceback after it did."""
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ServeError(
                f"port {port} is already in use on {host or '*'}: stop what listens "
                "there or choose another port (--port, server.port)"
            ) from None
        raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sockets
