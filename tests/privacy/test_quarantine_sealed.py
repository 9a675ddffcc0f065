"""Quarantined and queued webhook payloads sealed at rest, and what erasure does to them."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segmint.config.model import WebhookDef
from segmint.intake.identity import payload_identities, resolve_person
from segmint.intake.pipeline import ERASED_REASON, Intake
from segmint.intake.quarantine import QUARANTINE_COLUMNS, list_quarantine
from segmint.membership.service import Membership
from segmint.membership.webhooks import WebhookDispatcher, WebhookOutbox, outbox_status
from segmint.privacy.erase import erase
from segmint.privacy.errors import ErasedProfileError, MasterKeyError
from segmint.privacy.keys import is_sealed
from segmint.privacy.subjects import (
    day_key,
    is_subject_sealed,
    open_sealed,
    seal,
    shred_unlinked,
    subject_names,
)
from segmint.store import Store
from segmint.store.bulk import insert_rows
from segmint.workspace import Workspace

from .conftest import ADA, BOB, T0

NEW_EMAIL = "ada.new@example.com"  # only a quarantined message ever carries it
PLAN = {"events": {"Order Completed": {"properties": {"total": {"type": "number"}}}}}


def with_plan(ws: Workspace, plan: dict[str, Any]) -> Workspace:
    """The same workspace and store with a tracking plan."""
    definition = ws.definition.model_validate(
        ws.definition.model_dump(by_alias=True) | {"tracking_plan": plan}
    )
    return Workspace(path=ws.path, definition=definition, _store=ws.store)


def quarantine_people(ws: Workspace) -> None:
    """A malformed identify of Ada's (a new address of hers in it), a bad order of Bob's,
    and a record that is not a message at all."""
    bad_identify = {
        "type": "identify",
        "userId": "u-ada",
        "messageId": "q-ada",
        "traits": {**ADA, "email": NEW_EMAIL},
        "timestamp": "not a date",
    }
    bob_order = {"type": "track", "userId": "u-bob", "event": "Order Completed",
                 "properties": {"total": "forty", "phone": BOB["phone"]},
                 "timestamp": T0.isoformat(), "messageId": "q-bob"}  # fmt: skip
    intake = Intake(with_plan(ws, PLAN))
    intake.submit([bad_identify, "just text " + ADA["name"]], source="test", received_at=T0,
                  invalid="quarantine")  # fmt: skip
    intake.submit([bob_order], source="test", received_at=T0)


def rows(store: Store) -> list[tuple[Any, ...]]:
    """The quarantine table's rows as :data:`QUARANTINE_COLUMNS` (what a backup would hold)."""
    columns = ", ".join(QUARANTINE_COLUMNS)
    return [tuple(r) for r in store.fetchall(f"SELECT {columns} FROM quarantine ORDER BY id")]  # noqa: S608


def test_quarantined_payloads_are_sealed_and_listed_opened(sealed_ws: Workspace) -> None:
    quarantine_people(sealed_ws)
    stored = rows(sealed_ws.store)
    assert len(stored) == 3
    text = " ".join(str(c) for row in stored for c in row).lower()
    for value in (*ADA.values(), NEW_EMAIL, BOB["phone"], "u-ada", "forty"):
        assert value.lower() not in text
    assert all(is_subject_sealed(r[QUARANTINE_COLUMNS.index("payload")]) for r in stored)
    items = {i.message_id: i for i in list_quarantine(sealed_ws.store)}
    assert items["q-ada"].payload["traits"]["email"] == NEW_EMAIL
    assert items["q-bob"].payload["properties"]["phone"] == BOB["phone"]
    assert (items["q-bob"].type, items["q-bob"].event) == ("track", "Order Completed")
    # the reason kept in the clear names the field and the type, never the value
    assert items["q-bob"].reason == "properties.total: must be number, got str [sealed]"
    (text_row,) = [i for i in items.values() if i.message_id is None]
    assert text_row.payload == "just text " + ADA["name"] and text_row.sealed is None


def test_erasure_makes_a_pre_erasure_copy_of_her_quarantined_rows_unreadable(
    sealed_ws: Workspace,
) -> None:
    ws = sealed_ws
    quarantine_people(ws)
    backup = rows(ws.store)
    _, receipt = erase(ws.privacy, "ada@example.com", at=T0)
    assert receipt.deleted["quarantine"] == 1  # found by her user id's subject name
    assert [i.message_id for i in list_quarantine(ws.store)] == [None, "q-bob"]
    payloads = {r[QUARANTINE_COLUMNS.index("message_id")]: r[2] for r in backup}
    with pytest.raises(ErasedProfileError):  # the copy: her user id's key is gone
        open_sealed(ws.privacy, payloads["q-ada"])
    assert "Bob Stone" not in open_sealed(ws.privacy, payloads["q-bob"])  # opens: not hers
    assert orjson.loads(open_sealed(ws.privacy, payloads["q-bob"]))["userId"] == "u-bob"
    # the copy restored: her row reads as erased, a replay skips it and stores Bob's
    ws.store.execute("DELETE FROM quarantine")
    insert_rows(ws.store, "quarantine", QUARANTINE_COLUMNS, backup)
    listed = {i.message_id: i for i in list_quarantine(ws.store)}
    assert listed["q-ada"].sealed == "erased" and listed["q-ada"].payload == "[erased]"
    result = Intake(ws).replay()
    assert (result.accepted, result.unreadable) == (1, 1)
    assert resolve_person(ws.store, "u-bob")
    reasons = {i.message_id: i.reason for i in list_quarantine(ws.store)}
    assert reasons["q-ada"] == ERASED_REASON and "q-bob" not in reasons


def test_export_includes_her_quarantined_messages_opened(sealed_ws: Workspace) -> None:
    from segmint.privacy.export import export_person

    quarantine_people(sealed_ws)
    document = export_person(sealed_ws.privacy, "ada@example.com", at=T0)
    (held,) = document["quarantine"]
    assert held["message_id"] == "q-ada" and held["payload"]["traits"]["email"] == NEW_EMAIL
    assert document["manifest"]["sections"]["quarantine"]["rows"] == 1
    bob = export_person(sealed_ws.privacy, "u-bob", at=T0)
    assert [q["message_id"] for q in bob["quarantine"]] == ["q-bob"]


def test_a_payload_naming_nobody_is_sealed_under_its_day_key(sealed_ws: Workspace) -> None:
    quarantine_people(sealed_ws)
    (row,) = [i for i in list_quarantine(sealed_ws.store) if i.message_id is None]
    assert shred_unlinked(sealed_ws.privacy, T0.date()) == 1
    (row,) = [i for i in list_quarantine(sealed_ws.store) if i.id == row.id]
    assert row.sealed == "erased"  # the day's key is gone; the others still open
    assert {i.sealed for i in list_quarantine(sealed_ws.store) if i.id != row.id} == {None}


def test_purge_deletes_old_rows_and_shreds_their_day_keys(sealed_ws: Workspace) -> None:
    from datetime import timedelta

    from segmint.intake.quarantine import purge_quarantine

    quarantine_people(sealed_ws)
    backup = rows(sealed_ws.store)
    assert purge_quarantine(sealed_ws.store, T0) == {"deleted": 0, "day_keys_destroyed": 0}
    result = purge_quarantine(sealed_ws.store, T0 + timedelta(days=1))
    assert result == {"deleted": 3, "day_keys_destroyed": 1}
    assert list_quarantine(sealed_ws.store, include_replayed=True) == []
    (unlinked,) = [r[2] for r in backup if r[QUARANTINE_COLUMNS.index("subjects")] is None]
    with pytest.raises(ErasedProfileError):  # a copy of the purged day no longer opens
        open_sealed(sealed_ws.privacy, unlinked)


def test_without_a_master_key_quarantine_is_plaintext_and_erasure_still_finds_it(
    ws: Workspace,
) -> None:
    from .conftest import submit_people

    submit_people(ws)
    quarantine_people(ws)
    stored = rows(ws.store)
    payload = stored[0][QUARANTINE_COLUMNS.index("payload")]
    assert NEW_EMAIL in payload  # as before: plaintext
    assert "forty" in str(stored[2][QUARANTINE_COLUMNS.index("reason")])
    _, receipt = erase(ws.privacy, "u-ada", at=T0)
    assert receipt.deleted["quarantine"] == 1
    assert NEW_EMAIL not in str(rows(ws.store))


class Receiver:
    """A real local HTTP server recording the bodies POSTed to it."""

    def __init__(self) -> None:
        bodies: list[dict[str, Any]] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                bodies.append(orjson.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.bodies = bodies
        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.server.shutdown()
    found.server.server_close()


def queue_webhooks(ws: Workspace, url: str) -> WebhookOutbox:
    outbox = WebhookOutbox(ws.store, {"crm": WebhookDef(url=url)})
    Membership(ws).refresh(T0)
    assert outbox.enqueue_new(T0) > 0
    return outbox


def test_queued_webhooks_are_sealed_and_an_erased_persons_are_dropped(
    sealed_ws: Workspace, receiver: Receiver
) -> None:
    ws = sealed_ws
    outbox = queue_webhooks(ws, receiver.url)
    ada, bob = resolve_person(ws.store, "u-ada"), resolve_person(ws.store, "u-bob")
    columns = "webhook, payload, status, attempts, next_attempt_at, last_error, created_at"
    backup = ws.store.fetchall(f"SELECT {columns} FROM webhook_outbox ORDER BY id")  # noqa: S608
    assert all(is_sealed(r[1]) for r in backup)
    assert all(ada not in r[1][40:] and "segment." not in r[1] for r in backup)
    hers = sum(r[1].startswith(f"enc:{ada}:") for r in backup)
    assert hers and hers < len(backup)
    _, receipt = erase(ws.privacy, "u-ada", at=T0)
    assert receipt.deleted["webhook_outbox"] == hers
    # a backup restored: her rows are dropped at delivery, Bob's go out opened
    ws.store.execute("DELETE FROM webhook_outbox")
    insert_rows(ws.store, "webhook_outbox", tuple(columns.split(", ")), backup)
    dispatcher = WebhookDispatcher(ws.store, outbox.webhooks, secrets={"crm": b"k"})
    try:
        report = dispatcher.deliver_due(T0)
    finally:
        dispatcher.close()
    assert (report.delivered, report.dropped, report.dead) == (len(backup) - hers, hers, 0)
    assert {b["profile_id"] for b in receiver.bodies} == {bob}
    statuses = ws.store.fetchall(
        "SELECT status, last_error FROM webhook_outbox WHERE status = 'dropped'"
    )
    assert len(statuses) == hers and all("erased" in e for _, e in statuses)
    assert outbox_status(ws.store)["webhooks"]["crm"]["dropped"] == hers


def test_a_sealed_webhook_waits_for_a_missing_master_key(
    sealed_ws: Workspace, receiver: Receiver
) -> None:
    outbox = queue_webhooks(sealed_ws, receiver.url)
    plain = Workspace(path=sealed_ws.path, definition=sealed_ws.definition, _store=sealed_ws.store)
    sealed_ws.store.privacy = plain.privacy  # type: ignore[attr-defined]
    plain.privacy.keyring = None  # as if the key file were not deployed
    dispatcher = WebhookDispatcher(sealed_ws.store, outbox.webhooks, secrets={"crm": b"k"})
    try:
        report = dispatcher.deliver_due(T0)
    finally:
        dispatcher.close()
    assert report.retried > 0 and report.delivered == report.dropped == report.dead == 0
    errors = {e for (e,) in sealed_ws.store.fetchall("SELECT last_error FROM webhook_outbox")}
    assert all("master key" in e for e in errors)
    with pytest.raises(MasterKeyError, match="SEGMINT_MASTER_KEY"):
        quarantine_people(sealed_ws)
        Intake(plain).replay()


identities = st.lists(
    st.tuples(st.sampled_from(["user_id", "anonymous_id", "email"]),
              st.text("abc@.x", min_size=1, max_size=6)),
    min_size=1, max_size=4, unique=True,
)  # fmt: skip


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(found=identities, gone=st.integers(min_value=0))
def test_destroying_any_one_subject_key_makes_a_payload_unreadable(
    sealed_duck: Workspace, found: list[tuple[str, str]], gone: int
) -> None:
    privacy = sealed_duck.privacy
    text = orjson.dumps({"found": found}).decode()
    sealed, listed = seal(privacy, text, found, T0.date())
    privacy.flush()
    names = subject_names(privacy, found)
    assert listed == " ".join(names) and open_sealed(privacy, sealed) == text
    assert privacy.keyring is not None
    privacy.keyring.destroy([names[gone % len(names)]])
    with pytest.raises(ErasedProfileError):
        open_sealed(privacy, sealed)


def test_payload_identities_reads_what_the_resolver_reads() -> None:
    payload = {"userId": 7, "anonymousId": "a1", "context": {"traits": {"email": " X@Y.z "}},
               "properties": {"email": "x@y.z"}, "traits": "not an object"}  # fmt: skip
    assert payload_identities(payload) == [("user_id", "7"), ("anonymous_id", "a1"),
                                           ("email", "x@y.z")]  # fmt: skip
    assert payload_identities("not json") == []
    assert day_key(T0.date()) == "s_day_20260301"
