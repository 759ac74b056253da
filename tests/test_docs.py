"""The README documents every hook with its exact signature (datasette's test, adapted)."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from plugin import hookspecs

README = Path(__file__).resolve().parent.parent / "README.md"
HOOKSPECS = sorted(
    (name, function)
    for name, function in vars(hookspecs).items()
    if name.startswith("whatsapp_") and inspect.isfunction(function)
)


def documented_signature(name: str) -> str:
    parameters = inspect.signature(dict(HOOKSPECS)[name]).parameters
    return f"{name}({', '.join(parameters)})"


def test_there_are_hookspecs_to_document():
    assert len(HOOKSPECS) >= 4


@pytest.mark.parametrize("name", [name for name, _ in HOOKSPECS])
def test_every_hook_is_documented_in_the_readme_with_its_signature(name):
    readme = README.read_text(encoding="utf-8")
    assert name in readme, f"hook {name} is missing from README.md"
    assert documented_signature(name) in readme, (
        f"README.md should show {documented_signature(name)}"
    )


def test_the_readme_documents_no_hook_that_does_not_exist():
    readme = README.read_text(encoding="utf-8")
    mentioned = set(re.findall(r"\b(whatsapp_[a-z_]+)\(", readme))
    assert mentioned <= {name for name, _ in HOOKSPECS}
