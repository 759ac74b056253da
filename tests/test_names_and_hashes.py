"""What people read: statuses print as names, and one phone number has one hash wherever it is
hashed (the manager, the Redis store's script arguments, the client's log lines)."""

from __future__ import annotations

import json
import logging

import pytest

from plugin.client import SendError
from plugin.core.manager import MessageSessionManager
from plugin.core.model import Receipt, Status, StatusChange
from plugin.core.records import normalize_recipient
from plugin.server.runtime import CLIENT_KEY
from plugin.stores.redis.store import RedisStore
from tests.serving import ACCESS_TOKEN, GRAPH_ERROR, PHONE_NUMBER_ID, Clock, FakeGraph, make_app

SPELLINGS = [
    "+16505551234",
    "16505551234",
    "+1 650-555-1234",
    "+1 (650) 555-1234",
    "1 650 555 1234",
]
KEY = "test-redaction-key"


def test_statuses_print_as_their_names() -> None:
    assert str(Status.DELIVERED) == "delivered"
    assert f"{Status.SENT}" == "sent"
    assert "%s" % Status.READ == "read"  # noqa: UP031 (what logging does)
    assert f"{Status.PLAYED:>8}" == "  played"
    assert [str(s) for s in Status] == ["queued", "sent", "delivered", "read", "played", "failed"]


def test_statuses_are_still_numbers_where_numbers_are_asked_for() -> None:
    assert int(Status.DELIVERED) == 2 and Status.DELIVERED == 2
    assert f"{Status.DELIVERED:d}" == "2"
    assert Status.SENT < Status.DELIVERED < Status.READ
    assert json.dumps({"status": Status.READ}) == '{"status": 3}'


class Changes:
    """An event sink keeping the status changes."""

    def __init__(self) -> None:
        self.changes: list[StatusChange] = []

    def status_changed(self, change: StatusChange) -> None:
        self.changes.append(change)

    def message_expired(self, expired: object) -> None: ...

    def session_completed(self, summary: object, *, on_delivered: object = None) -> None: ...

    def cleanup_completed(self, report: object) -> None: ...


def test_a_status_change_shows_names_in_logs(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    sink = Changes()
    manager = MessageSessionManager(clock=clock, events=sink)
    manager.track_sent("wamid.NAMES", "16505551234", sent_at=clock.now)
    manager.apply_receipt(Receipt("wamid.NAMES", Status.SENT, clock.now))
    manager.apply_receipt(Receipt("wamid.NAMES", Status.DELIVERED, clock.now + 1))
    log = logging.getLogger("tests.names")
    with caplog.at_level(logging.INFO, logger="tests.names"):
        for change in sink.changes:
            log.info("%s -> %s", change.old_status, change.new_status)
    assert f"{sink.changes[-1].old_status} -> {sink.changes[-1].new_status}" == "sent -> delivered"
    assert "sent -> delivered" in caplog.text


def test_normalize_recipient_strips_what_people_type() -> None:
    assert {normalize_recipient(s) for s in SPELLINGS} == {"16505551234"}


def test_one_hash_per_number_in_the_manager_and_the_redis_store() -> None:
    manager = MessageSessionManager(redaction_key=KEY)
    store = RedisStore(redaction_key=KEY)  # not connected: hashing needs no server
    hashes = {manager.redact(s) for s in SPELLINGS} | {store.redact(s) for s in SPELLINGS}
    assert len(hashes) == 1
    args = store._args  # what the scripts receive: the same hash as the manager's events
    assert {args.recipient_field(s) for s in SPELLINGS} == {manager.redact("16505551234")}


@pytest.fixture
async def graph(aiohttp_server):
    fake = FakeGraph()
    server = await aiohttp_server(fake.app)
    fake.url = str(server.make_url("/v21.0"))
    return fake


async def test_client_log_lines_hash_the_number_as_the_events_do(
    aiohttp_client, graph, caplog: pytest.LogCaptureFixture
) -> None:
    app, manager = make_app(
        {
            "meta": {
                "access_token": ACCESS_TOKEN,
                "phone_number_id": PHONE_NUMBER_ID,
                "api_base_url": graph.url,
            }
        }
    )
    await aiohttp_client(app)
    graph.fail_with = (400, GRAPH_ERROR)
    with caplog.at_level(logging.WARNING, logger="plugin.client"), pytest.raises(SendError):
        await app[CLIENT_KEY].send_text("+1 650-555-1234", "hello")
    assert f"send to {manager.redact('16505551234')} failed" in caplog.text
    assert "555" not in caplog.text.replace(manager.redact("16505551234") or "", "")
