"""Shared fixtures of the test suite."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _no_ambient_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """A WHATSAPP_* (or dynaconf) variable in the developer's shell must not change any test."""
    for name in list(os.environ):
        if name.startswith("WHATSAPP_") or name.endswith("_FOR_DYNACONF"):
            monkeypatch.delenv(name)
