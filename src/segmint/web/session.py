"""Console sessions: log in with an API key, a role from its scopes, a CSRF token per session.

A session lives in the server's memory (a restart logs everyone out) and holds the key
presented at login; every request verifies that key again through the app's
:class:`segmint.api.auth.KeyRing`, so a revoked key ends its sessions within the ring's
cache time. The cookie is ``HttpOnly`` and ``SameSite=Strict``. Every form carries the
session's CSRF token (scripts send it as ``X-CSRF-Token``); a state-changing request without
the right token is refused. The login form has its own token, a double-submit cookie.
"""

from __future__ import annotations

import hmac
import secrets
import threading
from dataclasses import dataclass

from fastapi import Request

from segmint.api.auth import KeyRing
from segmint.api.errors import ApiError
from segmint.intake.errors import ApiKeyError
from segmint.intake.keys import ApiKey

COOKIE = "segmint_session"
LOGIN_COOKIE = "segmint_login"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"


@dataclass(frozen=True)
class Session:
    """One logged-in browser.

    Attributes:
        sid: The cookie value.
        secret: The API key presented at login (verified again on every request).
        csrf: The token every form and script request of this session must carry.
    """

    sid: str
    secret: str
    csrf: str


@dataclass(frozen=True)
class User:
    """Who is asking: the session and the key behind it."""

    session: Session
    key: ApiKey

    @property
    def admin(self) -> bool:
        """Whether the key may change definitions."""
        return self.key.allows("admin")

    @property
    def role(self) -> str:
        """``admin`` or ``read-only``."""
        return "admin" if self.admin else "read-only"


class Sessions:
    """The sessions of one app."""

    def __init__(self) -> None:
        self._by_id: dict[str, Session] = {}
        self._lock = threading.Lock()

    def login(self, ring: KeyRing, secret: str) -> Session:
        """Start a session for ``secret``, a key with the ``read`` (or ``admin``) scope.

        Raises:
            ApiError: 401 for an unknown or revoked key, 403 for one that cannot read.
        """
        key = _verify(ring, secret.strip())
        if not key.allows("read"):
            raise ApiError(403, "forbidden", f"key {key.key_id} ({key.name}) cannot read: "
                           "log in with a key created with --scope read or admin")  # fmt: skip
        session = Session(secrets.token_urlsafe(32), secret.strip(), secrets.token_urlsafe(32))
        with self._lock:
            self._by_id[session.sid] = session
        return session

    def logout(self, sid: str) -> None:
        """End a session."""
        with self._lock:
            self._by_id.pop(sid, None)

    def user(self, request: Request) -> User | None:
        """The request's user, or None without a live session."""
        sid = request.cookies.get(COOKIE)
        session = self._by_id.get(sid) if sid else None
        if session is None:
            return None
        try:
            key = _verify(request.app.state.keys, session.secret)
        except ApiError:
            self.logout(session.sid)
            return None
        return User(session, key)


def _verify(ring: KeyRing, secret: str) -> ApiKey:
    try:
        return ring.verify(secret)
    except ApiKeyError as exc:
        raise ApiError(401, "unauthorized", str(exc), "key") from None


def same_token(given: str | None, expected: str) -> bool:
    """Compare a CSRF token in constant time."""
    return bool(given) and hmac.compare_digest(str(given), expected)
