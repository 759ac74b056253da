"""An audit-log plugin for whatsapp-session-plugin: one JSON line per completed session, cleanup,
expired message (a reminder that never arrived) and failed send.

Enable it either in settings (``plugins = ["examples.audit_log.plugin"]``) or through an entry
point of the ``wa_sessions`` group in your own package::

    [project.entry-points.wa_sessions]
    audit = "examples.audit_log.plugin"

The file is ``$WA_AUDIT_LOG``, else ``audit.jsonl`` in the working directory. Lines are short and
appended synchronously: fine for an audit trail; a plugin doing slow I/O should hand it to a
thread or queue instead. Recipients appear only as the manager's keyed hash (or, for failed
sends, masked to their last four digits).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from plugin import hookimpl
from plugin.core.model import CleanupReport, MessageExpired, SessionSummary
from plugin.hooks.pipeline import OutboundMessage

AUDIT_LOG_VARIABLE = "WA_AUDIT_LOG"
DEFAULT_PATH = "audit.jsonl"


def audit_path() -> Path:
    """Where the lines go (read at every write, so the variable may change at run time)."""
    return Path(os.environ.get(AUDIT_LOG_VARIABLE) or DEFAULT_PATH)


def write(event: str, **fields: Any) -> None:
    line = json.dumps({"event": event, "logged_at": time.time(), **fields}, default=str)
    with audit_path().open("a", encoding="utf-8") as handle:
        handle.write(line + "\n")


def _masked(number: str) -> str:
    digits = "".join(ch for ch in number if ch.isdigit())
    return f"***{digits[-4:]}" if len(digits) > 4 else "***"


@hookimpl
def whatsapp_session_completed(summary: SessionSummary) -> None:
    write("session_completed", **summary.as_dict())


@hookimpl
def whatsapp_cleanup_completed(report: CleanupReport) -> None:
    write("cleanup", **report.as_dict())


@hookimpl
def whatsapp_message_expired(expired: MessageExpired) -> None:
    write(
        "message_expired",
        message_id=expired.message_id,
        session_id=expired.session_id,
        last_status=expired.status.label,
        recipient=expired.recipient,  # already the manager's keyed hash when redacting
        sent_at=expired.sent_at,
        reason=expired.reason,
    )


@hookimpl
def whatsapp_send_failed(message: OutboundMessage, error: Exception) -> None:
    write(
        "send_failed",
        to=_masked(message.to),
        provider=message.provider,
        type=message.payload.get("type"),
        error=str(error),
        code=getattr(error, "code", None),
        http_status=getattr(error, "http_status", None),
    )
