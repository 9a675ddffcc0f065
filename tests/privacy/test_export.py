"""Export: everything held on a person, complete against a known fixture, with a manifest."""

from __future__ import annotations

import hashlib
import json

import orjson

from segmint.deliver.consent import record_consent
from segmint.intake.identity import resolve_person
from segmint.membership.service import Membership
from segmint.privacy import audit
from segmint.privacy.export import SECTIONS, export_person
from segmint.workspace import Workspace

from .conftest import ADA, T0


def test_export_is_complete_against_the_fixture(sealed_ws: Workspace) -> None:
    ws = sealed_ws
    Membership(ws).refresh(T0)
    ada = resolve_person(ws.store, "u-ada")
    record_consent(ws.store, ada, "newsletter", "granted", source="test", at=T0)
    ws.store.execute(
        "INSERT INTO sends (send_key, campaign, profile_id, address, status, attempts, "
        "created_at, updated_at) VALUES (?, 'welcome', ?, 'ada@example.com', 'sent', 1, ?, ?)",
        [f"welcome:{ada}", ada, T0.replace(tzinfo=None), T0.replace(tzinfo=None)],
    )
    doc = export_person(ws.privacy, "ada@example.com", at=T0)

    assert {e["message_id"] for e in doc["events"]} == {
        "m-anon2", "m-anon", "m-ada-id", "m-ada-order", "m-ada-id2"
    }  # fmt: skip
    assert len(doc["profiles"]) == 2  # hers and the anonymous one merged into it
    by_id = {e["message_id"]: e for e in doc["events"]}
    assert by_id["m-ada-id"]["traits"] == ADA  # opened, not sealed
    assert by_id["m-anon2"]["properties"]["email"] == ADA["email"]  # the merged profile's key
    assert by_id["m-ada-order"]["properties"]["address"] == "1 Analytical St"
    assert doc["traits"]["email"] == ADA["email"] and doc["traits"]["orders"] == 1
    kinds = {i["kind"] for i in doc["identities"]}
    assert kinds == {"user_id", "anonymous_id", "email"}
    assert [c["topic"] for c in doc["consents"]] == ["newsletter"]
    assert [s["campaign"] for s in doc["sends"]] == ["welcome"]
    assert {m["segment"] for m in doc["memberships"]} == {
        c["segment"] for c in doc["membership_changes"] if c["change"] == "enter"
    }
    assert all(c["cause"] is not None for c in doc["membership_changes"])
    # nothing of Bob's
    assert "bob" not in json.dumps(doc, default=str).lower()
    # the manifest names every section with its row count and digest
    manifest = doc["manifest"]
    assert set(manifest["sections"]) == set(SECTIONS) | {"traits", "quarantine"}
    for name, entry in manifest["sections"].items():
        body = orjson.dumps(doc[name], option=orjson.OPT_SORT_KEYS, default=str)
        assert entry["sha256"] == hashlib.sha256(body).hexdigest(), name
    assert manifest["sections"]["events"]["rows"] == 5
    assert audit.entries(ws.store)[-1].action == "privacy.export"


def test_cli_export_and_erase(sealed_duck: Workspace, cli, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = str(sealed_duck.path)
    sealed_duck.close()
    out = tmp_path / "ada.json"
    done = cli("--workspace", path, "privacy", "export", "ADA@example.com", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert json.loads(out.read_text())["manifest"]["sections"]["events"]["rows"] == 5
    typo = cli("--workspace", path, "privacy", "erase", "ada@exmple.com", "--yes")
    assert typo.returncode != 0 and "ada@exmple.com" in typo.stderr
    receipt = tmp_path / "receipt.json"
    done = cli("--workspace", path, "privacy", "erase", "ada@example.com", "--yes",
               "--receipt", str(receipt), "--format", "json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["keys_destroyed"] == 2 and data["crypto_shredded"] is True
    assert json.loads(receipt.read_text())["receipt_id"] == data["receipt_id"]
    again = cli("--workspace", path, "privacy", "erase", "ada@example.com", "--yes")
    assert again.returncode != 0 and "was erased on" in again.stderr
    assert data["receipt_id"] in again.stderr
    verified = cli("--workspace", path, "audit", "verify", "--format", "json")
    actions = cli("--workspace", path, "audit", "list", "--format", "json")
    assert json.loads(verified.stdout)["ok"] is True
    assert [a["action"] for a in json.loads(actions.stdout)] == [
        "privacy.export", "privacy.erase"
    ]  # fmt: skip
