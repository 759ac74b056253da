"""Fuzzing every provider route, on both stores: real signed payloads mutated by hypothesis
(structure, types, huge numbers, unicode and lone surrogates, deep nesting, duplicate keys,
truncation, stray bytes), re-signed so they reach the parsers, posted to a real server.

After every example: no answer is a 500 (only 200, 400, 401, 403, 413), and no traceback was
logged. Every few examples and at the end: no counter is negative, the funnel identity holds per
session, history entry and summary, and parsed receipts = outcomes (nothing stopped, nothing
raised). ``WA_FUZZ_PROFILE=long`` (``make fuzz``) runs 100,000 requests and prints the counts.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz_support import (
    PROFILE,
    REQUESTS_PER_EXAMPLE,
    TRACKED,
    Counts,
    ErrorRecords,
    ServerThread,
    fuzz_settings,
    mutated_request,
    picker,
)
from tests.redis_support import delete_prefix, require_redis
from tests.serving import Clock
from tests.webhook_apps import PROVIDERS, provider_app

ALLOWED = {200, 400, 401, 403, 413}
CHECK_EVERY = 10
HOUR = 3600.0
TOTALS: dict[str, Any] = {}


class Fuzzed:
    """One running server on one store, with what was sent to it."""

    def __init__(self, store: str, server: ServerThread, clock: Clock, errors: ErrorRecords):
        self.store, self.server, self.clock, self.errors = store, server, clock, errors
        self.counts = Counts()
        self.examples = 0

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> None:
        status, answer = self.server.request("POST", path, body, headers)
        self.counts.add(status)
        assert status in ALLOWED, (status, answer[:300], body[:300])

    def check(self) -> dict[str, Any]:
        assert [r.getMessage() for r in self.errors.records] == []
        document = self.server.stats()
        summary = document["summary"]
        for entry in (summary, *document["sessions"], *document["history"]):
            counters = {
                k: entry[k]
                for k in (
                    "sent",
                    "delivered",
                    "read",
                    "played",
                    "failed",
                    "pending",
                    "expired",
                    "evicted",
                )
            }
            assert min(counters.values()) >= 0, entry
            assert min(entry["receipts"].values()) >= 0, entry
            assert counters["sent"] == sum(
                counters[k] for k in ("delivered", "failed", "pending", "expired", "evicted")
            ), entry
        webhooks = self.server.webhooks
        parsed = sum(c.receipts for c in webhooks.values())
        outcomes = sum(sum(c.outcomes.values()) for c in webhooks.values())
        assert sum(c.errors for c in webhooks.values()) == 0
        assert sum(c.stopped for c in webhooks.values()) == 0
        assert parsed == outcomes
        assert sum(summary["receipts"].values()) == outcomes
        for counters in document["webhooks"].values():
            assert min(counters.values()) >= 0
        return document

    def totals(self) -> dict[str, Any]:
        webhooks = self.server.webhooks
        return {
            "requests": self.counts.requests,
            "by_status": dict(sorted(self.counts.status.items())),
            "parsed": sum(c.receipts for c in webhooks.values()),
            "outcomes": sum(sum(c.outcomes.values()) for c in webhooks.values()),
            "rejected": sum(c.rejected for c in webhooks.values()),
            "ignored": sum(c.ignored for c in webhooks.values()),
            "unauthorized": sum(c.unauthorized for c in webhooks.values()),
        }


@pytest.fixture(scope="module", params=["memory", "redis"])
def fuzzed(request: pytest.FixtureRequest) -> Iterator[Fuzzed]:
    store: str = request.param
    redis = None
    if store == "redis":
        url = require_redis()
        redis = (url, f"wa-fuzz-{PROFILE}-{id(request)}")
    clock = Clock()
    app = provider_app(store, clock, redis, ack_tracking_window="1d", max_session_age="2d")
    try:
        with ErrorRecords() as errors, ServerThread(app) as server:
            for message_id in TRACKED:
                server.call(server.store.track_sent(message_id, "16505551234"))
            state = Fuzzed(store, server, clock, errors)
            yield state
            state.check()
            TOTALS[store] = state.totals()
            _report(store, TOTALS[store])
    finally:
        if redis is not None:
            delete_prefix(*redis)


def _report(store: str, totals: dict[str, Any]) -> None:
    line = (
        f"fuzz [{PROFILE}] {store}: {totals['requests']} requests, by status "
        f"{totals['by_status']}, parsed receipts {totals['parsed']}, outcomes "
        f"{totals['outcomes']}, rejected items {totals['rejected']}, ignored "
        f"{totals['ignored']}, unauthorized {totals['unauthorized']}"
    )
    print("\n" + line, file=sys.stderr if PROFILE == "ci" else sys.stdout)
    if len(TOTALS) == 2:
        requests = sum(t["requests"] for t in TOTALS.values())
        parsed = sum(t["parsed"] for t in TOTALS.values())
        outcomes = sum(t["outcomes"] for t in TOTALS.values())
        print(
            f"fuzz [{PROFILE}] total: {requests} requests, parsed {parsed}, outcomes {outcomes}",
            file=sys.stderr if PROFILE == "ci" else sys.stdout,
        )


def _run_example(fuzzed: Fuzzed, data: st.DataObject, provider: str) -> None:
    if data.draw(st.integers(0, 19)) == 0:  # now and then a day goes by: expiry, completion
        fuzzed.clock.advance(data.draw(st.sampled_from([HOUR, 6 * HOUR, 30 * HOUR])))
    pick = picker(data)
    for _ in range(REQUESTS_PER_EXAMPLE):
        fuzzed.post(*mutated_request(pick, provider))
    fuzzed.examples += 1
    if fuzzed.examples % CHECK_EVERY == 0:
        fuzzed.check()
    else:
        assert [r.getMessage() for r in fuzzed.errors.records] == []


@pytest.mark.parametrize("provider", PROVIDERS)
def test_mutated_signed_payloads_never_break_the_server(fuzzed: Fuzzed, provider: str) -> None:
    @fuzz_settings(fuzzed.store)
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        _run_example(fuzzed, data, provider)

    run()
    document = fuzzed.check()
    assert document["webhooks"][provider]["requests"] > 0
