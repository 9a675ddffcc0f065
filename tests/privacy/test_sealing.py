"""PII sealed at rest: what the store holds, what readers see, lookups by email."""

from __future__ import annotations

import orjson
import pytest

from segmint.intake.identity import resolve_person
from segmint.membership.service import Membership
from segmint.privacy.errors import MasterKeyError
from segmint.privacy.keys import generate_master_key, write_key_file
from segmint.privacy.protect import truncate_ip
from segmint.profiles import load_profile
from segmint.workspace import Workspace

from .conftest import ADA, T0


def dump(ws: Workspace) -> str:
    """Every text cell of every table the person's data can reach, as one string."""
    store = ws.store
    parts = []
    for table in ("events", "identities", "trait_values", "profiles", "quarantine"):
        for row in store.fetchall(f"SELECT * FROM {table}"):  # noqa: S608
            parts.append(" ".join(str(v) for v in row))
    return "\n".join(parts).lower()


def test_pii_is_sealed_in_the_store_and_open_for_readers(sealed_ws: Workspace) -> None:
    Membership(sealed_ws).refresh(T0)
    text = dump(sealed_ws)
    for value in (*ADA.values(), "1 analytical st"):
        assert value.lower() not in text, value
    assert "enc:" in text
    ada = resolve_person(sealed_ws.store, "ADA@example.com ", sealed_ws.definition.identifiers)
    assert ada == resolve_person(sealed_ws.store, "u-ada", sealed_ws.definition.identifiers)
    profile = load_profile(sealed_ws.store, ada)
    assert profile is not None
    assert profile.traits["email"] == ADA["email"]
    assert profile.traits["phone"] == ADA["phone"]
    # non-PII traits are computed as before
    assert profile.traits["orders"] == 1
    assert profile.traits["lifetime_value"] == 120


def test_ip_addresses_are_truncated(sealed_ws: Workspace) -> None:
    rows = sealed_ws.store.fetchall("SELECT context FROM events WHERE message_id = 'm-anon'")
    context = orjson.loads(rows[0][0]) if isinstance(rows[0][0], str) else rows[0][0]
    assert context["ip"] == "203.0.113.0"
    assert truncate_ip("2001:db8:85a3:1:2:3:4:5") == "2001:db8:85a3::"
    assert truncate_ip("not an ip") is None


def test_wrong_master_key_is_refused_clearly(sealed_ws: Workspace) -> None:
    sealed_ws.close()
    write_key_file(sealed_ws.path / ".segmint-keys", generate_master_key())
    other = Workspace.open(sealed_ws.path)
    with pytest.raises(MasterKeyError, match="does not open the key vault"):
        _ = other.privacy
    other.close()


def test_without_a_key_nothing_is_sealed(workspace: Workspace) -> None:
    from .conftest import submit_people

    submit_people(workspace)
    assert "ada@example.com" in dump(workspace)
    assert not workspace.privacy.encrypting
    assert not (workspace.path / ".segmint-keys").exists()
