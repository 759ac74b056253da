"""The settings layer imports only the core (and dynaconf), lazily or not, and its modules do not
import each other in a cycle: schema <- validation <- loading."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

SETTINGS = Path(__file__).resolve().parent.parent / "plugin" / "settings"


def imports_of(path: Path) -> set[str]:
    """Every module an ``import`` anywhere in ``path`` names (function-level ones included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_settings_import_only_the_core_dynaconf_and_the_standard_library() -> None:
    for path in sorted(SETTINGS.glob("*.py")):
        for module in imports_of(path):
            top = module.split(".")[0]
            allowed = (
                module.startswith(("plugin.core", "plugin.settings"))
                or top in ("dynaconf", "__future__")
                or top in sys.stdlib_module_names
            )
            assert allowed, f"{path.name} imports {module}"


def test_loading_and_validation_do_not_import_each_other_in_a_cycle() -> None:
    graph = {
        path.stem: {
            m.rsplit(".", 1)[-1] for m in imports_of(path) if m.startswith("plugin.settings.")
        }
        for path in SETTINGS.glob("*.py")
    }
    assert "loading" not in graph["validation"]
    assert "loading" not in graph["schema"] and "validation" not in graph["schema"]
    assert "validation" in graph["loading"] and "schema" in graph["validation"]
