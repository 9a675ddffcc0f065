from __future__ import annotations

import pytest

from segmint.intake.errors import ApiKeyError, RevokedKey, UnknownKey
from segmint.intake.keys import create_key, hash_key, list_keys, revoke_key, verify_key
from segmint.workspace import Workspace

from .conftest import NOW


def test_keys_are_stored_hashed_and_verified(ws: Workspace) -> None:
    key, secret = create_key(ws.store, "web", now=NOW)
    assert secret.startswith("sgm_") and len(secret) > 40
    stored = ws.store.fetchall("SELECT key_hash, scopes FROM api_keys")
    assert stored == [(hash_key(secret), "write")]
    assert secret not in str(ws.store.fetchall("SELECT * FROM api_keys"))
    assert verify_key(ws.store, secret) == key
    with pytest.raises(UnknownKey):
        verify_key(ws.store, secret + "x")


def test_revoked_keys_stop_working(ws: Workspace) -> None:
    key, secret = create_key(ws.store, "web", now=NOW)
    revoked = revoke_key(ws.store, "web", now=NOW)
    assert revoked.key_id == key.key_id and revoked.revoked_at == NOW
    with pytest.raises(RevokedKey):
        verify_key(ws.store, secret)
    with pytest.raises(UnknownKey):
        revoke_key(ws.store, "web", now=NOW)  # no live key by that name any more


def test_scopes_and_listing(ws: Workspace) -> None:
    w, _ = create_key(ws.store, "web", now=NOW)
    r, _ = create_key(ws.store, "dash", scopes=("read",), now=NOW)
    assert w.allows("write") and not w.allows("read")
    assert r.allows("read") and not r.allows("write")
    assert {k.key_id for k in list_keys(ws.store)} == {w.key_id, r.key_id}
    with pytest.raises(ApiKeyError):
        create_key(ws.store, "x", scopes=("owner",), now=NOW)
    a, _ = create_key(ws.store, "ops", scopes=("admin",), now=NOW)
    assert a.allows("admin") and a.allows("read") and not a.allows("write")
    with pytest.raises(ApiKeyError):
        create_key(ws.store, "  ", now=NOW)
