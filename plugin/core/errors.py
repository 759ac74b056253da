"""Error types of the plugin. Each is raised where its cause is known and turned into an exit
status or an HTTP answer in exactly one place (the CLI, the server)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ServeError", "SettingProblem", "SettingsError", "StoreUnavailable"]


@dataclass(slots=True, frozen=True)
class SettingProblem:
    """One invalid setting: which key, what value, what would have been accepted."""

    key: str
    value: object
    accepted: str

    def __str__(self) -> str:
        return f"{self.key}={self.value!r}: expected {self.accepted}"


class SettingsError(ValueError):
    """Invalid configuration; carries every problem found, not just the first."""

    def __init__(self, problems: list[SettingProblem]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{len(self.problems)} invalid setting(s):\n{lines}")


class StoreUnavailable(RuntimeError):
    """The shared store (Redis) cannot be reached or refused the work (out of memory, a
    read-only replica, busy): at start-up a clear error, while serving an answer the provider
    retries (503 with ``Retry-After: retry_after`` seconds)."""

    def __init__(self, message: str, *, retry_after: int = 5) -> None:
        super().__init__(message)
        self.retry_after = max(1, int(retry_after))


class ServeError(RuntimeError):
    """The server cannot start where it was told to (a port in use, an address it cannot bind):
    one line for the operator, exit status 1."""
