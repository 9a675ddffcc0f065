"""Sealing what was stored before encryption was enabled: complete, idempotent, resumable."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from segmint.config.model import WebhookDef
from segmint.deliver.ledger import claim_many
from segmint.intake.identity import resolve_person
from segmint.intake.quarantine import list_quarantine
from segmint.membership.service import Membership
from segmint.membership.webhooks import WebhookOutbox
from segmint.privacy.erase import erase
from segmint.privacy.errors import MasterKeyError
from segmint.privacy.export import export_person
from segmint.privacy.keys import generate_master_key, write_key_file
from segmint.privacy.reseal import CURSOR, seal_existing
from segmint.store import read_meta
from segmint.workspace import Workspace

from .conftest import ADA, T0, submit_people
from .test_quarantine_sealed import NEW_EMAIL, quarantine_people

TABLES = ("events", "trait_values", "identities", "quarantine", "webhook_outbox", "sends")


def plaintext_workspace(ws: Workspace) -> None:
    """Ada and Bob, a quarantine, a queued webhook and a send, all stored in the clear."""
    outbox = WebhookOutbox(ws.store, {"crm": WebhookDef(url="http://127.0.0.1:9/")})
    submit_people(ws)
    Membership(ws).refresh(T0)
    assert outbox.enqueue_new(T0) > 0
    quarantine_people(ws)
    ada = resolve_person(ws.store, "u-ada")
    claim_many(ws.store, [("welcome", ada, "newsletter", 0, "ada@example.com", "m-1")], T0)
    assert not ws.privacy.encrypting


def with_key(ws: Workspace) -> Workspace:
    """The same workspace and store, reopened with a master key file."""
    write_key_file(ws.path / ".segmint-keys", generate_master_key())
    if ws.store.dialect == "duckdb":
        ws.close()
        return Workspace.open(ws.path)
    keyed = Workspace(path=ws.path, definition=ws.definition, _store=ws.store)
    ws.store.privacy = keyed.privacy  # type: ignore[attr-defined]
    return keyed


def dump(ws: Workspace) -> str:
    """Every row of the tables that held personal data, as one lower-case text."""
    rows: list[Any] = []
    for table in TABLES:
        rows += ws.store.fetchall(f"SELECT * FROM {table}")  # noqa: S608
    return " ".join(str(c) for row in rows for c in row).lower()


def test_seal_existing_seals_everything_and_keeps_it_readable(ws: Workspace) -> None:
    plaintext_workspace(ws)
    before = dump(ws)
    assert ADA["phone"].lower() in before and NEW_EMAIL in before
    keyed = with_key(ws)
    try:
        report = seal_existing(keyed.privacy, batch=3)
        assert all(report.sealed[t] > 0 for t in TABLES), report
        assert report.conflicts == 0
        text = dump(keyed)
        for value in (*ADA.values(), NEW_EMAIL):
            assert value.lower() not in text, value
        # still readable through the read edges, and found by email
        assert resolve_person(keyed.store, " ADA@example.com") == resolve_person(
            keyed.store, "u-ada"
        )
        document = export_person(keyed.privacy, "ada@example.com", at=T0)
        assert ADA["phone"] in orjson.dumps(document).decode()
        held = {i.message_id: i for i in list_quarantine(keyed.store)}
        assert held["q-ada"].payload["traits"]["email"] == NEW_EMAIL
        # idempotent: nothing left to seal
        again = seal_existing(keyed.privacy)
        assert set(again.sealed.values()) == {0}
        # and erasure reaches what was sealed late
        _, receipt = erase(keyed.privacy, "u-ada", at=T0)
        assert receipt.deleted["quarantine"] == 1 and receipt.keys_destroyed >= 2
    finally:
        keyed.close()


def test_a_stopped_run_resumes_where_it_stopped(ws: Workspace) -> None:
    plaintext_workspace(ws)
    keyed = with_key(ws)
    calls: list[tuple[str, int, int]] = []

    def stop_after_two(name: str, done: int, total: int) -> None:
        calls.append((name, done, total))
        if len(calls) == 2:
            raise KeyboardInterrupt

    try:
        with pytest.raises(KeyboardInterrupt):
            seal_existing(keyed.privacy, batch=2, progress=stop_after_two)
        n = keyed.store.fetchall("SELECT count(*) FROM events")[0][0]
        assert calls == [("events", 2, n), ("events", 4, n)]
        stopped_at = int(read_meta(keyed.store, CURSOR) or 0)
        assert stopped_at > 0
        seen: list[tuple[str, int, int]] = []
        report = seal_existing(keyed.privacy, batch=2, progress=lambda *a: seen.append(a))
        assert seen[0] == ("events", 2, n - 4)  # the 4 done before are not read again
        assert ADA["email"].lower() not in dump(keyed)
        assert report.sealed["identities"] > 0
    finally:
        keyed.close()


def test_seal_existing_needs_a_key(ws: Workspace) -> None:
    with pytest.raises(MasterKeyError, match="privacy enable"):
        seal_existing(ws.privacy)


def test_enable_then_seal_existing_from_the_cli(workspace: Workspace, cli: Any) -> None:
    submit_people(workspace)
    workspace.close()
    path = str(workspace.path)
    enabled = cli("-w", path, "privacy", "enable")
    assert "privacy seal-existing" in enabled.stdout
    out = cli("-w", path, "privacy", "seal-existing", "--format", "json")
    assert out.returncode == 0, out
    report = orjson.loads(out.stdout)
    assert report["sealed"]["events"] == 5 and report["identity_conflicts"] == 0
    table = cli("-w", path, "privacy", "seal-existing")
    assert table.returncode == 0 and "events" in table.stdout


def test_many_rows_are_sealed_in_one_statement_a_batch(ws: Workspace) -> None:
    """Batches above a few rows take the set-based path (one ``UPDATE … FROM`` on DuckDB):
    every value sealed, and each row keeps its own (not a neighbour's)."""
    from segmint.intake.pipeline import Intake

    people = [
        {"type": "identify", "userId": f"u{i}", "messageId": f"id-{i}",
         "timestamp": T0.isoformat(), "traits": {"email": f"person{i}@example.com"}}
        for i in range(40)
    ]  # fmt: skip
    Intake(ws).submit(people, source="test", received_at=T0)
    keyed = with_key(ws)
    try:
        report = seal_existing(keyed.privacy, batch=25)
        assert report.sealed["events"] == 40
        text = dump(keyed)
        assert not any(f"person{i}@example.com" in text for i in range(40))
        for i in (0, 17, 39):
            document = export_person(keyed.privacy, f"u{i}", at=T0)
            assert f"person{i}@example.com" in orjson.dumps(document).decode()
    finally:
        keyed.close()
