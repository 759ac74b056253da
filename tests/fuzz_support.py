"""What the webhook fuzz tests need: a real server in a thread (its own event loop, real
sockets), real provider payloads, hypothesis strategies that mutate them in every way a client
can (structure, types, huge numbers, unicode and lone surrogates, deep nesting, duplicate keys,
truncation, stray bytes) and re-sign the result so that it reaches the parsers, and the counts a
run prints.

Profiles (``WA_FUZZ_PROFILE``): ``ci`` (the default: about a minute for the whole module) and
``long`` (``make fuzz``: 100,000 requests in all).
"""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
import os
import random
import threading
from collections import Counter
from collections.abc import Sequence
from typing import Any, TypeVar
from urllib.parse import quote

from aiohttp import web
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from plugin.server.runtime import MANAGER_KEY, RUNTIME_KEY
from tests.providers import (
    DEFAULT_TIMESTAMP,
    bridge_ack,
    meta_change,
    meta_failed_status,
    meta_inbound,
    meta_status,
    twilio_form,
)
from tests.webhook_apps import signed_headers

T = TypeVar("T")

__all__ = [
    "PROFILE",
    "REQUESTS_PER_EXAMPLE",
    "Counts",
    "ErrorRecords",
    "HypothesisPicker",
    "Picker",
    "RandomPicker",
    "ServerThread",
    "base_document",
    "fuzz_settings",
    "mutated_request",
    "picker",
]

PROFILE = os.environ.get("WA_FUZZ_PROFILE", "ci")
if PROFILE not in ("ci", "long"):
    raise ValueError(f"WA_FUZZ_PROFILE must be ci or long, not {PROFILE!r}")
#: Requests per hypothesis example: ci draws every choice from hypothesis (4 requests per
#: example); long draws a seed per example and derives 20 requests from it (fast to generate).
REQUESTS_PER_EXAMPLE = {"ci": 4, "long": 20}[PROFILE]
#: Examples per (store, provider): ci about half a minute in all; long 100,000 requests in all
#: (4 providers x (1,000 memory + 250 Redis) examples x 20 requests).
EXAMPLES = {"ci": {"memory": 40, "redis": 15}, "long": {"memory": 1000, "redis": 250}}[PROFILE]

settings.register_profile(
    "wa-fuzz",
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)


def fuzz_settings(store: str) -> settings:
    return settings(settings.get_profile("wa-fuzz"), max_examples=EXAMPLES[store])


def picker(data: st.DataObject) -> Picker:
    """The picker of one example, as the profile wants it."""
    if PROFILE == "ci":
        return HypothesisPicker(data)
    return RandomPicker(data.draw(st.randoms(use_true_random=True)))


# -- the server --------------------------------------------------------------------------------


class ServerThread:
    """An aiohttp app served on 127.0.0.1 by its own event loop in a thread; requests go
    through one keep-alive ``http.client`` connection."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self.runner = web.AppRunner(app, handle_signals=False, access_log=None)
        self.port = 0
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._connection: http.client.HTTPConnection | None = None

    def __enter__(self) -> ServerThread:
        self._thread.start()
        self.call(self._start())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._connection is not None:
            self._connection.close()
        self.call(self.runner.cleanup())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()

    async def _start(self) -> None:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = self.runner.addresses[0][1]

    def call(self, coroutine: Any) -> Any:
        """Run a coroutine on the server's loop; its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(30)

    @property
    def store(self) -> Any:
        return self.app[MANAGER_KEY]

    @property
    def webhooks(self) -> dict[str, Any]:
        return self.app[RUNTIME_KEY].webhooks

    def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        for attempt in (1, 2):
            if self._connection is None:
                self._connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            try:
                self._connection.request(method, path, body=body, headers=headers or {})
                response = self._connection.getresponse()
                data = response.read()
                if response.will_close:
                    self._connection.close()
                    self._connection = None
                return response.status, data
            except (http.client.HTTPException, ConnectionError):
                self._connection.close()
                self._connection = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def stats(self) -> dict[str, Any]:
        status, data = self.request("GET", "/sessions/stats")
        assert status == 200, data[:200]
        document: dict[str, Any] = json.loads(data)
        return document


class ErrorRecords(logging.Handler):
    """Collects the log records at ERROR or above that carry a traceback, from every thread."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            self.records.append(record)

    def __enter__(self) -> ErrorRecords:
        logging.getLogger().addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger().removeHandler(self)


class Counts:
    """Requests sent, answers by status code, per store."""

    def __init__(self) -> None:
        self.requests = 0
        self.status: Counter[int] = Counter()

    def add(self, status: int) -> None:
        self.requests += 1
        self.status[status] += 1


# -- real payloads -----------------------------------------------------------------------------

TRACKED = ("wamid.FUZZ0001", "wamid.FUZZ0002", "3EB0FUZZ0001", "3EB0FUZZ0002", "SM" + "f" * 32)
WWEB_ID = "true_16505551234@c.us_3EB0FUZZ0001"


def base_document(provider: str, variant: int) -> Any:
    """A real payload of ``provider`` (a JSON document, or the form pairs of Twilio)."""
    stamp = str(DEFAULT_TIMESTAMP)
    if provider == "meta":
        changes = [
            meta_change(
                statuses=[
                    meta_status("wamid.FUZZ0001", "delivered", timestamp=stamp),
                    meta_status(
                        "wamid.FUZZ0002",
                        "read",
                        timestamp=stamp,
                        conversation={"id": "c1", "origin": {"type": "utility"}},
                        pricing={"billable": True, "pricing_model": "PMP"},
                    ),
                    meta_failed_status("wamid.FUZZ0003", timestamp=stamp),
                    meta_status(
                        "wamid.FUZZ0004", "enqueued", timestamp=DEFAULT_TIMESTAMP * 1000, gs_id="g1"
                    ),
                    meta_status(
                        "wamid.FUZZ0005",
                        "sent",
                        recipient_id=None,
                        recipient_user_id="US.13491208655302741918",
                    ),
                ]
            ),
            meta_change(messages=[meta_inbound("wamid.IN0001")]),
        ]
        return {
            "object": "whatsapp_business_account",
            "entry": [{"id": "102290129340398", "changes": changes[: 1 + variant % 2]}],
        }
    if provider == "waha":
        if variant % 3 == 2:
            return {
                "event": "message",
                "timestamp": DEFAULT_TIMESTAMP * 1000,
                "payload": {
                    "id": "false_16505551234@c.us_AAAA1111",
                    "fromMe": False,
                    "from": "16505551234@c.us",
                    "body": "hi",
                    "timestamp": DEFAULT_TIMESTAMP,
                    "hasMedia": False,
                },
            }
        event = "message.ack.group" if variant % 3 == 1 else "message.ack"
        message = (
            WWEB_ID
            if event == "message.ack"
            else "false_120363025246125486@g.us_3EB0FUZZ0002_16505551234@c.us"
        )
        return {
            "id": "evt_1",
            "event": event,
            "timestamp": DEFAULT_TIMESTAMP * 1000,
            "session": "default",
            "engine": "WEBJS",
            "payload": {
                "id": message,
                "from": "16505551234@c.us",
                "participant": None,
                "fromMe": True,
                "ack": 2 + variant % 2,
                "ackName": "DEVICE",
            },
        }
    if provider == "bridge":
        return {
            "library": "whatsapp-web.js",
            "acks": [
                bridge_ack(WWEB_ID, 2, DEFAULT_TIMESTAMP, "16505551234@c.us"),
                bridge_ack("true_123456789012345@lid_3EB0FUZZ0002", 3, DEFAULT_TIMESTAMP * 1000),
                bridge_ack("3EB0FUZZ0003", 5, DEFAULT_TIMESTAMP, library="baileys"),
                bridge_ack("3EB0FUZZ0004", -1, DEFAULT_TIMESTAMP),
            ],
        }
    status = ("delivered", "failed", "read", "received")[variant % 4]
    form = twilio_form("SM" + "f" * 32, status)
    if status == "failed":
        form["ErrorCode"] = "63016"
    if status == "received":
        form = {
            "SmsStatus": "received",
            "MessageSid": "SM" + "e" * 32,
            "From": "whatsapp:+16505551234",
            "Body": "hello",
            "NumMedia": "0",
        }
    return list(form.items())


# -- mutations ---------------------------------------------------------------------------------

SURROGATES = ["\ud800", "\udfff", "\udc80", "\ud83d"]
WEIRD_STRINGS = [
    "",
    " ",
    "\u00b2",
    "\u0661\u0662\u0663",
    "\x00",
    "\x7f",
    "\u2028",
    "\U0001f642",
    "1e400",
    "NaN",
    "Infinity",
    "-1",
    "+",
    "0x1F",
    "true_16505551234@c.us_",
    "@lid",
    "\u00b2@c.us",
    "whatsapp:+\u00b2",
    "9" * 30,
    "1" * 4400,
    "x" * 300,
    "sha256=",
    "null",
    "[]",
    "{}",
    "US.\u00e9",
    "13\u00b2",
    "1750030073.0.0",
    "\ufeff1750030073",
]
_strings = st.one_of(
    st.text(max_size=30),
    st.sampled_from(WEIRD_STRINGS),
    st.lists(st.one_of(st.text(max_size=4), st.sampled_from(SURROGATES)), max_size=6).map("".join),
)
_numbers = st.one_of(
    st.integers(),
    st.sampled_from([10**30, -(10**30), 2**63, 2**64 + 1, -1, 0, 10**400, 1750030073123456]),
    st.floats(allow_nan=True, allow_infinity=True),
)
_scalars = st.one_of(_strings, _numbers, st.booleans(), st.none())
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(_strings, inner, max_size=3)
    ),
    max_leaves=8,
)


class Picker:
    """The choices a mutation makes. ``HypothesisPicker`` draws each from hypothesis (shrinkable:
    the CI profile); ``RandomPicker`` takes them from a ``random.Random`` that hypothesis seeds
    (the long profile: many requests per example, generated fast)."""

    def integer(self, low: int, high: int) -> int:
        raise NotImplementedError

    def choice(self, options: Sequence[T]) -> T:
        return options[self.integer(0, len(options) - 1)]

    def string(self) -> str:
        raise NotImplementedError

    def value(self) -> Any:
        raise NotImplementedError

    def noise(self) -> bytes:
        raise NotImplementedError


class HypothesisPicker(Picker):
    def __init__(self, data: st.DataObject) -> None:
        self.data = data

    def integer(self, low: int, high: int) -> int:
        return self.data.draw(st.integers(low, high))

    def string(self) -> str:
        return self.data.draw(_strings)

    def value(self) -> Any:
        return self.data.draw(_values)

    def noise(self) -> bytes:
        return self.data.draw(st.binary(min_size=1, max_size=4))


_NUMBERS = [
    10**30,
    -(10**30),
    2**63,
    2**64 + 1,
    -1,
    0,
    10**400,
    1750030073123456,
    1.5,
    -0.0,
    float("nan"),
    float("inf"),
    float("-inf"),
    1e308,
    5e-324,
    1750030073,
    1750030073123,
]


class RandomPicker(Picker):
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def integer(self, low: int, high: int) -> int:
        return self.rng.randint(low, high)

    def string(self) -> str:
        rng = self.rng
        kind = rng.randrange(4)
        if kind == 0:
            return rng.choice(WEIRD_STRINGS)
        parts = []
        for _ in range(rng.randrange(1, 6)):
            roll = rng.random()
            if roll < 0.2:
                parts.append(rng.choice(SURROGATES))
            elif roll < 0.5:
                parts.append(chr(rng.randrange(0x20, 0x7F)) * rng.randrange(1, 4))
            elif roll < 0.7:
                parts.append(chr(rng.randrange(0, 0x20)))
            else:
                code = rng.randrange(0x80, 0x110000)
                parts.append(chr(code) if not 0xD800 <= code <= 0xDFFF else "\ufffd")
        return "".join(parts)

    def value(self, depth: int = 0) -> Any:
        rng = self.rng
        roll = rng.randrange(10)
        if roll < 4:
            return self.string()
        if roll < 6:
            return rng.choice(_NUMBERS) if rng.random() < 0.6 else rng.randint(-(2**70), 2**70)
        if roll == 6:
            return rng.choice([True, False, None])
        if depth > 2:
            return None
        if roll == 7:
            return [self.value(depth + 1) for _ in range(rng.randrange(4))]
        return {self.string(): self.value(depth + 1) for _ in range(rng.randrange(4))}

    def noise(self) -> bytes:
        return bytes(self.rng.randrange(256) for _ in range(self.rng.randint(1, 4)))


_OPS = (
    "replace",
    "replace",
    "replace",
    "delete",
    "insert",
    "swap_type",
    "deep",
    "duplicate",
    "grow",
    "truncate",
    "bytes",
    "unsign",
    "none",
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            out += _paths(value, (*prefix, index))
    return out


def _get(node: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        node = node[step]
    return node


def _set(root: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    _get(root, path[:-1])[path[-1]] = value
    return root


def _swap_type(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return str(value).lower()
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return [value]
    return json.dumps(value)


def _mutate_json(pick: Picker, document: Any) -> tuple[bytes, str]:
    """One chain of mutations; the body and how it is to be signed ("sign", "unsign")."""
    signing, text_ops = "sign", []
    for _ in range(pick.integer(1, 3)):
        op = pick.choice(_OPS)
        paths = _paths(document)
        path = pick.choice(paths)
        if op == "replace":
            document = _set(document, path, pick.value())
        elif op == "delete" and path:
            parent = _get(document, path[:-1])
            del parent[path[-1]]
        elif op == "insert":
            target = _get(document, path)
            if isinstance(target, dict):
                target[pick.string()] = pick.value()
            elif isinstance(target, list):
                target.insert(pick.integer(0, len(target)), pick.value())
        elif op == "swap_type":
            document = _set(document, path, _swap_type(_get(document, path)))
        elif op == "deep":
            depth = pick.choice([2, 30, 900, 5000])
            nested: Any = _get(document, path)
            for level in range(depth):
                nested = [nested] if level % 2 else {"x": nested}
            document = _set(document, path, nested)
            break  # no more walking of the tree: it may now be deeper than Python recurses
        elif op == "grow":
            target = _get(document, path)
            if isinstance(target, list) and target:
                document = _set(document, path, target * pick.choice([5, 200]))
        elif op in ("duplicate", "truncate", "bytes"):
            text_ops.append(op)
        elif op == "unsign":
            signing = pick.choice(["unsign", "badsig"])
    try:
        body = json.dumps(document, allow_nan=True).encode()
    except (RecursionError, ValueError):
        body = b'{"deep": ' + b"[" * 100000 + b"]" * 100000 + b"}"
    for op in text_ops:
        body = _text_op(pick, op, body)
    return body, signing


def _text_op(pick: Picker, op: str, body: bytes) -> bytes:
    if op == "duplicate":  # a key repeated in its object, with another value
        keys = [
            k
            for k in (
                b'"id": ',
                b'"status": ',
                b'"ack": ',
                b'"timestamp": ',
                b'"recipient_id": ',
                b'"code": ',
                b'"event": ',
                b'"acks": ',
                b'"entry": ',
            )
            if k in body
        ]
        if keys:
            key = pick.choice(keys)
            value = json.dumps(pick.value(), allow_nan=True).encode()
            where = body.index(key)
            first = pick.integer(0, 1) == 1
            pair = key + value + b", "
            if first:
                return body[:where] + pair + body[where:]
            end = body.find(b", ", where)
            if end > 0:
                return body[:end] + b", " + pair[:-2] + body[end:]
        return body
    if op == "truncate":
        return body[: pick.integer(0, max(0, len(body) - 1))]
    position = pick.integer(0, len(body))
    noise = pick.noise()
    return body[:position] + noise + body[position + pick.integer(0, 2) :]


def _mutate_form(pick: Picker, pairs: list[tuple[str, str]]) -> tuple[bytes, str]:
    signing = "sign"
    pairs = list(pairs)
    tail_ops = []
    for _ in range(pick.integer(1, 3)):
        op = pick.choice(_OPS)
        index = pick.integer(0, len(pairs) - 1) if pairs else 0
        if op in ("replace", "swap_type") and pairs:
            pairs[index] = (pairs[index][0], pick.string())
        elif op == "delete" and pairs:
            del pairs[index]
        elif op in ("insert", "deep", "grow"):
            name = pick.choice(
                ["ErrorCode", "To", "MessageStatus", "MessageSid", "From", "X", pick.string()]
            )
            pairs.insert(index, (name, pick.string()))
        elif op == "duplicate" and pairs:
            pairs.append((pairs[index][0], pick.string()))
        elif op in ("truncate", "bytes"):
            tail_ops.append(op)
        elif op == "unsign":
            signing = pick.choice(["unsign", "badsig"])
    body = "&".join(
        quote(name.encode("utf-8", "surrogatepass"), safe="")
        + "="
        + quote(value.encode("utf-8", "surrogatepass"), safe="")
        for name, value in pairs
    ).encode()
    for op in tail_ops:
        body = _text_op(pick, op, body)
    return body, signing


TWILIO_PATH = "/webhooks/twilio?tenant=clinic%201"


def mutated_request(pick: Picker, provider: str) -> tuple[str, bytes, dict[str, str]]:
    """Path, body and headers of one mutated, re-signed request to ``provider``'s route."""
    document = base_document(provider, pick.integer(0, 3))
    if provider == "twilio":
        body, signing = _mutate_form(pick, document)
        path = TWILIO_PATH
    else:
        body, signing = _mutate_json(pick, document)
        path = f"/webhooks/{provider}"
    headers = signed_headers(provider, body, path)
    if signing == "unsign":
        headers = {k: v for k, v in headers.items() if k == "Content-Type"}
    elif signing == "badsig":
        name = next(k for k in headers if k != "Content-Type" and "Algorithm" not in k)
        headers[name] = headers[name][:-2] + ("00" if not headers[name].endswith("00") else "11")
    return path, body, headers
