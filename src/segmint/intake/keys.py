"""API keys: created once, stored hashed, listed, revoked, scoped.

A key is ``sgm_`` followed by 43 random URL-safe characters (256 bits). Only its SHA-256
is stored (a salted slow hash adds nothing for a secret of that entropy). The plain key is
shown once, at creation. Scopes: ``write`` (send events) and ``read`` (management reads);
a write key cannot read anything.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from segmint.intake.errors import ApiKeyError, RevokedKey, UnknownKey
from segmint.store import Store, from_store_time, utcnow_naive

SCOPES = ("write", "read")
PREFIX = "sgm_"


@dataclass(frozen=True)
class ApiKey:
    """A stored key, without its secret.

    Attributes:
        key_id: The public id, for listing and revoking.
        name: The name given at creation; events sent with the key carry it as their source.
        scopes: What the key may do.
        created_at: When it was created.
        revoked_at: When it was revoked, or None while it works.
    """

    key_id: str
    name: str
    scopes: tuple[str, ...]
    created_at: datetime
    revoked_at: datetime | None = None

    def allows(self, scope: str) -> bool:
        """Whether the key carries ``scope``."""
        return scope in self.scopes


def hash_key(secret: str) -> str:
    """The stored form of a key."""
    return hashlib.sha256(secret.encode()).hexdigest()


def create_key(
    store: Store, name: str, *, scopes: Sequence[str] = ("write",), now: datetime
) -> tuple[ApiKey, str]:
    """Create a key and return it with its secret (shown once, never stored).

    Raises:
        ApiKeyError: For an empty name or an unknown scope.
    """
    if not name.strip():
        raise ApiKeyError("a key needs a name, such as 'web' or 'backend'")
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown or not scopes:
        raise ApiKeyError(f"unknown scope {unknown or scopes!r}: use {' or '.join(SCOPES)}")
    secret = PREFIX + secrets.token_urlsafe(32)
    key = ApiKey("key_" + secrets.token_hex(6), name.strip(), tuple(dict.fromkeys(scopes)), now)
    store.execute(
        "INSERT INTO api_keys (key_id, name, key_hash, scopes, created_at) VALUES (?, ?, ?, ?, ?)",
        [key.key_id, key.name, hash_key(secret), ",".join(key.scopes), utcnow_naive(now)],
    )
    return key, secret


def list_keys(store: Store, *, include_revoked: bool = True) -> list[ApiKey]:
    """Return the keys, oldest first."""
    sql = "SELECT key_id, name, scopes, created_at, revoked_at FROM api_keys"
    if not include_revoked:
        sql += " WHERE revoked_at IS NULL"
    return [_key(row) for row in store.fetchall(sql + " ORDER BY created_at, key_id")]


def revoke_key(store: Store, key_id_or_name: str, *, now: datetime) -> ApiKey:
    """Revoke the key with that id (or that name, when only one live key has it).

    Raises:
        UnknownKey: When no key, or more than one live key by that name, matches.
    """
    matches = [k for k in list_keys(store) if k.key_id == key_id_or_name]
    if not matches:
        matches = [k for k in list_keys(store, include_revoked=False) if k.name == key_id_or_name]
    if len(matches) != 1:
        found = "no key" if not matches else f"{len(matches)} keys"
        raise UnknownKey(f"{found} named {key_id_or_name!r}; give the key id from 'keys list'")
    store.execute(
        "UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL",
        [utcnow_naive(now), matches[0].key_id],
    )
    return _key(
        store.fetchall(
            "SELECT key_id, name, scopes, created_at, revoked_at FROM api_keys WHERE key_id = ?",
            [matches[0].key_id],
        )[0]
    )


def verify_key(store: Store, secret: str) -> ApiKey:
    """Return the live key whose secret is ``secret``.

    Raises:
        UnknownKey: No key has that secret.
        RevokedKey: The key was revoked.
    """
    rows = store.fetchall(
        "SELECT key_id, name, scopes, created_at, revoked_at FROM api_keys WHERE key_hash = ?",
        [hash_key(secret)],
    )
    if not rows:
        raise UnknownKey("unknown API key")
    key = _key(rows[0])
    if key.revoked_at is not None:
        raise RevokedKey(f"API key {key.key_id} ({key.name}) was revoked")
    return key


def _key(row: tuple[Any, ...]) -> ApiKey:
    key_id, name, scopes, created, revoked = row
    created_at = from_store_time(created)
    assert created_at is not None
    return ApiKey(key_id, name, tuple(s for s in scopes.split(",") if s), created_at,
                  from_store_time(revoked))  # fmt: skip
