"""API keys: created once, stored hashed, listed, revoked, scoped.

A key is ``sgm_`` followed by 43 random URL-safe characters (256 bits). Only its SHA-256
is stored (a salted slow hash adds nothing for a secret of that entropy). The plain key is
shown once, at creation. Scopes: ``write`` (send events), ``read`` (management reads) and
``admin`` (change definitions through the management API and the console; reads too);
a write key cannot read anything.

A key created with allowed origins is a *public* (browser) key: it is meant to be published
in web pages, so it may only write, browsers may use it only from the listed origins (CORS),
and each client IP may send at most :data:`DEFAULT_IP_RATE` requests a second with it unless
the key says otherwise.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from segmint.common import did_you_mean
from segmint.intake.errors import ApiKeyError, RevokedKey, UnknownKey
from segmint.store import Store, from_store_time, utcnow_naive

SCOPES = ("write", "read", "admin")
PREFIX = "sgm_"
DEFAULT_IP_RATE = 50.0
"""Requests per second one client IP may send with a public key (bursts of twice that)."""
_COLUMNS = "key_id, name, scopes, created_at, revoked_at, origins, ip_rate, consent_category"


@dataclass(frozen=True)
class ApiKey:
    """A stored key, without its secret.

    Attributes:
        key_id: The public id, for listing and revoking.
        name: The name given at creation; events sent with the key carry it as their source.
        scopes: What the key may do.
        created_at: When it was created.
        revoked_at: When it was revoked, or None while it works.
        origins: The web origins a browser may send from (``https://shop.example``); a key
            with origins is public.
        ip_rate: Requests per second allowed per client IP for a public key (0: no limit).
        consent_category: The consent category (``Analytics``) that a visitor must not have
            refused for an event sent with this key to be stored, or None.
    """

    key_id: str
    name: str
    scopes: tuple[str, ...]
    created_at: datetime
    revoked_at: datetime | None = None
    origins: tuple[str, ...] = ()
    ip_rate: float = 0.0
    consent_category: str | None = None

    def allows(self, scope: str) -> bool:
        """Whether the key carries ``scope`` (``admin`` carries ``read`` too)."""
        return scope in self.scopes or (scope == "read" and "admin" in self.scopes)

    @property
    def public(self) -> bool:
        """Whether this is a browser key (it has allowed origins)."""
        return bool(self.origins)


def normalize_origin(text: str) -> str:
    """Return ``text`` as a browser writes it in the ``Origin`` header.

    Accepted: ``http://`` or ``https://``, a host and an optional port, nothing after them
    (a trailing ``/`` is dropped). The host is lower-cased and a default port removed.

    Raises:
        ApiKeyError: For anything else, saying what is accepted.
    """
    given = text.strip()
    accepted = "give a scheme, host and optional port, such as 'https://shop.example'"
    if given in ("*", "null") or "*" in given:
        raise ApiKeyError(f"origin {text!r} is not accepted: list each site; {accepted}")
    if "://" not in given:
        raise ApiKeyError(
            f"origin {text!r} has no scheme: did you mean 'https://{given.rstrip('/')}'?"
        )
    parts = urlsplit(given)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        hint = did_you_mean(scheme, ("http", "https")) or "use http or https"
        raise ApiKeyError(f"origin {text!r} has scheme {scheme!r}: {hint}")
    try:
        host, port = parts.hostname or "", parts.port
    except ValueError:
        raise ApiKeyError(f"origin {text!r} has an invalid port; {accepted}") from None
    if not host or parts.username or parts.password or parts.query or parts.fragment:
        raise ApiKeyError(f"origin {text!r} is not an origin; {accepted}")
    if parts.path not in ("", "/"):
        bare = f"{scheme}://{parts.netloc.lower()}"
        raise ApiKeyError(f"origin {text!r} has a path: did you mean {bare!r}?")
    if ":" in host:  # an IPv6 address keeps its brackets
        host = f"[{host}]"
    if port is None or port == {"http": 80, "https": 443}[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def hash_key(secret: str) -> str:
    """The stored form of a key."""
    return hashlib.sha256(secret.encode()).hexdigest()


def create_key(
    store: Store,
    name: str,
    *,
    scopes: Sequence[str] = ("write",),
    now: datetime,
    origins: Sequence[str] = (),
    ip_rate: float | None = None,
    consent_category: str | None = None,
) -> tuple[ApiKey, str]:
    """Create a key and return it with its secret (shown once, never stored).

    Args:
        store: Where keys are kept.
        name: What the key is for; events sent with it carry it as their source.
        scopes: ``write``, ``read`` and/or ``admin``.
        now: The creation instant.
        origins: Web origins a browser may send from; any makes the key public (write only).
        ip_rate: A public key's requests per second per client IP (default
            :data:`DEFAULT_IP_RATE`; 0 for no limit).
        consent_category: Drop events whose consent context refuses this category.

    Raises:
        ApiKeyError: For an empty name, an unknown scope, a bad origin, a public key asked
            to read, or a rate on a key without origins.
    """
    if not name.strip():
        raise ApiKeyError("a key needs a name, such as 'web' or 'backend'")
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown or not scopes:
        raise ApiKeyError(f"unknown scope {unknown or scopes!r}: use {' or '.join(SCOPES)}")
    allowed = tuple(dict.fromkeys(normalize_origin(o) for o in origins))
    rate = _ip_rate(allowed, ip_rate)
    if allowed and ("read" in scopes or "admin" in scopes):
        raise ApiKeyError(
            "a key with origins is public (it is published in web pages) and may only write; "
            "create a separate key with --scope read for reading"
        )
    category = (consent_category or "").strip() or None
    if consent_category is not None and category is None:
        raise ApiKeyError("a consent category needs a name, such as 'Analytics'")
    secret = PREFIX + secrets.token_urlsafe(32)
    key = ApiKey("key_" + secrets.token_hex(6), name.strip(), tuple(dict.fromkeys(scopes)), now,
                 origins=allowed, ip_rate=rate, consent_category=category)  # fmt: skip
    store.execute(
        "INSERT INTO api_keys (key_id, name, scopes, created_at, key_hash, origins, ip_rate, "
        "consent_category) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [key.key_id, key.name, ",".join(key.scopes), utcnow_naive(now), hash_key(secret),
         "\n".join(allowed) or None, rate if allowed else None, category],
    )  # fmt: skip
    return key, secret


def _ip_rate(origins: tuple[str, ...], ip_rate: float | None) -> float:
    if ip_rate is None:
        return DEFAULT_IP_RATE if origins else 0.0
    if not origins:
        raise ApiKeyError("a per-IP rate applies to public keys only: add --origin")
    if not ip_rate >= 0 or ip_rate == float("inf"):
        raise ApiKeyError(f"per-IP rate {ip_rate!r} must be a number of requests/s, 0 for none")
    return float(ip_rate)


def list_keys(store: Store, *, include_revoked: bool = True) -> list[ApiKey]:
    """Return the keys, oldest first."""
    sql = f"SELECT {_COLUMNS} FROM api_keys"
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
            f"SELECT {_COLUMNS} FROM api_keys WHERE key_id = ?",
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
        f"SELECT {_COLUMNS} FROM api_keys WHERE key_hash = ?",
        [hash_key(secret)],
    )
    if not rows:
        raise UnknownKey("unknown API key")
    key = _key(rows[0])
    if key.revoked_at is not None:
        raise RevokedKey(f"API key {key.key_id} ({key.name}) was revoked")
    return key


def allowed_origins(store: Store) -> frozenset[str]:
    """Every origin some live key allows (what a CORS preflight, which names no key, checks)."""
    rows = store.fetchall(
        "SELECT origins FROM api_keys WHERE revoked_at IS NULL AND origins IS NOT NULL"
    )
    return frozenset(o for (text,) in rows for o in text.split("\n") if o)


def _key(row: tuple[Any, ...]) -> ApiKey:
    key_id, name, scopes, created, revoked, origins, ip_rate, category = row
    created_at = from_store_time(created)
    assert created_at is not None
    return ApiKey(key_id, name, tuple(s for s in scopes.split(",") if s), created_at,
                  from_store_time(revoked), tuple(o for o in (origins or "").split("\n") if o),
                  float(ip_rate or 0.0), category)  # fmt: skip
