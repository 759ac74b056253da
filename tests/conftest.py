"""Shared fixtures of the test suite."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests import redis_support


@pytest.fixture(autouse=True)
def _no_ambient_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """A WHATSAPP_* (or dynaconf) variable in the developer's shell must not change any test."""
    for name in list(os.environ):
        if name.startswith("WHATSAPP_") or name.endswith("_FOR_DYNACONF"):
            monkeypatch.delenv(name)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """Once every fixture of a test is torn down (its apps closed, their final cleanup written),
    delete the Redis keys under the prefixes the test used."""
    yield
    redis_support.delete_pending()


@pytest.fixture(scope="session", autouse=True)
def _no_redis_test_keys_left() -> Iterator[None]:
    """The run leaves no key in Redis under any prefix it handed out."""
    yield
    redis_support.delete_pending()  # the last test's: its teardown is still running
    left = redis_support.leftover_keys()
    if left:
        pytest.fail(f"{len(left)} Redis test key(s) left behind, e.g. {sorted(left)[:5]}")
