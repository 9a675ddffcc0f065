"""Authentication: API keys from HTTP Basic (user name), a Bearer token or ``writeKey``.

``require_write``, ``require_read`` and ``require_admin`` are FastAPI dependencies for
routers (other packages' too). Verified keys are cached for a short time so a hot path
costs no query; a revocation made through this process's :class:`KeyRing` applies at
once, one made elsewhere (another process on PostgreSQL) within :data:`CACHE_SECONDS`.
"""

from __future__ import annotations

import base64
import binascii
import threading
import time
from typing import Any

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from segmint.api.errors import ApiError
from segmint.intake.errors import ApiKeyError, RevokedKey, UnknownKey
from segmint.intake.keys import ApiKey, hash_key, list_keys, verify_key
from segmint.store import Store

CACHE_SECONDS = 2.0
KEY_FIELD = "writeKey"
"""The field every 401 names: the key, wherever the request carried it (Segment's name)."""


class KeyRing:
    """Verifies keys against the store, with a short cache."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._cache: dict[str, tuple[ApiKey, float]] = {}
        self._lock = threading.Lock()

    def verify(self, secret: str) -> ApiKey:
        """Return the live key for ``secret``.

        Raises:
            UnknownKey: No such key.
            RevokedKey: It was revoked.
        """
        return self.cached(secret) or self.lookup(secret)

    def cached(self, secret: str) -> ApiKey | None:
        """The key for ``secret`` if verified recently, without touching the store."""
        hit = self._cache.get(hash_key(secret))
        if hit is not None and hit[1] > time.monotonic():
            return hit[0]
        return None

    def lookup(self, secret: str) -> ApiKey:
        """Verify ``secret`` against the store and cache the answer.

        Raises:
            UnknownKey: No such key.
            RevokedKey: It was revoked.
        """
        digest = hash_key(secret)
        key = verify_key(self.store, secret)
        with self._lock:
            self._cache[digest] = (key, time.monotonic() + CACHE_SECONDS)
        return key

    def by_id(self, key_id: str) -> ApiKey:
        """Return the live key with id ``key_id`` (a console session holds only the id).

        Raises:
            UnknownKey: No such key.
            RevokedKey: It was revoked.
        """
        hit = self._cache.get(f"id:{key_id}")
        if hit is not None and hit[1] > time.monotonic():
            key = hit[0]
        else:
            found = [k for k in list_keys(self.store) if k.key_id == key_id]
            if not found:
                raise UnknownKey(f"unknown API key {key_id}")
            key = found[0]
            with self._lock:
                self._cache[f"id:{key_id}"] = (key, time.monotonic() + CACHE_SECONDS)
        if key.revoked_at is not None:
            raise RevokedKey(f"API key {key.key_id} ({key.name}) was revoked")
        return key

    def forget(self) -> None:
        """Drop the cache (after a revocation)."""
        with self._lock:
            self._cache.clear()


def presented_key(request: Request, body: Any = None) -> str | None:
    """The key a request presents: Basic user name, Bearer token, or ``writeKey`` in the body.

    Raises:
        ApiError: For an Authorization header that cannot be read.
    """
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        if scheme.lower() == "basic":
            return _basic_user(value.strip())
        raise ApiError(
            401, "unauthorized", f"unsupported Authorization scheme {scheme!r}: use Basic "
            "(the key as user name) or Bearer", KEY_FIELD,
        )  # fmt: skip
    if isinstance(body, dict):
        key = body.get("writeKey")
        if isinstance(key, str) and key:
            return key
    return None


def _basic_user(value: str) -> str:
    try:
        decoded = base64.b64decode(value, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise ApiError(
            401, "unauthorized", "Basic credentials are not valid base64", KEY_FIELD
        ) from None
    user = decoded.partition(":")[0]
    if not user:
        raise ApiError(
            401, "unauthorized", "Basic credentials carry no user name: send the key there",
            KEY_FIELD,
        )  # fmt: skip
    return user


async def authenticate(request: Request, scope: str, body: Any = None) -> ApiKey:
    """Return the request's key, checked to carry ``scope``.

    A key not in the cache is looked up on a worker thread, so a store busy with a commit
    never blocks the event loop.

    Raises:
        ApiError: 401 without a valid key, 403 when the key lacks ``scope``.
    """
    secret = presented_key(request, body)
    if secret is None:
        raise ApiError(
            401, "unauthorized", "no API key: send it as the HTTP Basic user name", KEY_FIELD
        )
    ring: KeyRing = request.app.state.keys
    try:
        found = ring.cached(secret)
        key = found if found is not None else await run_in_threadpool(ring.lookup, secret)
    except ApiKeyError as exc:
        raise ApiError(401, "unauthorized", str(exc), KEY_FIELD) from None
    if not key.allows(scope):
        raise ApiError(403, "forbidden", f"key {key.key_id} ({key.name}) lacks the {scope} scope")
    return key


async def require_write(request: Request) -> ApiKey:
    """Dependency: a key with the ``write`` scope (from a header), not a public one.

    A public (browser) key is published in web pages, so it may only send events to the
    tracking endpoints; consent, suppressions and other writes need a server key.
    """
    key = await authenticate(request, "write")
    if key.public:
        raise ApiError(
            403, "forbidden", f"key {key.key_id} ({key.name}) is a public browser key: it may "
            "only send events; use a server key (created without --origin) here"
        )  # fmt: skip
    return key


async def require_read(request: Request) -> ApiKey:
    """Dependency: a key with the ``read`` scope (from a header)."""
    return await authenticate(request, "read")


async def require_admin(request: Request) -> ApiKey:
    """Dependency: a key with the ``admin`` scope (definitions: create, update, archive).

    Every admin call is written to the audit log (key id, method, path) before it runs.
    """
    key = await authenticate(request, "admin")
    from segmint.privacy.audit import append

    await run_in_threadpool(
        append, request.app.state.workspace.store, "api.admin", actor=f"api:{key.key_id}",
        at=request.app.state.clock.now(), subject=request.url.path,
        details={"method": request.method},
    )  # fmt: skip
    return key
