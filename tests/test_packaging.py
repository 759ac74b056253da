"""The package as users get it: the wheel holds every layer, the public API is importable from
``plugin`` and typed for the user's mypy."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from pathlib import Path

import pytest

import plugin

ROOT = Path(__file__).resolve().parents[1]
LAYERS = [
    "plugin.core.manager",
    "plugin.core.records",
    "plugin.stores.base",
    "plugin.stores.memory",
    "plugin.stores.redis.store",
    "plugin.hooks.plugins",
    "plugin.settings.loading",
    "plugin.server.app",
    "plugin.client",
    "plugin.cli.main",
    "adapters.meta",
    "adapters.twilio",
    "adapters.waha",
    "adapters.bridge",
]
#: DESIGN.md, "Python API": what ``plugin.__all__`` contains at least.
DESIGN_API = {
    "MessageSessionManager",
    "MessageSession",
    "Receipt",
    "ReceiptError",
    "Status",
    "Outcome",
    "StatusChange",
    "MessageExpired",
    "SessionSummary",
    "CleanupReport",
    "InboundMessage",
    "Settings",
    "SettingsError",
    "load_settings",
    "create_app",
    "setup",
    "hookimpl",
    "hookspec",
    "make_plugin_manager",
    "WhatsAppClient",
    "SendResult",
    "SendError",
    "SETTINGS_KEY",
    "MANAGER_KEY",
    "PLUGIN_MANAGER_KEY",
    "CLIENT_KEY",
    "RUNTIME_KEY",
}


def test_every_name_of_the_design_is_public_and_importable():
    assert set(plugin.__all__) >= DESIGN_API
    for name in plugin.__all__:
        assert getattr(plugin, name) is not None, name


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(out),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (built,) = out.glob("whatsapp_session_plugin-*.whl")
    return built


def test_the_wheel_holds_every_layer_and_the_type_marker(wheel: Path):
    names = set(zipfile.ZipFile(wheel).namelist())
    for module in LAYERS:
        path = module.replace(".", "/")
        assert f"{path}.py" in names or f"{path}/__init__.py" in names, module
    assert "plugin/py.typed" in names


def test_every_layer_imports_from_the_installed_wheel(wheel: Path, tmp_path: Path):
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    code = "import importlib, sys\n" + "".join(
        f"m = importlib.import_module({module!r}); assert m.__file__.startswith(sys.argv[1]), "
        f"m.__file__\n"
        for module in LAYERS
    )
    env = {**os.environ, "PYTHONPATH": f"{target}{os.pathsep}{sysconfig.get_paths()['purelib']}"}
    result = subprocess.run(
        [sys.executable, "-c", code, str(target)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


def test_the_public_api_is_typed_for_the_users_mypy(tmp_path: Path):
    user = tmp_path / "user_bot.py"
    user.write_text(
        textwrap.dedent("""
        from plugin import MANAGER_KEY, MessageSessionManager, Receipt, Status, create_app

        manager = MessageSessionManager(max_history_size=3)
        count: int = manager.track_sent("wamid.A")  # a bool is an int: fine
        wrong: str = Receipt("wamid.A", Status.READ, 1.0)
        app = create_app({}, manager=manager)
        store = app[MANAGER_KEY]
    """)
    )
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(user)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    # Seen as Any, the wrong assignment would pass: the error proves the types reach the user.
    assert 'Incompatible types in assignment (expression has type "Receipt"' in result.stdout, (
        result.stdout
    )
    assert result.stdout.count("error:") == 1, result.stdout
