"""Bridge adapter: acks forwarded by a whatsapp-web.js or Baileys bot."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters import bridge
from adapters.base import MalformedBody, SignatureInvalid, SignatureMissing
from plugin.core.model import Receipt, ReceiptError, Status
from tests.providers import bridge_ack, bridge_body, sign_bridge, webhook_request

SECRET = "bridge-secret"
WWEB_ID = "true_16505551234@c.us_3EB0C767D71D4A0B6E8D"
BAILEYS_ID = "3EB0C767D71D4A0B6E8D"


def _signed(body: bytes, secret: str = SECRET) -> dict[str, str]:
    return {"X-Bridge-Signature": sign_bridge(body, secret), "Content-Type": "application/json"}


# --- Signature ----------------------------------------------------------------------------------


def test_signed_request_verifies() -> None:
    body = bridge_body([bridge_ack(WWEB_ID, 3)])
    result = bridge.handle(webhook_request(body, _signed(body)), SECRET)
    assert [r.status for r in result.receipts] == [Status.READ]


def test_builder_and_adapter_agree_on_the_signature() -> None:
    body = b'{"library":"baileys","id":"A","ack":4}'
    assert bridge.sign(body, SECRET) == sign_bridge(body, SECRET)
    assert sign_bridge(body, SECRET).startswith("sha256=")


def test_missing_signature_is_401() -> None:
    body = bridge_body([bridge_ack(WWEB_ID, 3)])
    with pytest.raises(SignatureMissing) as caught:
        bridge.handle(webhook_request(body), SECRET)
    assert caught.value.http_status == 401


def test_one_byte_change_is_invalid() -> None:
    body = bridge_body([bridge_ack(WWEB_ID, 2)])
    headers = _signed(body)
    with pytest.raises(SignatureInvalid) as caught:
        bridge.handle(webhook_request(body.replace(b'"ack": 2', b'"ack": 3'), headers), SECRET)
    assert caught.value.http_status == 403


def test_wrong_secret_is_invalid() -> None:
    body = bridge_body([bridge_ack(WWEB_ID, 2)])
    with pytest.raises(SignatureInvalid):
        bridge.handle(webhook_request(body, _signed(body, "other")), SECRET)


def test_no_secret_means_no_verification() -> None:
    body = bridge_body([bridge_ack(WWEB_ID, 1)])
    assert len(bridge.handle(webhook_request(body), None).receipts) == 1


# --- Numbering ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ack", "status"),
    [
        (-1, Status.FAILED),
        (0, Status.QUEUED),
        (1, Status.SENT),
        (2, Status.DELIVERED),
        (3, Status.READ),
        (4, Status.PLAYED),
    ],
)
def test_whatsapp_web_js_numbering(ack: int, status: Status) -> None:
    result = bridge.parse(bridge_body([bridge_ack(WWEB_ID, ack)], "whatsapp-web.js"))
    assert [r.status for r in result.receipts] == [status]


@pytest.mark.parametrize(
    ("ack", "status"),
    [
        (0, Status.FAILED),
        (1, Status.QUEUED),
        (2, Status.SENT),
        (3, Status.DELIVERED),
        (4, Status.READ),
        (5, Status.PLAYED),
    ],
)
def test_baileys_numbering(ack: int, status: Status) -> None:
    result = bridge.parse(bridge_body([bridge_ack(BAILEYS_ID, ack)], "baileys"))
    assert [r.status for r in result.receipts] == [status]


def test_unknown_numbers_are_ignored() -> None:
    acks = [bridge_ack(WWEB_ID, 5), bridge_ack(WWEB_ID, -2), bridge_ack(WWEB_ID, 3)]
    result = bridge.parse(bridge_body(acks, "whatsapp-web.js"))
    assert (len(result.receipts), result.ignored, result.rejected) == (1, 2, 0)
    assert bridge.parse(bridge_body([bridge_ack(BAILEYS_ID, -1)], "baileys")).ignored == 1


# --- Format -------------------------------------------------------------------------------------


def test_receipt_fields() -> None:
    ack = bridge_ack(WWEB_ID, 2, timestamp=1750030073, to="16505551234@c.us")
    assert bridge.parse(bridge_body([ack])).receipts == [
        Receipt(BAILEYS_ID, Status.DELIVERED, 1750030073.0, "16505551234", "bridge", None)
    ]


def test_millisecond_timestamp_and_baileys_jid() -> None:
    ack = bridge_ack(BAILEYS_ID, 4, timestamp=1750030073456, to="447700900123@s.whatsapp.net")
    [receipt] = bridge.parse(bridge_body([ack], "baileys")).receipts
    assert receipt.timestamp == pytest.approx(1750030073.456)
    assert receipt.recipient == "447700900123"


def test_optional_fields_absent() -> None:
    [receipt] = bridge.parse(bridge_body([bridge_ack(BAILEYS_ID, 3)], "baileys")).receipts
    assert (receipt.timestamp, receipt.recipient) == (None, None)


def test_failed_ack_carries_an_error() -> None:
    [receipt] = bridge.parse(bridge_body([bridge_ack(BAILEYS_ID, 0)], "baileys")).receipts
    assert receipt.error == ReceiptError(None, "ERROR", None)


def test_single_ack_at_the_top_level() -> None:
    body = json.dumps({"library": "baileys", "id": BAILEYS_ID, "ack": 5, "timestamp": 1}).encode()
    [receipt] = bridge.parse(body).receipts
    assert (receipt.message_id, receipt.status, receipt.timestamp) == (
        BAILEYS_ID,
        Status.PLAYED,
        1.0,
    )


def test_per_ack_library_overrides_the_top_level() -> None:
    acks = [bridge_ack(WWEB_ID, 3), bridge_ack(BAILEYS_ID, 3, library="baileys")]
    result = bridge.parse(bridge_body(acks, "whatsapp-web.js"))
    assert [r.status for r in result.receipts] == [Status.READ, Status.DELIVERED]


def test_ack_without_any_library_is_rejected() -> None:
    acks = [bridge_ack(WWEB_ID, 3), bridge_ack(BAILEYS_ID, 3, library="baileys")]
    result = bridge.parse(bridge_body(acks, library=None))
    assert [r.message_id for r in result.receipts] == [BAILEYS_ID]
    assert result.rejected == 1


def test_batch_of_many_acks() -> None:
    acks = [bridge_ack(f"true_1@c.us_{index:020d}", 1 + index % 4) for index in range(500)]
    result = bridge.parse(bridge_body(acks))
    assert len(result.receipts) == 500
    assert len({r.message_id for r in result.receipts}) == 500


@pytest.mark.parametrize(
    "bad",
    [
        "junk",
        {"ack": 3},
        {"id": "", "ack": 3},
        {"id": "x" * 129, "ack": 3},
        {"id": WWEB_ID, "ack": "3"},
        {"id": WWEB_ID, "ack": 3.0},
        {"id": WWEB_ID, "ack": 3, "timestamp": "noon"},
        {"id": WWEB_ID, "ack": 3, "to": 16505551234},
        {"id": WWEB_ID, "ack": 3, "library": "venom"},
    ],
)
def test_malformed_ack_among_good_ones(bad: Any) -> None:
    acks = [bridge_ack("A1", 1), bad, bridge_ack("A3", 2)]
    result = bridge.parse(bridge_body(acks))
    assert [r.message_id for r in result.receipts] == ["A1", "A3"]
    assert result.rejected == 1


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{",
        b"[]",
        b"{}",
        b'{"library": "whatsapp-web.js"}',
        b'{"library": "whatsapp-web.js", "acks": {}}',
        b'{"library": "venom", "acks": []}',
        b'{"library": ["baileys"], "acks": []}',
    ],
)
def test_unreadable_body_or_wrong_envelope_is_malformed(body: bytes) -> None:
    with pytest.raises(MalformedBody):
        bridge.parse(body)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
plausible_acks = st.fixed_dictionaries(
    {"id": st.text(max_size=130), "ack": st.integers(min_value=-3, max_value=7)},
    optional={"timestamp": json_values, "to": json_values, "library": json_values},
)


@settings(max_examples=300, deadline=None)
@given(st.lists(plausible_acks | json_values, max_size=20))
def test_every_ack_is_counted_exactly_once(acks: list[Any]) -> None:
    with contextlib.suppress(MalformedBody):
        result = bridge.parse(bridge_body(acks, "baileys"))
        assert len(result.receipts) + result.rejected + result.ignored == len(acks)
