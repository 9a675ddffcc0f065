"""Erasure: crypto-shredding, what is deleted and kept, merges followed, no silent re-adding."""

from __future__ import annotations

import shutil

import orjson
import pytest

from segmint.config.model import WebhookDef
from segmint.deliver.consent import record_address_consent, suppress
from segmint.deliver.ledger import claim_many
from segmint.intake.errors import UnknownPersonError
from segmint.intake.identity import resolve_person
from segmint.intake.pipeline import Intake
from segmint.intake.quarantine import list_quarantine
from segmint.membership.service import Membership
from segmint.membership.webhooks import WebhookOutbox
from segmint.privacy import audit
from segmint.privacy.erase import erase
from segmint.privacy.errors import ErasedProfileError
from segmint.privacy.keys import is_sealed
from segmint.privacy.subjects import is_subject_sealed, open_sealed
from segmint.profiles import load_profile
from segmint.store.duckdb import DuckDBStore
from segmint.workspace import Workspace

from .conftest import ADA, BOB, T0, submit_people
from .test_quarantine_sealed import NEW_EMAIL, quarantine_people


def _sends(ws: Workspace, pid: str) -> None:
    ws.store.execute(
        "INSERT INTO sends (send_key, campaign, profile_id, address, status, attempts, "
        "created_at, updated_at) VALUES (?, 'welcome', ?, ?, 'sent', 1, ?, ?)",
        [f"welcome:{pid}", pid, "ada@example.com", T0.replace(tzinfo=None),
         T0.replace(tzinfo=None)],
    )  # fmt: skip


def test_a_copy_taken_before_erasure_is_unreadable_for_that_person(
    workspace: Workspace, tmp_path: object
) -> None:
    from segmint.privacy.keys import generate_master_key, write_key_file

    write_key_file(workspace.path / ".segmint-keys", generate_master_key())
    ws = Workspace.open(workspace.path)
    submit_people(ws)
    # a queued webhook about her, and a quarantined identify of hers with a new address
    outbox = WebhookOutbox(ws.store, {"crm": WebhookDef(url="http://127.0.0.1:9/")})
    Membership(ws).refresh(T0)
    assert outbox.enqueue_new(T0) > 0
    quarantine_people(ws)
    ada = resolve_person(ws.store, "ada@example.com")
    bob = resolve_person(ws.store, "u-bob")
    # the delivery stage's rows about Ada's address, written the way it writes them
    claim_many(ws.store, [("welcome", ada, "newsletter", 0, "ada@example.com", "m-1")], T0)
    suppress(ws.store, "Ada@Example.com", "complaint", source="test", at=T0)
    record_address_consent(ws.store, "ada@example.com", "*", "denied", source="test", at=T0)
    ws.store.execute("CHECKPOINT")
    backup = ws.path / "backup.duckdb"
    shutil.copy(ws.state_dir / "segmint.duckdb", backup)

    _, receipt = erase(ws.privacy, "ada@example.com", at=T0)
    # the anonymous profile merged into Ada's, hers, and her user id's subject key
    assert receipt.keys_destroyed == 3
    assert receipt.deleted["events"] == 5
    assert receipt.deleted["quarantine"] == 1 and receipt.deleted["webhook_outbox"] > 0

    old = DuckDBStore(backup, read_only=True)
    try:
        ada_cells = old.fetchall(
            "SELECT traits, properties FROM events WHERE profile_id = ?", [ada]
        ) + old.fetchall('SELECT "values", NULL FROM trait_values WHERE profile_id = ?', [ada])
        text = " ".join(str(c) for row in ada_cells for c in row)
        assert "enc:" in text
        for value in ADA.values():
            assert value.lower() not in text.lower()
        # every sealed value of Ada's in the old copy now fails to open
        import orjson

        sealed = [
            v
            for row in ada_cells
            for cell in row
            if cell
            for v in orjson.loads(cell).values()
            if is_sealed(v)
        ]
        assert sealed
        assert {ws.privacy.unseal(v) for v in sealed} == {"[erased]"}
        # Bob in the same old copy still opens: only Ada's keys went
        bob_traits = old.fetchall('SELECT "values" FROM trait_values WHERE profile_id = ?', [bob])
        values = ws.privacy.unseal_values(orjson.loads(bob_traits[0][0]))
        assert values["email"] == BOB["email"]
        # the delivery tables of the old copy: a keyed hash or ciphertext, never the address
        kept = old.fetchall("SELECT address FROM sends") + old.fetchall(
            "SELECT address FROM suppressions UNION ALL SELECT address FROM address_consents"
        )
        assert len(kept) == 3
        assert all("@" not in str(a) for (a,) in kept)
        assert {ws.privacy.unseal(a) for (a,) in kept if is_sealed(a)} == {"[erased]"}
        # her quarantined identify and queued webhooks in the old copy no longer open
        held = dict(old.fetchall("SELECT message_id, payload FROM quarantine"))
        with pytest.raises(ErasedProfileError):
            open_sealed(ws.privacy, held["q-ada"])
        assert "u-bob" in open_sealed(ws.privacy, held["q-bob"])
        queued = [p for (p,) in old.fetchall("SELECT payload FROM webhook_outbox")]
        assert {ws.privacy.unseal(p) for p in queued if p.startswith(f"enc:{ada}:")} == {"[erased]"}
    finally:
        old.close()
    # and no byte of the old file spells her address (whatever table or page held it)
    raw = backup.read_bytes().lower()
    for value in (ADA["email"], ADA["name"], ADA["phone"], NEW_EMAIL):
        assert value.lower().encode() not in raw
    ws.close()


def test_erasure_deletes_anonymises_and_keeps_counts(sealed_ws: Workspace) -> None:
    ws = sealed_ws
    Membership(ws).refresh(T0)
    ada = resolve_person(ws.store, "u-ada")
    _sends(ws, ada)
    root, receipt = erase(ws.privacy, "u-ada", at=T0)
    assert root == ada
    store = ws.store
    for table in ("events", "identities", "trait_values", "memberships", "profiles"):
        rows = store.fetchall(f"SELECT count(*) FROM {table} WHERE profile_id = ?", [ada])  # noqa: S608
        assert rows[0][0] == 0, table
    assert store.fetchall("SELECT count(*) FROM events")[0][0] == 2  # Bob's stay
    sends = store.fetchall("SELECT campaign, profile_id, address, status FROM sends")
    assert sends == [("welcome", "erased", None, "sent")]  # counted, nobody named
    changes = store.fetchall("SELECT count(*) FROM membership_changes WHERE profile_id = ?", [ada])
    assert changes[0][0] == 0
    with pytest.raises(UnknownPersonError):
        resolve_person(store, "ada@example.com")
    assert load_profile(store, ada) is None
    stored = store.fetchall("SELECT receipt FROM erasure_receipts")
    assert receipt.receipt_id in str(stored[0][0])
    assert "ada" not in str(stored[0][0]).lower()
    assert [e.action for e in audit.entries(store)][-1] == "privacy.erase"
    audit.verify(store)


def test_a_later_import_of_an_erased_address_is_held_back(sealed_ws: Workspace) -> None:
    erase(sealed_ws.privacy, "ada@example.com", at=T0)
    again = {"type": "identify", "anonymousId": "crm-7",
             "traits": {"email": " ADA@example.com", "name": "Ada L"},
             "timestamp": T0.isoformat(), "messageId": "m-again"}  # fmt: skip
    result = Intake(sealed_ws).submit([again], source="import:crm", received_at=T0)
    assert (result.accepted, result.quarantined) == (0, 1)
    reason, payload = sealed_ws.store.fetchall("SELECT reason, payload FROM quarantine")[0]
    assert reason.startswith("erased")
    assert is_subject_sealed(payload)  # sealed, and redacted inside as well
    (item,) = list_quarantine(sealed_ws.store)
    assert "ada" not in orjson.dumps(item.payload).decode().lower()
    with pytest.raises(UnknownPersonError):
        resolve_person(sealed_ws.store, "ada@example.com")
    # someone else is not held back
    other = {**again, "anonymousId": "crm-8", "traits": {"email": "cy@example.com"},
             "messageId": "m-cy"}  # fmt: skip
    assert Intake(sealed_ws).submit([other], source="import:crm", received_at=T0).accepted == 1


def test_erasure_without_encryption_still_forgets_and_holds_back(workspace: Workspace) -> None:
    submit_people(workspace)
    assert not workspace.privacy.encrypting
    _, receipt = erase(workspace.privacy, "ada@example.com", at=T0)
    assert receipt.keys_destroyed == 0 and not receipt.encrypted
    assert receipt.deleted["events"] == 5
    text = " ".join(str(r) for r in workspace.store.fetchall("SELECT * FROM events"))
    assert "ada" not in text.lower() and "bob@example.org" in text
    again = {"type": "identify", "userId": "u-ada", "traits": {"name": "Ada"},
             "timestamp": T0.isoformat(), "messageId": "m-back"}  # fmt: skip
    result = Intake(workspace).submit([again], source="import:crm", received_at=T0)
    assert result.quarantined == 1  # held back by her user id's salted hash


def test_a_lookup_beside_a_server_that_finds_nobody_writes_nothing(workspace):
    """``profile show nobody`` while ``segmint serve`` holds the DuckDB file: the check for an
    erased person made the salt of subject hashes (a write the server refuses to readers)
    although no one was ever erased. It now answers "no person matches"."""
    from segmint.intake.errors import UnknownPersonError
    from segmint.privacy.erased import resolve_living
    from segmint.privacy.protect import Privacy
    from segmint.store.duckdb import DuckDBStore
    from segmint.store.shared import connect_shared_reads

    held = DuckDBStore(workspace.path / ".segmint" / "held.duckdb")
    held.share_reads()
    reader = connect_shared_reads(held.path, "the test server")  # as another process reads
    assert reader is not None
    try:
        privacy = Privacy(workspace.path, workspace.definition, reader)
        with pytest.raises(UnknownPersonError, match="no person matches 'nobody'"):
            resolve_living(privacy, "nobody")
        assert not privacy.has_salt()
    finally:
        reader.close()
        held.close()
