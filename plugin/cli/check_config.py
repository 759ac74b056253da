"""``wa-sessions check-config``: fails exactly when ``serve`` would on configuration. It loads the
settings the same way (the same production checks), imports the ``plugins`` they list and the
``wa_sessions`` entry points as ``serve`` does, and prints a summary for people (durations as
``"1d"``, ``"12h"``). SettingsError propagates: the CLI turns it into exit status 2."""

from __future__ import annotations

import argparse
import sys

from plugin.core.durations import format_duration
from plugin.core.manager import MessageSessionManager
from plugin.hooks.plugins import make_plugin_manager
from plugin.settings.loading import Settings, load_settings, settings_source
from plugin.settings.schema import format_size

__all__ = ["check_config_command", "summary"]


def check_config_command(args: argparse.Namespace) -> int:
    """Print warnings (stderr) and a summary (stdout); return 0. SettingsError propagates."""
    settings = load_settings(getattr(args, "settings", None))
    # What serve does next: import every listed plugin, then the entry points.
    plugins = make_plugin_manager(None, settings.plugins, entry_points=True)
    loaded = sorted(name for name, _ in plugins.list_name_plugin())
    for warning in settings.warnings():
        print(f"warning: {warning}", file=sys.stderr)
    source = settings_source(getattr(args, "settings", None))
    print("\n".join(summary(settings, str(source) if source else None, loaded)))
    return 0


def summary(settings: Settings, source: str | None, loaded: list[str]) -> list[str]:
    """The lines check-config prints: the settings as a person reads them, no secret."""
    shown = settings.redacted()
    lines = [
        f"settings OK (env={settings.env}, profile={settings.manager.profile})",
        f"read from: {source or 'no settings file: defaults'} + WHATSAPP_* environment variables",
        "manager:",
    ]
    lines += [f"  {key} = {_toml(value)}" for key, value in settings.manager.as_settings().items()]
    lines.append(f"  redaction_key = {_toml(shown['redaction_key'])}")
    server = settings.server
    lines.append(
        f"server: {server.host}:{server.port}, webhooks under {server.webhook_path}, "
        f"max body {format_size(server.max_body_size)}, read timeout "
        f"{format_duration(server.read_timeout)}, admin token "
        + (
            ("set" if len(server.admin_tokens) < 2 else "set (2 values: rotating)")
            if server.admin_token
            else "not set (admin routes answer loopback only)"
        )
    )
    providers = [
        f"{name} ({'signed' if settings.provider(name).signed else 'UNSIGNED'})"
        for name in settings.enabled_providers
    ]
    lines.append(f"providers: {', '.join(providers) or 'none'}")
    lines.append(
        f"plugins: {', '.join(settings.plugins) or 'none'}"
        + (f" (loaded: {', '.join(loaded)})" if loaded else "")
    )
    store = f"store: {settings.store}"
    if settings.store == "redis":
        store += f" ({shown['redis_url']}, prefix {settings.redis_prefix!r})"
    if settings.state_file:
        store += (
            f", snapshots to {settings.state_file} "
            f"every {format_duration(settings.snapshot_interval)}"
        )
    lines.append(store)
    lines.append(
        f"event queue: {settings.event_queue_size} events, hook calls bounded by "
        f"{format_duration(settings.hook_timeout)}, shutdown waits "
        f"{format_duration(settings.shutdown_timeout)} for queued events"
    )
    bound = MessageSessionManager(options=settings.manager).memory_bound_bytes()
    lines.append(f"memory bound (in-process manager, from these options): {bound / 1e6:.1f} MB")
    return lines


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return str(value)
