"""Twilio status-callback adapter."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters import twilio
from adapters.base import MalformedBody, SignatureInvalid, SignatureMissing, WebhookRequest
from plugin.core.model import Receipt, ReceiptError, Status
from tests.providers import (
    TWILIO_VECTOR_PARAMS,
    TWILIO_VECTOR_SIGNATURE,
    TWILIO_VECTOR_TOKEN,
    TWILIO_VECTOR_URL,
    sign_twilio,
    twilio_body,
    twilio_form,
    webhook_request,
)

TOKEN = "0123456789abcdef0123456789abcdef"
PUBLIC_URL = "https://bot.example.com"
CALLBACK_URL = "https://bot.example.com/webhooks/twilio"


def _signed_request(
    form: dict[str, str],
    signed_url: str = CALLBACK_URL,
    received_url: str = CALLBACK_URL,
    token: str = TOKEN,
) -> WebhookRequest:
    signature = sign_twilio(signed_url, form, token)
    return webhook_request(twilio_body(form), {"X-Twilio-Signature": signature}, received_url)


# --- Signature ----------------------------------------------------------------------------------


def test_public_vector_verifies() -> None:
    params = list(TWILIO_VECTOR_PARAMS.items())
    twilio.verify_signature(TWILIO_VECTOR_URL, params, TWILIO_VECTOR_SIGNATURE, TWILIO_VECTOR_TOKEN)
    assert (
        twilio.compute_signature(TWILIO_VECTOR_URL, params, TWILIO_VECTOR_TOKEN)
        == TWILIO_VECTOR_SIGNATURE
    )


def test_public_vector_verifies_with_the_default_port_in_the_url() -> None:
    url = "https://mycompany.com:443/myapp.php?foo=1&bar=2"
    params = list(TWILIO_VECTOR_PARAMS.items())
    twilio.verify_signature(url, params, TWILIO_VECTOR_SIGNATURE, TWILIO_VECTOR_TOKEN)


def test_signature_computed_with_the_port_verifies_without_it() -> None:
    form = twilio_form(status="read")
    signature = sign_twilio("https://bot.example.com:443/webhooks/twilio", form, TOKEN)
    twilio.verify_signature(CALLBACK_URL, form.items(), signature, TOKEN)


def test_http_default_port_is_80() -> None:
    form = twilio_form()
    signature = sign_twilio("http://bot.example.com:80/cb", form, TOKEN)
    twilio.verify_signature("http://bot.example.com/cb", form.items(), signature, TOKEN)
    with pytest.raises(SignatureInvalid):
        bad = sign_twilio("http://bot.example.com:443/cb", form, TOKEN)
        twilio.verify_signature("http://bot.example.com/cb", form.items(), bad, TOKEN)


def test_public_vector_through_handle() -> None:
    body = twilio_body(TWILIO_VECTOR_PARAMS)
    request = webhook_request(
        body, {"X-Twilio-Signature": TWILIO_VECTOR_SIGNATURE}, TWILIO_VECTOR_URL
    )
    with pytest.raises(MalformedBody):  # authentic, but a voice call, not a message callback
        twilio.handle(request, TWILIO_VECTOR_TOKEN)
    tampered = webhook_request(
        body.replace(b"1234", b"1235"),
        {"X-Twilio-Signature": TWILIO_VECTOR_SIGNATURE},
        TWILIO_VECTOR_URL,
    )
    with pytest.raises(SignatureInvalid):
        twilio.handle(tampered, TWILIO_VECTOR_TOKEN)


def test_valid_callback_through_handle() -> None:
    result = twilio.handle(_signed_request(twilio_form("SMabc", "delivered")), TOKEN)
    assert result.receipts == [
        Receipt("SMabc", Status.DELIVERED, None, "16505551234", "twilio", None)
    ]


def test_missing_signature_is_401() -> None:
    request = webhook_request(twilio_body(twilio_form()), url=CALLBACK_URL)
    with pytest.raises(SignatureMissing) as caught:
        twilio.handle(request, TOKEN)
    assert caught.value.http_status == 401


def test_wrong_token_is_403() -> None:
    with pytest.raises(SignatureInvalid) as caught:
        twilio.handle(_signed_request(twilio_form(), token="another"), TOKEN)
    assert caught.value.http_status == 403


def test_one_byte_change_to_the_body_is_invalid() -> None:
    request = _signed_request(twilio_form(status="delivered"))
    request.body = request.body.replace(b"delivered", b"delivereD")
    with pytest.raises(SignatureInvalid):
        twilio.handle(request, TOKEN)


def test_added_parameter_is_invalid() -> None:
    request = _signed_request(twilio_form())
    request.body += b"&ErrorCode=63016"
    with pytest.raises(SignatureInvalid):
        twilio.handle(request, TOKEN)


def test_no_secret_means_no_verification() -> None:
    request = webhook_request(twilio_body(twilio_form(status="read")))
    assert [r.status for r in twilio.handle(request, None).receipts] == [Status.READ]


# --- Public URL (behind a proxy) ----------------------------------------------------------------


def test_public_url_replaces_scheme_and_host_and_keeps_path_and_query() -> None:
    form = twilio_form()
    signed = "https://bot.example.com/webhooks/twilio?tenant=7"
    received = "http://10.0.0.5:8080/webhooks/twilio?tenant=7"
    request = _signed_request(form, signed_url=signed, received_url=received)
    assert twilio.signed_url(request, PUBLIC_URL) == signed
    assert len(twilio.handle(request, TOKEN, public_url=PUBLIC_URL).receipts) == 1
    with pytest.raises(SignatureInvalid):  # without public_url the server's own URL is used
        twilio.handle(request, TOKEN)


def test_public_url_with_port_and_trailing_slash() -> None:
    form = twilio_form()
    signed = "https://bot.example.com:8443/webhooks/twilio"
    request = _signed_request(
        form, signed_url=signed, received_url="http://127.0.0.1/webhooks/twilio"
    )
    assert twilio.signed_url(request, "https://bot.example.com:8443/") == signed
    assert len(twilio.handle(request, TOKEN, public_url="https://bot.example.com:8443/").receipts)


def test_public_url_with_a_path_prefix() -> None:
    request = webhook_request(b"", url="http://127.0.0.1:8080/webhooks/twilio")
    assert (
        twilio.signed_url(request, "https://example.com/bot")
        == "https://example.com/bot/webhooks/twilio"
    )


def test_signature_is_bound_to_the_path() -> None:
    form = twilio_form()
    request = _signed_request(form, signed_url="https://bot.example.com/other")
    with pytest.raises(SignatureInvalid):
        twilio.handle(request, TOKEN, public_url=PUBLIC_URL)


# --- Status mapping -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wire", "status"),
    [
        ("queued", Status.QUEUED),
        ("accepted", Status.QUEUED),
        ("scheduled", Status.QUEUED),
        ("sending", Status.QUEUED),
        ("sent", Status.SENT),
        ("delivered", Status.DELIVERED),
        ("read", Status.READ),
        ("failed", Status.FAILED),
        ("undelivered", Status.FAILED),
        ("canceled", Status.FAILED),
    ],
)
def test_status_mapping(wire: str, status: Status) -> None:
    result = twilio.parse(twilio_body(twilio_form("SM1", wire)))
    assert [r.status for r in result.receipts] == [status]
    assert result.receipts[0].timestamp is None  # Twilio sends none
    assert (result.rejected, result.ignored) == (0, 0)


def test_error_code_becomes_the_receipt_error() -> None:
    form = twilio_form(
        "SM1", "undelivered", ErrorCode="63016", ChannelStatusMessage="outside window"
    )
    [receipt] = twilio.parse(twilio_body(form)).receipts
    assert receipt.error == ReceiptError("63016", "undelivered", "outside window")


def test_canceled_without_error_code_still_says_why() -> None:
    [receipt] = twilio.parse(twilio_body(twilio_form("SM1", "canceled"))).receipts
    assert receipt.error == ReceiptError(None, "canceled", None)


def test_unknown_status_is_ignored() -> None:
    result = twilio.parse(twilio_body(twilio_form("SM1", "partially_delivered")))
    assert (result.receipts, result.ignored, result.rejected) == ([], 1, 0)


def test_legacy_sms_fields_are_enough() -> None:
    body = twilio_body({"SmsSid": "SM9", "SmsStatus": "sent", "To": "whatsapp:+447700900123"})
    [receipt] = twilio.parse(body).receipts
    assert (receipt.message_id, receipt.status, receipt.recipient) == (
        "SM9",
        Status.SENT,
        "447700900123",
    )


def test_missing_recipient_is_none() -> None:
    [receipt] = twilio.parse(twilio_body(twilio_form("SM1", "read", to=None))).receipts
    assert receipt.recipient is None


@pytest.mark.parametrize("sid", ["", "x" * 129, "SMé"])
def test_unusable_message_sid_is_rejected_not_fatal(sid: str) -> None:
    result = twilio.parse(twilio_body(twilio_form(sid, "delivered")))
    assert (result.receipts, result.rejected) == ([], 1)


def test_inbound_message_on_the_same_url() -> None:
    form = {
        "MessageSid": "SMin1",
        "SmsStatus": "received",
        "From": "whatsapp:+16505551234",
        "To": "whatsapp:+14155238886",
        "Body": "Yes, I will come",
        "NumMedia": "0",
        "MessageType": "text",
    }
    result = twilio.parse(twilio_body(form))
    [message] = result.inbound
    assert (message.message_id, message.sender, message.text, message.type) == (
        "SMin1",
        "16505551234",
        "Yes, I will come",
        "text",
    )
    assert result.receipts == []


@pytest.mark.parametrize("body", [b"", b"hello", b"\xff\xfe", b"Body=hi&From=x"])
def test_not_a_message_callback_is_malformed(body: bytes) -> None:
    with pytest.raises(MalformedBody):
        twilio.parse(body)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=12), st.text(max_size=30), max_size=8))
def test_signature_round_trip_for_any_form(form: dict[str, str]) -> None:
    form = {**twilio_form(), **form}
    body = twilio_body(form)
    signature = sign_twilio(CALLBACK_URL, form, TOKEN)
    params = twilio.parse_form(body)
    twilio.verify_signature(CALLBACK_URL, params, signature, TOKEN)
