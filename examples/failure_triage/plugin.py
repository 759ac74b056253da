"""Failure triage: on every failed message, decide what the clinic does next, from the failure's
kind (DESIGN.md, "Delivery insights"), and log the decision.

* ``recipient`` (the number cannot receive WhatsApp): call the patient;
* ``window`` (outside the 24-hour customer-service window): send an approved template;
* ``limit`` or ``provider`` (a limit, or a transient provider error): retry later;
* ``account`` or ``template`` (the business account or the template needs fixing): alert ops;
* ``unknown``: alert ops as well, with the code and title, so someone looks.

Enable it in settings (``plugins = ["examples.failure_triage.plugin"]``) or through an entry
point of the ``wa_sessions`` group. A real deployment would put each decision on a work queue
(a call list for the front desk, a template send, a delayed retry, a page to ops); this example
logs one line per decision and keeps the last ones in :data:`DECISIONS` for the front desk's
screen. The recipient is the manager's keyed hash when recipients are redacted: look the
patient up by message id, never log the number.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass

from plugin import hookimpl
from plugin.core.model import Status, StatusChange

__all__ = ["ACTIONS", "DECISIONS", "Decision", "decide", "whatsapp_status_changed"]

log = logging.getLogger("examples.failure_triage")

#: What to do for each failure kind.
ACTIONS: dict[str, str] = {
    "recipient": "call_patient",
    "window": "send_template",
    "limit": "retry_later",
    "provider": "retry_later",
    "account": "alert_ops",
    "template": "alert_ops",
    "unknown": "alert_ops",
}

#: Seconds to wait before a retry, by kind (limits need longer than a provider hiccup).
RETRY_AFTER: dict[str, int] = {"limit": 15 * 60, "provider": 60}


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do about one failed message."""

    message_id: str
    session_id: str
    kind: str
    action: str
    code: str | None
    retry_after: int | None = None


#: The latest decisions (bounded), newest last.
DECISIONS: deque[Decision] = deque(maxlen=1000)


def decide(change: StatusChange) -> Decision | None:
    """The decision for a status change; None unless the message failed."""
    if change.new_status is not Status.FAILED:
        return None
    error = change.error
    kind = error.kind if error is not None else "unknown"
    return Decision(
        message_id=change.message_id,
        session_id=change.session_id,
        kind=kind,
        action=ACTIONS.get(kind, "alert_ops"),
        code=error.code if error is not None else None,
        retry_after=RETRY_AFTER.get(kind),
    )


@hookimpl
def whatsapp_status_changed(change: StatusChange) -> None:
    decision = decide(change)
    if decision is None:
        return
    DECISIONS.append(decision)
    title = change.error.title if change.error is not None else None
    level = logging.ERROR if decision.action == "alert_ops" else logging.WARNING
    log.log(
        level,
        "message %s failed (%s, code %s, %r): %s%s",
        decision.message_id,
        decision.kind,
        decision.code,
        title,
        decision.action,
        f" in {decision.retry_after}s" if decision.retry_after else "",
    )
