"""The field rules every adapter applies before handing anything on, and the message-key rule
(plugin/core/records.py) the adapters and the send path share."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from adapters import meta, twilio
from adapters.base import (
    SignatureInvalid,
    SignatureMissing,
    clean_text,
    constant_time_equal,
    epoch_seconds,
    error_code,
    is_message_id,
    recipient_number,
    verify_hex_hmac,
)
from plugin.core.records import message_key


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("true_16505551234@c.us_3EB0C767D71D4A0B6E8D", "3EB0C767D71D4A0B6E8D"),
        ("false_16505551234@c.us_3EB0C767D71D4A0B6E8D", "3EB0C767D71D4A0B6E8D"),
        ("true_123456789012345@lid_3EB0C767D71D4A0B6E8D", "3EB0C767D71D4A0B6E8D"),
        ("false_120363025246125486@g.us_3EB0AB_16505551234@c.us", "3EB0AB"),
        ("true_16505551234@s.whatsapp.net_BAE5F00D", "BAE5F00D"),
        ("3EB0C767D71D4A0B6E8D", "3EB0C767D71D4A0B6E8D"),
        ("wamid.HBgLMTY1MDU1NTEyMzQVAgARGBI=", "wamid.HBgLMTY1MDU1NTEyMzQVAgARGBI="),
        ("SM0123456789abcdef0123456789abcdef", "SM0123456789abcdef0123456789abcdef"),
        ("true_nochat", "true_nochat"),
        ("true_16505551234@c.us", ""),  # a chat without a key: unusable
        ("true_16505551234@c.us_", ""),
    ],
)
def test_message_key(raw: str, key: str) -> None:
    for provider in ("waha", "bridge", "meta"):
        assert message_key(provider, raw) == key
    if raw.startswith(("true_", "false_")) and "@" in raw:
        assert "@" not in key and "16505551234" not in key  # no chat, no number


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("16505551234", "16505551234"),
        ("+16505551234", "16505551234"),
        ("whatsapp:+16505551234", "16505551234"),
        ("16505551234@c.us", "16505551234"),
        ("16505551234@s.whatsapp.net", "16505551234"),
        ("120363025246125486@g.us", "120363025246125486@g.us"),
        ("16505551234-1600000000@g.us", "16505551234-1600000000@g.us"),
        ("123456789012345@lid", "123456789012345@lid"),
    ],
)
def test_recipients_that_are_accepted(value: object, expected: str | None) -> None:
    assert recipient_number(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "\u00b2",
        "1650555\u00b2",
        "\ud800",
        "\u0661\u0662",
        "16505551234\x00",
        "abc",
        "+",
        "1" * 21,
        "\u00b2@g.us",
        "@lid",
        "x@g.us",
        16505551234,
        1.5,
        ["1"],
        {"a": 1},
        True,
    ],
)
def test_recipients_that_are_refused(value: object) -> None:
    with pytest.raises(ValueError):
        recipient_number(value)


def test_error_codes() -> None:
    assert error_code(131049) == "131049"
    assert error_code("63016") == "63016"
    assert error_code(None) is None
    for bad in ("\u00b2", "13\ud800", "1e5", "-1", -1, 10**12, "1" * 13, 1.0, True, ["1"]):
        with pytest.raises(ValueError):
            error_code(bad)


def test_timestamps() -> None:
    assert epoch_seconds("1750030073") == 1750030073.0
    assert epoch_seconds("1750030073.5") == 1750030073.5
    assert epoch_seconds(1750030073123) == pytest.approx(1750030073.123)
    for bad in (
        "\u0661\u0662\u0663",
        " 1750030073",
        "1_750_030_073",
        "nan",
        "inf",
        "1e9",
        "-5",
        -5,
        float("nan"),
        float("inf"),
        10**30,
        10**400,
        True,
        [1],
        "1" * 25,
    ):
        with pytest.raises(ValueError):
            epoch_seconds(bad)


def test_message_ids_are_printable_ascii() -> None:
    assert is_message_id("wamid.ABC=")
    for bad in ("", "x" * 129, "wamid.\x00", "wamid.\ud800", "wamid.\u00e9", "a\nb", 5, None):
        assert not is_message_id(bad)


def test_clean_text_replaces_lone_surrogates_and_caps_length() -> None:
    assert clean_text("a\ud800b") == "a?b"
    assert len(clean_text("x" * 5000) or "") == 1024
    assert clean_text("") is None and clean_text(None) is None and clean_text(12) == "12"


def test_comparisons_never_raise_on_surrogates() -> None:
    assert not constant_time_equal("token", "tok\udcffen")
    assert constant_time_equal("t\udcff", "t\udcff")


def test_a_signature_by_either_secret_of_a_rotation() -> None:
    body = b'{"a": 1}'
    for secret in ("new", "old"):
        signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        meta.verify_signature(body, signature, ("new", "old"))
        verify_hex_hmac(
            body, signature, ["new", "old"], digestmod="sha256", header_name="X", prefix="sha256="
        )
    with pytest.raises(SignatureInvalid):
        meta.verify_signature(body, signature, ("new", "other"))
    with pytest.raises(SignatureInvalid):
        meta.verify_signature(body, "sha256=\udcff" + "0" * 63, "old")
    with pytest.raises(SignatureMissing):
        meta.verify_signature(body, None, ("new", "old"))


def test_twilio_signed_url_is_joined_as_text() -> None:
    assert twilio.join_public_url("https://bot.example.com/", "/webhooks/twilio?a=1") == (
        "https://bot.example.com/webhooks/twilio?a=1"
    )
    with pytest.raises(SignatureInvalid):  # an unparsable URL is refused, never an error
        twilio.verify_signature("http://[/x", [("A", "b")], "c2ln", "token")
    with pytest.raises(SignatureInvalid):
        twilio.verify_signature("https://x/y", [("A", "b")], "sig\udcff", "token")
