"""A bare HTTP/1.1 client over a socket: sends header bytes exactly as given (non-ASCII,
non-UTF-8, a ``Host`` no URL parser accepts) and bodies as slowly as a test wants."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

__all__ = ["RawResponse", "raw_request"]


class RawResponse:
    def __init__(self, status: int, headers: bytes, body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body


async def raw_request(
    host: str,
    port: int,
    path: bytes,
    headers: Sequence[tuple[bytes, bytes]],
    body: bytes = b"",
    *,
    method: bytes = b"POST",
    trickle: float | None = None,
    timeout: float = 10.0,
) -> RawResponse:
    """Send one request (``Host`` and ``Content-Length`` added unless given); with
    ``trickle``, the body goes one byte every ``trickle`` seconds until the server answers."""
    reader, writer = await asyncio.open_connection(host, port)
    names = {name.lower() for name, _ in headers}
    lines = [method + b" " + path + b" HTTP/1.1"]
    if b"host" not in names:
        lines.append(b"Host: " + f"{host}:{port}".encode())
    if b"content-length" not in names:
        lines.append(b"Content-Length: " + str(len(body)).encode())
    lines += [name + b": " + value for name, value in headers]
    lines.append(b"Connection: close")
    writer.write(b"\r\n".join(lines) + b"\r\n\r\n")
    try:
        if trickle is None:
            writer.write(body)
            await writer.drain()
            return await asyncio.wait_for(_read_response(reader), timeout)
        answer = asyncio.ensure_future(_read_response(reader))
        for index in range(len(body)):
            if answer.done():
                break
            writer.write(body[index : index + 1])
            await writer.drain()
            await asyncio.wait([answer], timeout=trickle)
        return await asyncio.wait_for(answer, timeout)
    finally:
        writer.close()
        with contextlib.suppress(OSError):  # the server may close first
            await writer.wait_closed()


async def _read_response(reader: asyncio.StreamReader) -> RawResponse:
    """Status, headers and a Content-Length body (the server may keep the socket open)."""
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, _, headers = head[:-4].partition(b"\r\n")
    length = 0
    for line in headers.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    body = await reader.readexactly(length)
    return RawResponse(int(status_line.split()[1]), headers, body)
