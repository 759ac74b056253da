"""Durable in-memory store: the manager's state in a file, written atomically and restored at
start.

Written on graceful shutdown and every ``snapshot_interval``; a crash loses at most what happened
since the last snapshot. In a running server a snapshot never stalls the event loop for long: the
state is copied on the loop (a few milliseconds for 150,000 records), encoded in slices of at
most :data:`~plugin.core.state.SLICE_SIZE` records with the loop free between them and paced
(the snapshot takes at most half the loop's time), and written (and fsynced) in a thread. A file
that cannot be restored (corrupt, out-of-range values, an unknown or newer version) is moved
aside with a clear log line, and the server starts empty instead of crash-looping; one that
cannot be read (permissions) is logged, and moved aside when possible."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from plugin.core.manager import MessageSessionManager
from plugin.core.restore import restore
from plugin.core.state import StateError, copy_state, encode_state

__all__ = [
    "PAUSE_AFTER",
    "load_snapshot",
    "save_snapshot",
    "save_snapshot_async",
    "write_atomically",
]

log = logging.getLogger("plugin.stores.snapshot")

#: Seconds of encoding on the loop after which an async snapshot pauses as long.
PAUSE_AFTER = 0.001


def write_atomically(path: str | os.PathLike[str], data: bytes | Iterable[bytes]) -> int:
    """Write ``data`` (bytes, or pieces of it) to ``path`` so that a crash leaves either the
    old file or the new one: a temporary file beside it, fsync, rename, fsync of the directory.
    Returns the size written."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    size = 0
    try:
        with open(temporary, "wb") as handle:
            for piece in [data] if isinstance(data, bytes) else data:
                size += handle.write(piece)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    directory = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return size


def _write(pieces: list[bytes], path: str | os.PathLike[str]) -> int:
    size = write_atomically(path, pieces)
    log.info("state saved to %s (%d bytes)", path, size)
    return size


def save_snapshot(
    manager: MessageSessionManager,
    path: str | os.PathLike[str],
    extra: dict[str, Any] | None = None,
) -> int:
    """Write the manager's state (and ``extra``) to ``path``; return the size in bytes."""
    return _write(list(encode_state(copy_state(manager, extra))), path)


async def save_snapshot_async(
    manager: MessageSessionManager,
    path: str | os.PathLike[str],
    extra: dict[str, Any] | None = None,
) -> int:
    """The same from a running server: the state is copied on the loop (a consistent view),
    encoded in slices with the loop free between them, written in a thread.

    The encoding is paced: once the slices since the last pause took :data:`PAUSE_AFTER`
    seconds of the loop, the next pause lasts as long, so a snapshot takes at most half the
    loop's time. A process that runs long bursts of CPU is the one a busy machine's scheduler
    preempts, and its requests wait meanwhile (measured: docs/benchmarks.md)."""
    pieces = []
    busy, began = 0.0, time.perf_counter()
    for piece in encode_state(copy_state(manager, extra)):
        pieces.append(piece)
        now = time.perf_counter()
        busy += now - began
        if busy >= PAUSE_AFTER:
            await asyncio.sleep(busy)
            busy = 0.0
        else:
            await asyncio.sleep(0)
        began = time.perf_counter()
    return await asyncio.to_thread(_write, pieces, path)


def _set_aside(path: Path, why: str) -> Path | None:
    aside = path.with_name(f"{path.name}.unusable-{time.strftime('%Y%m%dT%H%M%S')}")
    try:
        os.replace(path, aside)
    except OSError as exc:
        log.error(
            "state file %s %s, and it cannot be moved aside (%s): starting with empty "
            "state; snapshots will replace it",
            path,
            why,
            exc,
        )
        return None
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
    except OSError as exc:  # PermissionError, a directory, an I/O error
        if target.is_file():
            _set_aside(target, f"cannot be read ({exc})")
        else:
            log.error("state file %s cannot be read (%s): starting with empty state", target, exc)
        return MessageSessionManager(**manager_kwargs), {}
    try:
        state = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # ValueError: JSON and UTF-8 errors
        _set_aside(target, f"is not valid JSON ({exc})")
        return MessageSessionManager(**manager_kwargs), {}
    try:
        manager = restore(state, **manager_kwargs)
    except (StateError, RecursionError) as exc:
        _set_aside(target, f"cannot be restored ({exc})")
        return MessageSessionManager(**manager_kwargs), {}
    log.info(
        "state restored from %s (%d messages, %d sessions)",
        target,
        manager.tracked_messages,
        len(manager.sessions),
    )
    extra = state.get("extra")
    return manager, extra if isinstance(extra, dict) else {}
