"""How a send or a receipt becomes the arguments of a Redis store script.

Periods and session ids are computed here, in the configured time zone (the scripts never do
calendar arithmetic); floats travel as ``repr()`` strings; recipients travel as the events show
them (a keyed hash when redacted), so Redis never holds a phone number unless redaction is off.
Message ids too: with ``redact_recipients``, the number of a WhatsApp jid inside an id
(``true_16505551234@c.us_3EB0…``) is replaced by the same keyed hash before the id names a key
or fills a sorted set (:meth:`ScriptArgs.stored_id`).
"""

from __future__ import annotations

import re
from typing import Any

from plugin.core.model import Receipt
from plugin.core.options import ManagerOptions
from plugin.core.periods import Period, PeriodCalendar, completion_time
from plugin.core.records import (
    MAX_ERROR_CODE_LENGTH,
    OFFSET_MASK,
    RecipientCodec,
    normalize_tag,
    valid_message_id,
)

__all__ = ["ScriptArgs", "valid_id"]

#: The number of a WhatsApp jid inside an id (``true_16505551234@c.us_3EB0…``, a participant
#: ``16505551234:12@s.whatsapp.net``): a run of digits right before ``@`` or ``:device@``.
_JID_NUMBER = re.compile(r"\d{5,}(?=(?::\d+)?@)")

#: An id every store accepts (the core's rule).
valid_id = valid_message_id


class ScriptArgs:
    """Builds script arguments for one store's options; ``key`` is the redaction key."""

    def __init__(self, options: ManagerOptions, key: bytes) -> None:
        self.options = options
        self._codec = RecipientCodec(key or b"\0", options.redact_recipients)
        self.calendar = PeriodCalendar(options.session_period, options.timezone)
        self._window = options.ack_tracking_window
        self._period: Period | None = None

    # -- recipients -----------------------------------------------------------------------------

    @property
    def key(self) -> bytes:
        """The redaction key (empty until the store has one)."""
        return b"" if self._codec.key == b"\0" else self._codec.key

    @key.setter
    def key(self, value: bytes) -> None:
        self._codec = RecipientCodec(value or b"\0", self.options.redact_recipients)

    def redact(self, recipient: str | None) -> str | None:
        return self._codec.redact(recipient)

    def recipient_field(self, recipient: str | None) -> str:
        """The recipient as events show it (what the manager decodes from its packed record)."""
        return self._codec.event_text(recipient) or ""

    def stored_id(self, message_id: str) -> str:
        """The id as Redis keeps it: with redaction, a jid's number becomes its keyed hash (the
        same for every replica sharing the key, so lookups still match)."""
        if not self.options.redact_recipients or "@" not in message_id:
            return message_id
        hashed = self._codec.keyed_hash
        return _JID_NUMBER.sub(lambda m: f"~{hashed(m.group()):010x}", message_id)

    # -- arguments ------------------------------------------------------------------------------

    def _period_of(self, moment: float) -> Period:
        period = self._period
        if period is None or not period.start <= moment < period.end:
            period = self._period = self.calendar.period_of(moment)
        return period

    def header(self, now: float, budget: int) -> list[Any]:
        """ARGV[1..4] of every script: now, window, cap, how many records it may release."""
        return [repr(now), repr(self._window), self.options.max_tracked_messages, budget]

    def place(self, moment: float) -> list[Any]:
        """The session of ``moment``: id, start, end, completion time, offset, sent_at."""
        period = self._period_of(moment)
        offset = min(int(moment - period.start), OFFSET_MASK)
        complete_at = completion_time(period, self._window, self.options.max_session_age)
        return [
            period.session_id,
            repr(period.start),
            repr(period.end),
            repr(complete_at),
            offset,
            repr(period.start + offset),
        ]

    def track(
        self,
        message_id: str,
        recipient: str | None,
        moment: float,
        now: float,
        budget: int,
        tag: str | None = None,
    ) -> list[Any]:
        return [
            *self.header(now, budget),
            self.stored_id(message_id),
            *self.place(moment),
            self.recipient_field(recipient),
            normalize_tag(tag) or "",
            self.options.max_tags_per_session,
        ]

    def receipts_header(self, now: float, budget: int, count: int) -> list[Any]:
        """ARGV[1..6] of a RECEIPT batch of ``count`` receipts."""
        return [*self.header(now, budget), 1 if self.options.track_unknown_receipts else 0, count]

    def receipt(self, receipt: Receipt, now: float) -> str:
        """The argument of one receipt in a batch: its RECEIPT_FIELDS fields joined by the unit
        separator (0x1F), which no field holds (ids, recipient fields and codes are printable;
        the separator is removed from free-form ones)."""
        ts = receipt.timestamp
        effective = now if ts is None else min(float(ts), now)
        message_id = receipt.message_id
        code = receipt.error.code if receipt.error is not None and receipt.error.code else ""
        fields = [
            self.stored_id(message_id) if valid_id(message_id) else "",
            int(receipt.status),
            "" if ts is None else repr(float(ts)),
            repr(effective),
            *self.place(effective),
            self.recipient_field(receipt.recipient).replace("\x1f", ""),
            str(code)[:MAX_ERROR_CODE_LENGTH].replace("\x1f", ""),
        ]
        return "\x1f".join(map(str, fields))
