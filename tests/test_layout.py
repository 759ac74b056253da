"""The house rules of STYLE.md and the layout issue, kept by CI: modules of at most 400 lines
and functions of at most 60, unless the module docstring says why (a paragraph starting with
"Size:")."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted([*ROOT.glob("plugin/**/*.py"), *ROOT.glob("adapters/**/*.py")])
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def explained(tree: ast.Module) -> bool:
    docstring = ast.get_docstring(tree) or ""
    return any(paragraph.strip().startswith("Size:") for paragraph in docstring.split("\n\n"))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_modules_and_functions_stay_small_or_say_why(path: Path):
    text = path.read_text()
    tree = ast.parse(text)
    if explained(tree):
        return
    lines = text.count("\n")
    assert lines <= MAX_MODULE_LINES, f"{lines} lines: split it, or say why in its docstring"
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            size = (node.end_lineno or node.lineno) - node.lineno + 1
            assert size <= MAX_FUNCTION_LINES, f"{node.name}: {size} lines"


def test_the_layers_are_subpackages():
    layers = {p.name for p in (ROOT / "plugin").iterdir() if (p / "__init__.py").exists()}
    assert {"core", "stores", "hooks", "settings", "server", "cli"} <= layers
    assert (ROOT / "plugin" / "stores" / "redis" / "__init__.py").exists()
    assert (ROOT / "plugin" / "client.py").exists()
