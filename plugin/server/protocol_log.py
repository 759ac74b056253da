"""aiohttp logs a malformed HTTP request (a header byte no RFC allows, a broken request line)
with a full traceback at ERROR, although it is only a client's mistake, already answered 400.
This filter turns such a record into one WARNING line without the traceback; every other
record of ``aiohttp.server`` passes unchanged."""

from __future__ import annotations

import logging

from aiohttp.http_exceptions import HttpProcessingError

__all__ = ["ProtocolErrorFilter", "quiet_protocol_errors"]

LOGGER = "aiohttp.server"


class ProtocolErrorFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        info = record.exc_info
        if info and isinstance(info[1], HttpProcessingError):
            error = info[1]
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.msg = "malformed HTTP request refused (HTTP %s): %s"
            record.args = (error.code, str(error.message).splitlines()[0][:200])
            record.exc_info, record.exc_text = None, None
        return True


def quiet_protocol_errors() -> None:
    """Install the filter on aiohttp's server logger (once per process)."""
    logger = logging.getLogger(LOGGER)
    if not any(isinstance(f, ProtocolErrorFilter) for f in logger.filters):
        logger.addFilter(ProtocolErrorFilter())
