"""The README and the docs site document every hook with its exact signature (datasette's test,
adapted); the README's examples use only the public names; no page shows build-machine noise."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from plugin.hooks import hookspecs

README = Path(__file__).resolve().parent.parent / "README.md"
HOOKS_PAGE = README.parent / "docs" / "hooks.md"
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


def test_the_example_plugin_of_the_readme_works(tmp_path, monkeypatch, caplog):
    import logging

    from plugin.core.manager import MessageSessionManager
    from plugin.hooks.events import HookEvents
    from plugin.hooks.plugins import make_plugin_manager
    from tests.clock import Clock, at

    readme = README.read_text(encoding="utf-8")
    hooks = readme[readme.index("## Hooks") :]
    source = re.search(r"```python\n(.*?)```", hooks, re.S).group(1)
    (tmp_path / "readme_clinic_alerts.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))

    clock = Clock(at("2026-11-30T09:00"))
    manager = MessageSessionManager(clock=clock, ack_tracking_window="2h")
    pm = make_plugin_manager(manager, plugins=["readme_clinic_alerts"], entry_points=False)
    HookEvents(pm, manager).attach(manager)
    with caplog.at_level(logging.INFO, logger="clinic_alerts"):
        manager.track_sent("wamid.reminder", recipient="16505551234")
        clock.advance(3 * 3600)
        manager.cleanup()
        manager.cleanup(at("2026-12-02T00:00"))
    assert "reminder wamid.reminder to ~" in caplog.text
    assert "16505551234" not in caplog.text
    assert "2026-11-30: 1 sent, 0 delivered, 0 read, 0 failed, 1 expired" in caplog.text


@pytest.mark.parametrize("name", [name for name, _ in HOOKSPECS])
def test_every_hook_is_documented_on_the_hooks_page_with_its_signature(name):
    page = HOOKS_PAGE.read_text(encoding="utf-8")
    assert documented_signature(name) in page, (
        f"docs/hooks.md should show {documented_signature(name)}"
    )


def test_the_hooks_page_documents_no_hook_that_does_not_exist():
    page = HOOKS_PAGE.read_text(encoding="utf-8")
    mentioned = set(re.findall(r"\b(whatsapp_[a-z_]+)\(", page))
    assert mentioned <= {name for name, _ in HOOKSPECS}


def test_the_readme_imports_only_public_names_from_plugin():
    import plugin

    readme = README.read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    imported = [
        (module, name.strip())
        for block in blocks
        for module, names in re.findall(r"^from (plugin[\w.]*) import (.+)$", block, re.M)
        for name in names.split(",")
    ]
    assert imported, "the README shows no import from plugin"
    for module, name in imported:
        assert module == "plugin", f"the README imports {name} from {module}, not from plugin"
        assert name in plugin.__all__, f"{name} is not a public name of plugin"
        assert getattr(plugin, name) is not None


DOCS = README.parent / "docs"
FRONT_DOOR_AND_PAGES = [README, *sorted(DOCS.glob("*.md"))]


@pytest.mark.parametrize("page", FRONT_DOOR_AND_PAGES, ids=lambda page: page.name)
def test_no_page_shows_a_build_machine_path_or_progress_noise(page):
    text = page.read_text(encoding="utf-8")
    assert not re.search(r"(?<![\w.])/(work|root|home|tmp)/", text), (
        f"{page.name} shows a path of a build machine"
    )
    assert "repetition 1/" not in text, f"{page.name} shows a benchmark's progress lines"


def test_every_page_of_the_docs_is_in_the_site_navigation():
    nav = (README.parent / "mkdocs.yml").read_text(encoding="utf-8")
    for page in sorted(DOCS.glob("*.md")):
        assert f": {page.name}" in nav, f"docs/{page.name} is not in mkdocs.yml's nav"


def test_the_readme_is_a_front_door_of_at_most_250_lines():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 250, f"README.md has {len(lines)} lines: move the detail to docs/"
    readme = "\n".join(lines)
    assert "make serve" in readme and "make test" in readme
    assert "python -m examples.clinic_bot.bot" in readme


def test_every_relative_link_of_the_readme_exists():
    readme = README.read_text(encoding="utf-8")
    targets = [
        target.split("#")[0]
        for target in re.findall(r"\]\(([^)\s]+)\)", readme)
        if "://" not in target and not target.startswith("#")
    ]
    assert targets, "the README links to no page"
    for target in targets:
        assert (README.parent / target).exists(), f"README.md links to a missing {target}"
