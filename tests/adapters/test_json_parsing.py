"""The webhook JSON parser: orjson on the hot path, ``json.loads`` for whatever orjson refuses,
and the same meaning for every body whichever parser read it: the same values (integers past
64 bits aside, which orjson reads as floats), and for those the same fate in every adapter."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import adapters.base
from adapters import bridge, meta, waha
from adapters.base import MalformedBody, ParseResult, load_json
from tests.providers import (
    bridge_ack,
    bridge_body,
    meta_body,
    meta_change,
    meta_failed_status,
    meta_inbound,
    meta_status,
    meta_status_body,
    waha_ack_body,
    waha_message_body,
)

# JSON values, with the corners where parsers differ: huge and negative integers, floats at the
# edges, unicode (astral, escapes), deep-ish nesting, duplicate keys (written as text below).
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=30,
)


def same(a: Any, b: Any) -> bool:
    """Equal values of equal types (1 and 1.0 and True differ here), NaN aside."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


def stdlib(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return MalformedBody


def ours(body: bytes) -> Any:
    try:
        return load_json(body)
    except MalformedBody:
        return MalformedBody


@settings(max_examples=300, deadline=None)
@given(json_values, st.booleans())
def test_a_body_means_what_json_loads_makes_of_it(value: Any, ascii_only: bool) -> None:
    body = json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    assert same(ours(body), stdlib(body))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64) | st.text(max_size=32).map(lambda t: t.encode("utf-8", "replace")))
def test_arbitrary_bytes_parse_alike_or_are_refused_alike(body: bytes) -> None:
    mine, theirs = ours(body), stdlib(body)
    assert (mine is MalformedBody) == (theirs is MalformedBody)
    if mine is not MalformedBody:
        assert same(mine, theirs)


@pytest.mark.parametrize(
    "body",
    [
        b'{"id": "\\ud800"}',  # a lone surrogate escape: orjson refuses, json.loads keeps it
        b'{"n": NaN, "i": Infinity}',
        b'{"f": 1e400}',
        b'\xef\xbb\xbf{"bom": 1}',
        '{"utf16": 1}'.encode("utf-16"),
        b'{"dup": 1, "dup": 2}',
        b"[" * 2000 + b"]" * 2000,
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a": 1} trailing',
        b"\xff\xfe\x00",
    ],
)
def test_what_orjson_refuses_is_decided_by_json_loads(body: bytes) -> None:
    assert same(ours(body), stdlib(body))


def test_orjson_is_on_the_hot_path() -> None:
    body = b'{"entry": [{"changes": [{"value": {"statuses": [{"id": "wamid.1"}]}}]}]}'
    assert orjson.loads(body) == load_json(body)


# -- integers past 64 bits: the same fate in every adapter --------------------------------------


def leaves(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(node, dict):
        return [p for key, child in node.items() for p in leaves(child, (*path, key))]
    if isinstance(node, list):
        return [p for index, child in enumerate(node) for p in leaves(child, (*path, index))]
    return [path]


def replaced(document: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    copy = dict(document) if isinstance(document, dict) else list(document)
    copy[path[0]] = replaced(document[path[0]], path[1:], value)
    return copy


def outcome(parse: Any, body: bytes) -> tuple[Any, ...]:
    try:
        result: ParseResult = parse(body)
    except MalformedBody:
        return ("malformed",)
    # an inbound message's ``raw`` is the provider's object as parsed: there a huge integer is
    # a float with orjson (documented); everything the plugin reads from it is compared
    inbound = [replace(message, raw={}) for message in result.inbound]
    return (result.receipts, inbound, result.rejected, result.ignored)


PAYLOADS = [
    (meta.parse, meta_status_body([meta_status("wamid.A"), meta_failed_status("wamid.B")])),
    (meta.parse, meta_status_body([meta_status("wamid.C", "read", timestamp=1750030073)])),
    (meta.parse, meta_body(meta_change(messages=[meta_inbound("wamid.IN")]))),
    (waha.parse, waha_ack_body("true_16505551234@c.us_3EB0C767D71D4A0B6E8D", 3)),
    (waha.parse, waha_message_body()),
    (
        bridge.parse,
        bridge_body([bridge_ack("3EB0C767D71D4A0B6E8D", 3, 1750030073, "16505551234")]),
    ),
]


@pytest.mark.parametrize("index", range(len(PAYLOADS)))
@pytest.mark.parametrize("huge", [2**70, -(2**70), 2**64, 10**30])
def test_an_integer_past_64_bits_anywhere_has_the_same_fate_with_both_parsers(
    index: int, huge: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    parse, body = PAYLOADS[index]
    document = json.loads(body)
    for path in leaves(document):
        mutated = json.dumps(replaced(document, path, huge)).encode()
        fast = outcome(parse, mutated)
        with monkeypatch.context() as patch:  # json.loads alone, as before orjson
            patch.setattr(adapters.base.orjson, "loads", _refuse)
            slow = outcome(parse, mutated)
        assert fast == slow, (path, fast, slow)


def _refuse(body: bytes) -> Any:
    raise orjson.JSONDecodeError("refused", "", 0)
