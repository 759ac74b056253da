"""The plugin-manager factory and plugin loading.

Order: the built-in session-tracking plugin, then the module paths listed in ``plugins`` in
settings, then the ``wa_sessions`` entry-point group. Loading is idempotent: a plugin already
registered under its name is not registered again.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
from collections.abc import Iterable
from typing import Any

import pluggy

from plugin.core.errors import SettingProblem, SettingsError
from plugin.hooks import hookspecs
from plugin.hooks.pipeline import MiddlewareRegistry
from plugin.hooks.tracking import SessionTrackingPlugin
from plugin.stores.base import Store

__all__ = [
    "ENTRY_POINT_GROUP",
    "WhatsAppPluginManager",
    "collect_middlewares",
    "load_entry_points",
    "load_plugins",
    "make_plugin_manager",
]

ENTRY_POINT_GROUP = "wa_sessions"
log = logging.getLogger("plugin.hooks.plugins")


def load_plugins(pm: pluggy.PluginManager, module_paths: Iterable[str]) -> None:
    """Import and register each module path (``"mybot.audit"``, or ``"mybot.crm:Plugin"`` for
    an object in a module); every one that fails is reported at once."""
    problems: list[SettingProblem] = []
    for path in module_paths:
        if pm.has_plugin(path):
            continue
        module_name, _, attribute = path.partition(":")
        try:
            plugin: object = importlib.import_module(module_name)
            for part in filter(None, attribute.split(".")):
                plugin = getattr(plugin, part)
        except (ImportError, AttributeError) as exc:
            problems.append(SettingProblem("plugins", path, f"an importable module path ({exc})"))
            continue
        if isinstance(plugin, type):  # "mybot.crm:Plugin": a class is instantiated
            plugin = plugin()
        pm.register(plugin, name=path)
        log.info("plugin loaded: %s", path)
    if problems:
        raise SettingsError(problems)


class WhatsAppPluginManager(pluggy.PluginManager):
    """pluggy's plugin manager for the ``whatsapp`` project, with its hookspecs, counting
    (un)registrations in ``generation`` so that event dispatch can cache who listens."""

    def __init__(self) -> None:
        super().__init__(hookspecs.PROJECT)
        self.generation = 0
        self.add_hookspecs(hookspecs)

    def register(self, plugin: object, name: str | None = None) -> str | None:
        registered = super().register(plugin, name)
        self.generation += 1
        return registered

    def unregister(self, plugin: object | None = None, name: str | None = None) -> Any:
        removed = super().unregister(plugin, name)
        self.generation += 1
        return removed


def make_plugin_manager(
    manager: Store | None = None,
    plugins: Iterable[str] = (),
    *,
    entry_points: bool = True,
) -> pluggy.PluginManager:
    """A plugin manager with the hookspecs, the tracking plugin for ``manager`` (if given), the
    modules in ``plugins`` and the ``wa_sessions`` entry points."""
    pm = WhatsAppPluginManager()
    if manager is not None:
        pm.register(SessionTrackingPlugin(manager), name=SessionTrackingPlugin.name)
    load_plugins(pm, plugins)
    if entry_points:
        load_entry_points(pm)
    return pm


def load_entry_points(pm: pluggy.PluginManager, group: str = ENTRY_POINT_GROUP) -> None:
    """Register the plugins of the ``group`` entry points. Unlike pluggy's
    ``load_setuptools_entrypoints``, a plugin already registered (also listed in ``plugins``)
    is skipped instead of failing start-up."""
    problems: list[SettingProblem] = []
    for entry_point in importlib.metadata.entry_points(group=group):
        if pm.get_plugin(entry_point.name) is not None or pm.is_blocked(entry_point.name):
            continue
        try:
            plugin = entry_point.load()
        except (ImportError, AttributeError) as exc:
            problems.append(
                SettingProblem(
                    f"entry point {group}:{entry_point.name}",
                    entry_point.value,
                    f"an importable plugin ({exc}; uninstall its package or fix it)",
                )
            )
            continue
        if pm.is_registered(plugin):
            log.info("entry point %s: plugin already loaded from settings", entry_point.name)
            continue
        pm.register(plugin, name=entry_point.name)
        log.info("plugin loaded from entry point: %s", entry_point.name)
    if problems:
        raise SettingsError(problems)


def collect_middlewares(pm: pluggy.PluginManager) -> MiddlewareRegistry:
    """Ask every plugin for its middlewares. pluggy calls the last registered plugin first, so
    third-party middlewares are outermost and the built-in tracking runs innermost."""
    registry = MiddlewareRegistry()
    pm.hook.whatsapp_register_middlewares(register=registry)
    return registry
