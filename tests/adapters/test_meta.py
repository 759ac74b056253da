"""Meta Cloud API adapter (also 360dialog and Gupshup v3 payloads)."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters import meta
from adapters.base import MalformedBody, SignatureInvalid, SignatureMissing
from plugin.core.model import Receipt, ReceiptError, Status
from tests.providers import (
    META_VECTOR_BODY,
    META_VECTOR_SECRET,
    META_VECTOR_SIGNATURE,
    meta_body,
    meta_change,
    meta_failed_status,
    meta_inbound,
    meta_status,
    meta_status_body,
    meta_statuses,
    sign_meta,
    webhook_request,
)

SECRET = "app-secret"


# --- Signature ----------------------------------------------------------------------------------


def test_public_vector_verifies() -> None:
    meta.verify_signature(META_VECTOR_BODY, META_VECTOR_SIGNATURE, META_VECTOR_SECRET)


def test_public_vector_through_handle_yields_the_inbound_message() -> None:
    request = webhook_request(META_VECTOR_BODY, {"X-Hub-Signature-256": META_VECTOR_SIGNATURE})
    result = meta.handle(request, META_VECTOR_SECRET)
    [message] = result.inbound
    assert message.message_id.startswith("wamid.HBgMOTcy")
    assert message.sender == "972544401243"
    assert message.text == "Hey there! I am using PyWa."
    assert message.type == "text"
    assert message.timestamp == 1730231903.0
    assert message.provider == "meta"
    assert message.raw["from"] == "972544401243"
    assert result.receipts == []


def test_header_name_is_case_insensitive() -> None:
    request = webhook_request(META_VECTOR_BODY, {"x-hub-signature-256": META_VECTOR_SIGNATURE})
    assert len(meta.handle(request, META_VECTOR_SECRET).inbound) == 1


def test_one_byte_change_is_invalid() -> None:
    tampered = META_VECTOR_BODY.replace(b"PyWa.", b"PyWa!")
    assert len(tampered) == len(META_VECTOR_BODY)
    with pytest.raises(SignatureInvalid) as caught:
        meta.verify_signature(tampered, META_VECTOR_SIGNATURE, META_VECTOR_SECRET)
    assert caught.value.http_status == 403


def test_wrong_secret_is_invalid() -> None:
    with pytest.raises(SignatureInvalid):
        meta.verify_signature(META_VECTOR_BODY, META_VECTOR_SIGNATURE, "another-secret")


@pytest.mark.parametrize("header", ["", "54edfa1d", "sha1=54edfa1d", "sha256=zz"])
def test_malformed_signature_is_invalid_or_missing(header: str) -> None:
    with pytest.raises((SignatureInvalid, SignatureMissing)):
        meta.verify_signature(META_VECTOR_BODY, header, META_VECTOR_SECRET)


def test_missing_signature_is_401() -> None:
    with pytest.raises(SignatureMissing) as caught:
        meta.handle(webhook_request(META_VECTOR_BODY), META_VECTOR_SECRET)
    assert caught.value.http_status == 401


def test_signature_over_raw_bytes_not_reserialized_json() -> None:
    # Meta escapes unicode; the same document re-serialized differently must not verify.
    raw = b'{"object":"whatsapp_business_account","entry":[],"note":"caf\\u00e9"}'
    signature = sign_meta(raw, SECRET)
    meta.verify_signature(raw, signature, SECRET)
    reserialized = json.dumps(json.loads(raw), ensure_ascii=False).encode()
    with pytest.raises(SignatureInvalid):
        meta.verify_signature(reserialized, signature, SECRET)


def test_no_secret_means_no_verification() -> None:
    body = meta_status_body([meta_status("wamid.A", "read")])
    assert len(meta.handle(webhook_request(body), None).receipts) == 1


def test_wrong_signature_is_checked_before_parsing() -> None:
    with pytest.raises(SignatureInvalid):
        meta.handle(webhook_request(b"not json", {"X-Hub-Signature-256": "sha256=00"}), SECRET)


# --- 360dialog shared-secret header -----------------------------------------------------------


def test_shared_secret_header_ok_missing_and_wrong() -> None:
    body = meta_status_body([meta_status("wamid.A", "sent")])
    expected = ("D360-Webhook-Key", "s3cret")
    ok = webhook_request(body, {"d360-webhook-key": "s3cret"})
    assert len(meta.handle(ok, None, shared_secret_header=expected).receipts) == 1
    with pytest.raises(SignatureMissing):
        meta.handle(webhook_request(body), None, shared_secret_header=expected)
    with pytest.raises(SignatureInvalid):
        wrong = webhook_request(body, {"D360-Webhook-Key": "s3creT"})
        meta.handle(wrong, None, shared_secret_header=expected)


# --- Handshake ----------------------------------------------------------------------------------


def _handshake(mode: str = "subscribe", token: str = "verify-me") -> dict[str, str]:
    return {"hub.mode": mode, "hub.verify_token": token, "hub.challenge": "1158201444"}


def test_handshake_returns_the_challenge() -> None:
    assert meta.verify_handshake(_handshake(), "verify-me") == "1158201444"


def test_handshake_wrong_token_is_403() -> None:
    with pytest.raises(SignatureInvalid) as caught:
        meta.verify_handshake(_handshake(token="guess"), "verify-me")
    assert caught.value.http_status == 403


def test_handshake_wrong_mode_is_403() -> None:
    with pytest.raises(SignatureInvalid):
        meta.verify_handshake(_handshake(mode="unsubscribe"), "verify-me")


def test_handshake_without_configured_or_given_token_is_403() -> None:
    with pytest.raises(SignatureInvalid):
        meta.verify_handshake(_handshake(), None)
    query = _handshake()
    del query["hub.verify_token"]
    with pytest.raises(SignatureInvalid):
        meta.verify_handshake(query, "verify-me")


# --- Status mapping -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wire", "status"),
    [
        ("enqueued", Status.QUEUED),
        ("sent", Status.SENT),
        ("delivered", Status.DELIVERED),
        ("read", Status.READ),
        ("played", Status.PLAYED),
        ("failed", Status.FAILED),
    ],
)
def test_status_mapping(wire: str, status: Status) -> None:
    result = meta.parse(meta_status_body([meta_status("wamid.X1", wire)]))
    assert [r.status for r in result.receipts] == [status]
    assert (result.rejected, result.ignored) == (0, 0)


def test_receipt_fields() -> None:
    result = meta.parse(meta_status_body([meta_status("wamid.X1", "read")]))
    assert result.receipts == [
        Receipt("wamid.X1", Status.READ, 1750030073.0, "16505551234", "meta", None)
    ]


def test_unknown_status_is_ignored_not_fatal() -> None:
    statuses = [
        meta_status("wamid.A", "deleted"),
        meta_status("wamid.B", "warning"),
        meta_status("wamid.C", "read"),
    ]
    result = meta.parse(meta_status_body(statuses))
    assert [r.message_id for r in result.receipts] == ["wamid.C"]
    assert (result.ignored, result.rejected) == (2, 0)


# --- Batches ------------------------------------------------------------------------------------


def test_thousand_statuses_across_entries_are_all_parsed() -> None:
    statuses = meta_statuses(1000, "delivered")
    result = meta.parse(meta_status_body(statuses, entries=7))
    assert len(result.receipts) == 1000
    assert {r.message_id for r in result.receipts} == {s["id"] for s in statuses}
    assert (result.rejected, result.ignored) == (0, 0)


def test_many_changes_per_entry_and_inbound_in_the_same_value() -> None:
    body = meta_body(
        [
            meta_change(statuses=[meta_status("wamid.A", "sent"), meta_status("wamid.B", "read")]),
            meta_change(
                statuses=[meta_status("wamid.C", "delivered")], messages=[meta_inbound("wamid.IN1")]
            ),
        ],
        [meta_change(statuses=[meta_status("wamid.D", "played")])],
    )
    result = meta.parse(body)
    assert [(r.message_id, r.status) for r in result.receipts] == [
        ("wamid.A", Status.SENT),
        ("wamid.B", Status.READ),
        ("wamid.C", Status.DELIVERED),
        ("wamid.D", Status.PLAYED),
    ]
    assert [m.message_id for m in result.inbound] == ["wamid.IN1"]


def test_calls_field_with_its_own_statuses_is_ignored() -> None:
    calls = meta_change(
        statuses=[
            {
                "id": "wacid.ABC",
                "status": "RINGING",
                "timestamp": "1750030073",
                "type": "call",
                "recipient_id": "16505551234",
            }
        ],
        field="calls",
    )
    body = meta_body([calls, meta_change(statuses=[meta_status("wamid.A", "read")])])
    result = meta.parse(body)
    assert [r.message_id for r in result.receipts] == ["wamid.A"]
    assert result.ignored == 1
    assert result.rejected == 0


def test_other_fields_are_ignored() -> None:
    body = meta_body(
        [
            {
                "field": "message_template_status_update",
                "value": {"event": "APPROVED", "message_template_id": 1},
            }
        ]
    )
    result = meta.parse(body)
    assert (len(result.receipts), result.ignored, result.rejected) == (0, 1, 0)


# --- Malformed items among good ones ------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        "not an object",
        {"status": "read", "timestamp": "1750030073"},  # no id
        {"id": "", "status": "read"},
        {"id": 12345, "status": "read"},
        {"id": "x" * 129, "status": "read"},
        {"id": "wamid.é", "status": "read"},
        {"id": "wamid.B", "status": ["read"]},
        {"id": "wamid.B"},  # no status
        {"id": "wamid.B", "status": "read", "timestamp": "yesterday"},
        {"id": "wamid.B", "status": "read", "timestamp": -5},
        {"id": "wamid.B", "status": "read", "timestamp": True},
        {"id": "wamid.B", "status": "read", "recipient_id": {"wa_id": "1"}},
    ],
)
def test_malformed_status_is_rejected_and_the_good_ones_kept(bad: Any) -> None:
    statuses = [meta_status("wamid.A", "sent"), bad, meta_status("wamid.C", "read")]
    result = meta.parse(meta_status_body(statuses))
    assert [r.message_id for r in result.receipts] == ["wamid.A", "wamid.C"]
    assert result.rejected == 1
    assert len(result.problems) == 1
    assert result.ignored == 0


def test_message_id_of_128_ascii_characters_is_accepted() -> None:
    result = meta.parse(meta_status_body([meta_status("w" * 128, "read")]))
    assert len(result.receipts) == 1


def test_malformed_entries_and_changes_are_rejected_individually() -> None:
    document = {
        "object": "whatsapp_business_account",
        "entry": [
            "junk",
            {"id": "1"},  # no changes
            {
                "id": "2",
                "changes": [
                    "junk",
                    {"field": "messages", "value": []},
                    {"field": "messages", "value": {"statuses": {}}},
                ],
            },
            {"id": "3", "changes": [meta_change(statuses=[meta_status("wamid.OK", "read")])]},
        ],
    }
    result = meta.parse(json.dumps(document).encode())
    assert [r.message_id for r in result.receipts] == ["wamid.OK"]
    assert result.rejected == 5


def test_problems_are_a_bounded_sample_but_the_count_is_exact() -> None:
    result = meta.parse(meta_status_body([{"status": "read"}] * 500))
    assert result.rejected == 500
    assert len(result.problems) <= 20


# --- Failures -----------------------------------------------------------------------------------


def test_failed_without_contacts_or_recipient_id() -> None:
    change = meta_change(statuses=[meta_failed_status("wamid.F")], with_contacts=False)
    result = meta.parse(meta_body([change]))
    [receipt] = result.receipts
    assert receipt.status is Status.FAILED
    assert receipt.recipient is None
    assert receipt.error == ReceiptError(
        "131049",
        "This message was not delivered to maintain healthy ecosystem engagement.",
        "In order to maintain a healthy ecosystem engagement, the message failed.",
    )


def test_error_message_is_the_details_when_error_data_is_absent() -> None:
    status = meta_status(
        "wamid.F",
        "failed",
        errors=[
            {
                "code": 131026,
                "title": "Message undeliverable",
                "message": "Receiver is incapable of receiving this message",
            }
        ],
    )
    [receipt] = meta.parse(meta_status_body([status])).receipts
    assert receipt.error == ReceiptError(
        "131026", "Message undeliverable", "Receiver is incapable of receiving this message"
    )


def test_errors_at_value_level_are_used_for_failed_statuses() -> None:
    change = meta_change(
        statuses=[meta_status("wamid.F", "failed", recipient_id=None)],
        errors=[
            {
                "code": 130472,
                "title": "User's number is part of an experiment",
                "error_data": {"details": "Failed to send message because of an experiment"},
            }
        ],
    )
    [receipt] = meta.parse(meta_body([change])).receipts
    assert receipt.error == ReceiptError(
        "130472",
        "User's number is part of an experiment",
        "Failed to send message because of an experiment",
    )


def test_failed_without_any_error_detail_has_no_error() -> None:
    [receipt] = meta.parse(meta_status_body([meta_status("wamid.F", "failed")])).receipts
    assert receipt.status is Status.FAILED
    assert receipt.error is None


def test_non_failed_statuses_carry_no_error() -> None:
    change = meta_change(
        statuses=[meta_status("wamid.S", "sent")], errors=[{"code": 1, "title": "x"}]
    )
    [receipt] = meta.parse(meta_body([change])).receipts
    assert receipt.error is None


# --- Timestamps, recipients, optional fields ----------------------------------------------------


@pytest.mark.parametrize(
    ("stamp", "seconds"),
    [
        ("1750030073", 1750030073.0),
        (1750030073, 1750030073.0),
        (1750030073.5, 1750030073.5),
        (1710941393420, 1710941393.42),  # Gupshup: milliseconds
        ("1710941393420", 1710941393.42),
        (None, None),
    ],
)
def test_timestamps(stamp: Any, seconds: float | None) -> None:
    [receipt] = meta.parse(meta_status_body([meta_status("wamid.T", "read", stamp)])).receipts
    if seconds is None:
        assert receipt.timestamp is None
    else:
        assert receipt.timestamp == pytest.approx(seconds)


def test_gupshup_v3_payload() -> None:
    enqueued = meta_status(
        "wamid.HBgMOTE5MTYzODA1ODczFQIAERgSNkZCMThGMEEwQzJDOUFGQjFBAA==",
        "enqueued",
        timestamp=1710941393420,  # milliseconds, as a number
        recipient_id="919163805873",
        gs_id="2baff204-c39a-4121-90b5-f53f26d522b3",
    )
    failed = meta_status(
        "wamid.G2",
        "failed",
        recipient_id="919163805873",
        gs_id="2baff204",
        code="1002",
        reason="Number does not exist on WhatsApp",
    )
    control = {"type": "set-callback"}
    change = meta_change(statuses=[enqueued, failed, control], with_contacts=False)
    body = meta_body([change], gs_app_id="82ed52f4-30c0-4f12-81b4-e7ad07bd41de")
    result = meta.parse(body)
    queued, failed = result.receipts
    assert queued.status is Status.QUEUED
    assert queued.timestamp == pytest.approx(1710941393.42)
    assert queued.recipient == "919163805873"
    assert failed.error == ReceiptError("1002", "Number does not exist on WhatsApp", None)
    assert (result.ignored, result.rejected) == (1, 0)


def test_group_recipient_stays_as_given_and_plus_is_stripped() -> None:
    statuses = [
        meta_status(
            "wamid.G",
            "delivered",
            recipient_id="120363025246125486",
            recipient_type="group",
            recipient_participant_id="16505550000",
        ),
        meta_status("wamid.P", "delivered", recipient_id="+16505551234"),
    ]
    result = meta.parse(meta_status_body(statuses))
    assert [r.recipient for r in result.receipts] == ["120363025246125486", "16505551234"]


def test_optional_fields_do_not_matter() -> None:
    status = meta_status(
        "wamid.O",
        "sent",
        biz_opaque_callback_data="reminder-42",
        conversation={"id": "c1", "origin": {"type": "utility"}},
        pricing={"billable": True, "pricing_model": "PMP", "category": "utility"},
        unknown_future_field=[1, 2, 3],
    )
    assert len(meta.parse(meta_status_body([status])).receipts) == 1


def test_value_without_statuses_or_messages_is_ignored() -> None:
    change = meta_change(errors=[{"code": 131000, "title": "Something went wrong"}])
    result = meta.parse(meta_body([change]))
    assert (len(result.receipts), result.ignored, result.rejected) == (0, 1, 0)


def test_malformed_inbound_message_is_rejected() -> None:
    change = meta_change(messages=[{"id": "wamid.M1"}, meta_inbound("wamid.M2", text="hi")])
    result = meta.parse(meta_body([change]))
    assert [(m.message_id, m.text) for m in result.inbound] == [("wamid.M2", "hi")]
    assert result.rejected == 1


def test_inbound_message_without_text() -> None:
    image = {
        "from": "16505551234",
        "id": "wamid.IMG",
        "timestamp": "1750030073",
        "type": "image",
        "image": {"id": "media-1", "mime_type": "image/jpeg"},
    }
    [message] = meta.parse(meta_body([meta_change(messages=[image])])).inbound
    assert (message.type, message.text) == ("image", None)


# --- Whole-body errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b'{"object": ',
        b"\xff\xfe\x00",
        b"[]",
        b'"whatsapp"',
        b"{}",
        b'{"object":"whatsapp_business_account","entry":{}}',
        b'{"object":"page","entry":[]}',
        b"[" * 100_000 + b"]" * 100_000,
    ],
)
def test_unreadable_body_or_wrong_envelope_is_malformed(body: bytes) -> None:
    with pytest.raises(MalformedBody) as caught:
        meta.parse(body)
    assert caught.value.http_status == 400


def test_empty_entry_list_is_an_empty_result() -> None:
    result = meta.parse(b'{"object":"whatsapp_business_account","entry":[]}')
    assert (result.receipts, result.inbound, result.rejected, result.ignored) == ([], [], 0, 0)


# --- Properties ---------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
status_names = st.sampled_from(
    ["sent", "delivered", "read", "played", "failed", "enqueued", "deleted", "warning", ""]
)
plausible_statuses = st.fixed_dictionaries(
    {"id": st.text(max_size=140) | st.integers(), "status": status_names},
    optional={
        "timestamp": st.integers(min_value=-10, max_value=10**14)
        | st.text(max_size=14)
        | st.floats(),
        "recipient_id": st.text(max_size=20) | st.none() | st.integers(),
        "errors": json_values,
    },
)


@settings(max_examples=300, deadline=None)
@given(st.lists(plausible_statuses | json_values, max_size=30))
def test_every_status_item_is_counted_exactly_once(items: list[Any]) -> None:
    result = meta.parse(meta_status_body(items))
    assert len(result.receipts) + result.rejected + result.ignored == len(items)
    for receipt in result.receipts:
        assert isinstance(receipt.message_id, str)
        assert 0 < len(receipt.message_id) <= 128
        assert receipt.timestamp is None or 0 <= receipt.timestamp <= 1e11


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_arbitrary_json_never_raises_anything_but_malformed_body(document: Any) -> None:
    for body in (
        json.dumps(document).encode(),
        json.dumps({"object": "whatsapp_business_account", "entry": document}).encode(),
        json.dumps({"entry": [{"changes": [{"field": "messages", "value": document}]}]}).encode(),
    ):
        with contextlib.suppress(MalformedBody):
            meta.parse(body)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_raise_anything_but_malformed_body(body: bytes) -> None:
    with contextlib.suppress(MalformedBody):
        meta.parse(body)
