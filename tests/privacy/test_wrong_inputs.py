"""Privacy and quarantine commands fed the wrong things: each answer says what to do."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from segmint.intake.errors import UnknownPersonError
from segmint.privacy.erase import erase
from segmint.privacy.errors import MasterKeyError
from segmint.privacy.export import export_person
from segmint.privacy.keys import KEY_FILE, generate_master_key
from segmint.workspace import Workspace

from .conftest import T0
from .test_quarantine_sealed import quarantine_people

Cli = Callable[..., Any]  # tests/conftest.py's ``cli`` fixture (a CliResult)


def hide_key(ws: Workspace) -> Path:
    """Move the key file away (as on a machine it was not deployed to); return where."""
    key = ws.path / ".segmint-keys" / KEY_FILE
    away = ws.path / "master.key.away"
    key.rename(away)
    return away


def test_erasing_twice_says_when_and_names_the_receipt(sealed_duck: Workspace, cli: Cli) -> None:
    _, receipt = erase(sealed_duck.privacy, "u-ada", at=T0)
    for ref in ("u-ada", " ADA@example.com", "email:ada@example.com"):
        with pytest.raises(UnknownPersonError, match=f"was erased on .*{receipt.receipt_id}"):
            erase(sealed_duck.privacy, ref, at=T0)
    with pytest.raises(UnknownPersonError, match="was erased on"):
        export_person(sealed_duck.privacy, "u-ada", at=T0)
    with pytest.raises(UnknownPersonError, match="no person matches 'u-nobody'"):
        erase(sealed_duck.privacy, "u-nobody", at=T0)  # never known: the usual message
    sealed_duck.close()
    out = cli("-w", str(sealed_duck.path), "privacy", "erase", "u-ada", "--yes")
    assert out.returncode == 1 and receipt.receipt_id in out.stderr
    for command in (("profile", "show"), ("consent", "show")):  # not "nobody"
        shown = cli("-w", str(sealed_duck.path), *command, "u-ada")
        assert shown.returncode == 1 and "was erased on" in shown.stderr, command
        assert receipt.receipt_id in shown.stderr


def test_without_the_master_key_erase_and_export_refuse(sealed_duck: Workspace, cli: Cli) -> None:
    sealed_duck.close()
    hide_key(sealed_duck)
    plain = Workspace.open(sealed_duck.path)
    try:
        for action in (lambda: erase(plain.privacy, "u-bob", at=T0),
                       lambda: export_person(plain.privacy, "u-bob", at=T0)):  # fmt: skip
            with pytest.raises(MasterKeyError, match="needs the master key"):
                action()
    finally:
        plain.close()
    for args in (("erase", "u-bob", "--yes"), ("export", "u-bob")):
        out = cli("-w", str(sealed_duck.path), "privacy", *args)
        assert out.returncode == 1 and "SEGMINT_MASTER_KEY" in out.stderr, out
    # nothing was erased meanwhile
    again = Workspace.open(sealed_duck.path)
    assert again.store.fetchall("SELECT count(*) FROM erasure_receipts")[0][0] == 0
    again.close()


def test_quarantine_commands_without_or_with_a_wrong_master_key(
    sealed_duck: Workspace, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    quarantine_people(sealed_duck)
    sealed_duck.close()
    ws = str(sealed_duck.path)
    hide_key(sealed_duck)
    listed = cli("-w", ws, "quarantine", "list")
    assert listed.returncode == 0 and "3 payloads cannot be read (no key)" in listed.stdout
    shown = cli("-w", ws, "quarantine", "show", "1")
    assert shown.returncode == 0 and "[sealed]" in shown.stdout
    replay = cli("-w", ws, "quarantine", "replay")
    assert replay.returncode == 1 and "no master key is configured" in replay.stderr
    monkeypatch.setenv("SEGMINT_MASTER_KEY", generate_master_key())
    wrong = cli("-w", ws, "quarantine", "list")
    assert wrong.returncode == 1 and "does not open the key vault" in wrong.stderr


def test_quarantine_show_and_replay_name_bad_ids(sealed_duck: Workspace, cli: Cli) -> None:
    quarantine_people(sealed_duck)
    sealed_duck.close()
    ws = str(sealed_duck.path)
    shown = cli("-w", ws, "quarantine", "show", "1", "--format", "json")
    item = orjson.loads(shown.stdout)
    assert item["payload"]["traits"]["name"] == "Ada Lovelace" and item["sealed"] is None
    missing = cli("-w", ws, "quarantine", "show", "99")
    assert missing.returncode == 2 and "ids run from 1 to 3" in missing.stderr
    stored = orjson.loads(cli("-w", ws, "quarantine", "replay", "--format", "json").stdout)
    assert stored == {"stored": 1, "duplicates": 0, "still_held": 2, "unreadable": 0}
    again = cli("-w", ws, "quarantine", "replay", "--id", "3", "--id", "99")
    assert again.returncode == 2
    assert "3 was already replayed" in again.stderr and "99 is no quarantined" in again.stderr


def test_an_email_typed_as_a_user_id_is_pointed_at_without_its_hash(
    sealed_ws: Workspace,
) -> None:
    with pytest.raises(UnknownPersonError) as caught:
        erase(sealed_ws.privacy, "user_id:BOB@example.org", at=T0)
    message = str(caught.value)
    assert "'email:bob@example.org' matches" in message and "bi:" not in message


def test_intake_refuses_to_store_in_the_clear_in_a_sealed_workspace(
    sealed_duck: Workspace,
) -> None:
    from segmint.intake.pipeline import Intake

    sealed_duck.close()
    hide_key(sealed_duck)  # the server started without its key
    plain = Workspace.open(sealed_duck.path)
    message = {"type": "identify", "userId": "u-eve", "traits": {"email": "eve@example.com"},
               "timestamp": T0.isoformat(), "messageId": "m-eve"}  # fmt: skip
    try:
        with pytest.raises(MasterKeyError, match="storing input needs the master key"):
            Intake(plain).submit([message], source="test", received_at=T0)
        assert "eve@example.com" not in str(plain.store.fetchall("SELECT * FROM events"))
    finally:
        plain.close()


def test_quarantine_purge_from_the_cli(sealed_duck: Workspace, cli: Cli) -> None:
    quarantine_people(sealed_duck)
    sealed_duck.close()
    ws = str(sealed_duck.path)
    bad = cli("-w", ws, "quarantine", "purge", "--before", "last tuesday", "--yes")
    assert bad.returncode == 2 and "--before" in bad.stderr
    out = cli("-w", ws, "quarantine", "purge", "--before", "2026-03-02", "--yes",
              "--format", "json")  # fmt: skip
    assert orjson.loads(out.stdout) == {"deleted": 3, "day_keys_destroyed": 1}
    listed = cli("-w", ws, "quarantine", "list", "--all", "--format", "json")
    assert orjson.loads(listed.stdout) == []
