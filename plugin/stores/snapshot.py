"""Durable in-memory store: the manager's state in a file, written atomically and restored at
start.

Written on graceful shutdown and every ``snapshot_interval``; a crash loses at most what happened
since the last snapshot. A file that cannot be restored (corrupt, or from an unknown or newer
version) is moved aside with a clear log line, and the server starts empty instead of
crash-looping.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from plugin.core.manager import MessageSessionManager
from plugin.core.state import StateError, export_state, restore

__all__ = ["load_snapshot", "save_snapshot", "save_snapshot_async", "write_atomically"]

log = logging.getLogger("plugin.stores.snapshot")


def write_atomically(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` so that a crash leaves either the old file or the new one:
    a temporary file beside it, fsync, rename, fsync of the directory."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    with open(temporary, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, target)
    directory = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _write_state(state: dict[str, Any], path: str | os.PathLike[str]) -> int:
    data = json.dumps(state, separators=(",", ":")).encode()
    write_atomically(path, data)
    log.info("state saved to %s (%d bytes)", path, len(data))
    return len(data)


def save_snapshot(
    manager: MessageSessionManager,
    path: str | os.PathLike[str],
    extra: dict[str, Any] | None = None,
) -> int:
    """Write the manager's state (and ``extra``) to ``path``; return the size in bytes."""
    return _write_state(export_state(manager, extra), path)


async def save_snapshot_async(
    manager: MessageSessionManager,
    path: str | os.PathLike[str],
    extra: dict[str, Any] | None = None,
) -> int:
    """The same from a running server: the state is taken in the loop (a consistent view), the
    encoding and the disk writes happen in a thread."""
    return await asyncio.to_thread(_write_state, export_state(manager, extra), path)


def _set_aside(path: Path, why: str) -> Path:
    aside = path.with_name(f"{path.name}.unusable-{time.strftime('%Y%m%dT%H%M%S')}")
    os.replace(path, aside)
    log.error("state file %s %s: moved to %s; starting with empty state", path, why, aside)
    return aside


def load_snapshot(
    path: str | os.PathLike[str], **manager_kwargs: Any
) -> tuple[MessageSessionManager, dict[str, Any]]:
    """A manager restored from ``path`` and the ``extra`` saved with it, or a new empty manager
    and ``{}`` when there is no usable file."""
    target = Path(path)
    try:
        raw = target.read_bytes()
    except FileNotFoundError:
        log.info("no state file at %s: starting with empty state", target)
        return MessageSessionManager(**manager_kwargs), {}
    try:
        state = json.loads(raw)
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        _set_aside(target, f"is not valid JSON ({exc})")
        return MessageSessionManager(**manager_kwargs), {}
    try:
        manager = restore(state, **manager_kwargs)
    except StateError as exc:
        _set_aside(target, f"cannot be restored ({exc})")
        return MessageSessionManager(**manager_kwargs), {}
    log.info(
        "state restored from %s (%d messages, %d sessions)",
        target, manager.tracked_messages, len(manager.sessions),
    )
    extra = state.get("extra")
    return manager, extra if isinstance(extra, dict) else {}
