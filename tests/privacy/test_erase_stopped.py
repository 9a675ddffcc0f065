"""An erasure stopped between the store's commit and the vault's delete leaves no key behind.

The fault is injected where a crash or a kill would land: the store has committed the
deletion and the receipt, and the vault has not yet deleted the person's keys. The next
erasure, the next opening of the workspace's vault, or erasing the same person again
destroys them.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from segmint.intake.identity import resolve_person
from segmint.privacy.erase import erase, subjects_of
from segmint.privacy.erased import person_profiles
from segmint.privacy.keys import VAULT_FILE, Vault
from segmint.workspace import Workspace

from .conftest import T0, open_ws
from .test_quarantine_sealed import quarantine_people


class Stopped(Exception):
    """The process stopping right after the erasure's store transaction committed."""


def _held(ws: Workspace, names: list[str]) -> set[str]:
    """Which of the data keys ``names`` the vault file holds (read on a connection of its own)."""
    vault = Vault(ws.path / ".segmint-keys" / VAULT_FILE)
    try:
        return set(vault.wrapped("profile_keys", names))
    finally:
        vault.close()


@pytest.fixture
def half_erased(
    sealed_ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Workspace, list[str]]]:
    """Ada erased by a process that stopped before the vault deleted her keys; her keys
    (her profiles' and the subject keys her quarantined identify is sealed under)."""
    ws = sealed_ws
    quarantine_people(ws)
    profiles = person_profiles(ws.store, resolve_person(ws.store, "u-ada"))
    subjects = [s for s in subjects_of(ws.privacy, profiles) if s.startswith("s_")]
    ada = sorted(_held(ws, [*profiles, *subjects]))  # the subject keys that exist
    assert set(profiles) < set(ada) and ws.privacy.keyring is not None

    def stop(*_: object) -> int:
        raise Stopped

    with monkeypatch.context() as patch:
        patch.setattr(ws.privacy.keyring.vault, "delete", stop)
        with pytest.raises(Stopped):
            erase(ws.privacy, "u-ada", at=T0)
    assert ws.store.fetchall("SELECT count(*) FROM erasure_receipts")[0][0] == 1
    assert _held(ws, ada) == set(ada)  # the fault landed between the two steps
    yield ws, ada


def test_the_next_erasure_destroys_the_keys_a_stopped_one_left(
    half_erased: tuple[Workspace, list[str]],
) -> None:
    ws, ada = half_erased
    bob = resolve_person(ws.store, "u-bob")
    _, receipt = erase(ws.privacy, "u-bob", at=T0)
    assert _held(ws, [*ada, bob]) == set()
    stored = {}  # the receipts kept count the keys destroyed, whenever they went
    for receipt_id, raw in ws.store.fetchall("SELECT receipt_id, receipt FROM erasure_receipts"):
        stored[receipt_id] = (json.loads(raw) if isinstance(raw, str) else raw)["keys_destroyed"]
    assert stored.pop(receipt.receipt_id) == receipt.keys_destroyed > 0
    assert list(stored.values()) == [len(ada)]


def test_opening_the_vault_again_destroys_the_keys_a_stopped_erasure_left(
    half_erased: tuple[Workspace, list[str]],
) -> None:
    ws, ada = half_erased
    bob = resolve_person(ws.store, "u-bob")
    shared = None if ws.store.dialect == "duckdb" else ws.store
    if shared is None:
        ws.close()  # a later process: its own connection to the DuckDB file
    again = open_ws(ws.path, shared)
    try:
        assert again.privacy.keyring is not None
        assert _held(again, [*ada, bob]) == {bob}  # Bob, never erased, keeps his
    finally:
        again.privacy.close()
        if shared is None:
            again.close()


def test_erasing_the_same_person_again_says_so_and_destroys_the_keys(
    half_erased: tuple[Workspace, list[str]],
    cli: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ws, ada = half_erased
    if ws.store.dialect == "postgres":
        from tests.conftest import POSTGRES_URL, schema_url

        monkeypatch.setenv("SEGMINT_DATABASE_URL",
                           schema_url(POSTGRES_URL, ws.store._schema))  # type: ignore[attr-defined]  # fmt: skip
    else:
        ws.close()  # the CLI opens the DuckDB file itself
    receipt = ws.path / "receipt.json"  # the stopped run never wrote the one it was asked
    done = cli("-w", str(ws.path), "privacy", "erase", "u-ada", "--yes", "--receipt",
               str(receipt), "--as-of", "2026-03-02T00:00:00Z")  # fmt: skip
    assert done.returncode == 1
    assert "'u-ada' was erased on 2026-03-01 12:00 UTC" in done.stderr
    assert f"stopped before its keys were destroyed: {len(ada)} keys destroyed now" in done.stderr
    assert _held(ws, ada) == set()
    kept = json.loads(receipt.read_text())  # that erasure's receipt, its keys counted
    assert f"(receipt {kept['receipt_id']})" in done.stderr and f"wrote {receipt}" in done.stderr
    assert kept["keys_destroyed"] == len(ada) and kept["profile_id"] in ada


def test_the_api_erasing_the_same_person_again_destroys_the_keys(
    sealed_ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server's erasure whose vault delete failed: asking again answers 'erased' (404)
    and destroys the keys, without waiting for another person's erasure or a restart."""
    import httpx

    from segmint.api import create_app
    from segmint.clock import FixedClock
    from segmint.intake.keys import create_key

    from .test_api import _server

    ws = sealed_ws
    ada = person_profiles(ws.store, resolve_person(ws.store, "u-ada"))
    _, admin = create_key(ws.store, "dpo", scopes=("admin",), now=T0)
    assert ws.privacy.keyring is not None

    def stop(*_: object) -> int:
        raise Stopped

    body = {"person": "u-ada"}
    with _server.ThreadServer(create_app(ws, FixedClock(T0))) as server:
        url = f"http://127.0.0.1:{server.port}/v1/privacy/erase"
        with monkeypatch.context() as patch, contextlib.suppress(httpx.TransportError):
            patch.setattr(ws.privacy.keyring.vault, "delete", stop)
            # an unexpected error: a 500, or the connection dropped
            assert httpx.post(url, json=body, auth=(admin, ""), timeout=30).is_error
        assert _held(ws, ada) == set(ada)
        again = httpx.post(url, json=body, auth=(admin, ""), timeout=30)
        assert again.status_code == 404 and "was erased on" in again.json()["error"]["message"]
    assert _held(ws, ada) == set()
