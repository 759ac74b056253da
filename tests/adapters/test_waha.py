"""WAHA adapter: message.ack, message.ack.group and message events."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters import waha
from adapters.base import MalformedBody, SignatureInvalid, SignatureMissing
from plugin.core.model import Receipt, ReceiptError, Status
from tests.providers import (
    sign_waha,
    waha_ack_body,
    waha_event,
    waha_headers,
    waha_message_body,
    webhook_request,
)

KEY = "waha-hmac-key"
MESSAGE_ID = "true_16505551234@c.us_3EB0C767D71D4A0B6E8D"
MESSAGE_KEY = "3EB0C767D71D4A0B6E8D"  # what a serialized id is tracked as (DESIGN.md)


# --- Signature ----------------------------------------------------------------------------------


def test_signed_request_verifies() -> None:
    body = waha_ack_body(MESSAGE_ID, 3)
    result = waha.handle(webhook_request(body, waha_headers(body, KEY)), KEY)
    assert [r.status for r in result.receipts] == [Status.READ]


def test_signature_is_hex_hmac_sha512() -> None:
    body = b'{"event":"session.status"}'
    expected = hmac.new(b"k", body, hashlib.sha512).hexdigest()
    assert sign_waha(body, "k") == expected
    waha.verify_signature(body, expected, "k", "sha512")
    waha.verify_signature(body, expected.upper(), "k", None)


def test_missing_signature_is_401() -> None:
    with pytest.raises(SignatureMissing):
        waha.handle(webhook_request(waha_ack_body()), KEY)


def test_one_byte_change_is_invalid() -> None:
    body = waha_ack_body(MESSAGE_ID, 2)
    headers = waha_headers(body, KEY)
    with pytest.raises(SignatureInvalid):
        waha.handle(webhook_request(body.replace(b'"ack": 2', b'"ack": 3'), headers), KEY)


def test_wrong_key_is_invalid() -> None:
    body = waha_ack_body()
    with pytest.raises(SignatureInvalid):
        waha.handle(webhook_request(body, waha_headers(body, "other")), KEY)


def test_other_algorithm_is_refused() -> None:
    body = waha_ack_body()
    headers = {**waha_headers(body, KEY), "X-Webhook-Hmac-Algorithm": "md5"}
    with pytest.raises(SignatureInvalid):
        waha.handle(webhook_request(body, headers), KEY)


def test_no_secret_means_no_verification() -> None:
    assert len(waha.handle(webhook_request(waha_ack_body()), None).receipts) == 1


# --- Acks ---------------------------------------------------------------------------------------


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
@pytest.mark.parametrize("event", ["message.ack", "message.ack.group"])
def test_ack_mapping(event: str, ack: int, status: Status) -> None:
    result = waha.parse(waha_ack_body(MESSAGE_ID, ack, event=event))
    assert [r.status for r in result.receipts] == [status]
    assert (result.rejected, result.ignored) == (0, 0)


def test_ack_receipt_fields_and_millisecond_timestamp() -> None:
    result = waha.parse(waha_ack_body(MESSAGE_ID, 2, timestamp_ms=1750030073123))
    assert result.receipts == [
        Receipt(MESSAGE_KEY, Status.DELIVERED, pytest.approx(1750030073.123), "16505551234", "waha")
    ]


def test_failed_ack_carries_an_error() -> None:
    [receipt] = waha.parse(waha_ack_body(MESSAGE_ID, -1)).receipts
    assert receipt.error == ReceiptError(None, "ERROR", None)


def test_missing_timestamp_is_none() -> None:
    [receipt] = waha.parse(waha_ack_body(MESSAGE_ID, 1, timestamp_ms=None)).receipts
    assert receipt.timestamp is None


def test_recipient_prefers_to_then_the_chat_in_the_id() -> None:
    with_to = waha_ack_body(MESSAGE_ID, 3, to="447700900123@s.whatsapp.net")
    assert waha.parse(with_to).receipts[0].recipient == "447700900123"
    from_id = waha_ack_body("true_447700900123@c.us_ABCDEF", 3, **{"from": None})
    assert waha.parse(from_id).receipts[0].recipient == "447700900123"


def test_group_ack_keeps_the_group_id() -> None:
    group_message = "true_120363025246125486@g.us_3EB0ABCDEF_16505551234@c.us"
    body = waha_ack_body(
        group_message,
        3,
        event="message.ack.group",
        participant="16505550000@c.us",
        **{"from": "120363025246125486@g.us"},
    )
    [receipt] = waha.parse(body).receipts
    assert receipt.recipient == "120363025246125486@g.us"
    assert receipt.message_id == "3EB0ABCDEF"  # the key: no chat, no participant number


def test_ack_name_is_used_when_the_number_is_absent() -> None:
    payload = {"id": MESSAGE_ID, "fromMe": True, "ackName": "PLAYED"}
    [receipt] = waha.parse(waha_event("message.ack", payload)).receipts
    assert receipt.status is Status.PLAYED


def test_unknown_ack_number_or_name_is_ignored() -> None:
    assert waha.parse(waha_ack_body(MESSAGE_ID, 7)).ignored == 1
    payload = {"id": MESSAGE_ID, "ackName": "SOMETHING_NEW"}
    assert waha.parse(waha_event("message.ack", payload)).ignored == 1


@pytest.mark.parametrize(
    "payload",
    [
        None,
        [],
        {"ack": 3},
        {"id": "", "ack": 3},
        {"id": "x" * 129, "ack": 3},
        {"id": MESSAGE_ID, "ack": "3"},
        {"id": MESSAGE_ID, "ack": True},
        {"id": MESSAGE_ID},
    ],
)
def test_malformed_ack_is_rejected_not_fatal(payload: Any) -> None:
    result = waha.parse(waha_event("message.ack", payload))
    assert (result.receipts, result.rejected) == ([], 1)


def test_malformed_timestamp_is_rejected() -> None:
    body = json.dumps(
        {"event": "message.ack", "timestamp": "soon", "payload": {"id": "a", "ack": 1}}
    )
    assert waha.parse(body.encode()).rejected == 1


# --- Other events -------------------------------------------------------------------------------


def test_incoming_message_becomes_inbound() -> None:
    result = waha.parse(waha_message_body("false_16505551234@c.us_AAAA", body="See you at 10"))
    [message] = result.inbound
    assert (message.message_id, message.sender, message.text, message.type) == (
        "false_16505551234@c.us_AAAA",
        "16505551234",
        "See you at 10",
        "text",
    )
    assert message.timestamp == 1750030073.0
    assert message.provider == "waha"
    assert message.raw["fromMe"] is False


def test_own_messages_are_ignored() -> None:
    result = waha.parse(waha_message_body(from_me=True))
    assert (result.inbound, result.ignored) == ([], 1)


@pytest.mark.parametrize(
    "event", ["session.status", "message.any", "message.reaction", "call.received"]
)
def test_other_events_are_ignored(event: str) -> None:
    result = waha.parse(waha_event(event, {"status": "WORKING"}))
    assert (result.receipts, result.inbound, result.ignored, result.rejected) == ([], [], 1, 0)


@pytest.mark.parametrize(
    "body", [b"", b"nope", b"[]", b"{}", b'{"event": 5}', b'{"payload": {"ack": 3}}']
)
def test_unreadable_body_or_wrong_envelope_is_malformed(body: bytes) -> None:
    with pytest.raises(MalformedBody):
        waha.parse(body)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["message.ack", "message.ack.group", "message", "other"]),
    json_values,
    json_values,
)
def test_any_event_counts_exactly_one_outcome(event: str, payload: Any, stamp: Any) -> None:
    body = json.dumps({"event": event, "timestamp": stamp, "payload": payload}).encode()
    with contextlib.suppress(MalformedBody):
        result = waha.parse(body)
        outcomes = len(result.receipts) + len(result.inbound) + result.rejected + result.ignored
        assert outcomes == 1
