"""The plugin-manager factory and plugin loading.

Order: the built-in session-tracking plugin, then the module paths listed in ``plugins`` in
settings, then the ``wa_sessions`` entry-point group. Loading is idempotent: a plugin already
registered under its name is not registered again.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterable

import pluggy

from plugin import hookspecs
from plugin.errors import SettingProblem, SettingsError
from plugin.manager import MessageSessionManager
from plugin.pipeline import MiddlewareRegistry
from plugin.tracking import SessionTrackingPlugin

__all__ = ["ENTRY_POINT_GROUP", "collect_middlewares", "load_plugins", "make_plugin_manager"]

ENTRY_POINT_GROUP = "wa_sessions"
log = logging.getLogger("plugin.plugins")


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


def make_plugin_manager(
    manager: MessageSessionManager | None = None,
    plugins: Iterable[str] = (),
    *,
    entry_points: bool = True,
) -> pluggy.PluginManager:
    """A plugin manager with the hookspecs, the tracking plugin for ``manager`` (if given), the
    modules in ``plugins`` and the ``wa_sessions`` entry points."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    if manager is not None:
        pm.register(SessionTrackingPlugin(manager), name=SessionTrackingPlugin.name)
    load_plugins(pm, plugins)
    if entry_points:
        pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    return pm


def collect_middlewares(pm: pluggy.PluginManager) -> MiddlewareRegistry:
    """Ask every plugin for its middlewares. pluggy calls the last registered plugin first, so
    third-party middlewares are outermost and the built-in tracking runs innermost."""
    registry = MiddlewareRegistry()
    pm.hook.whatsapp_register_middlewares(register=registry)
    return registry
