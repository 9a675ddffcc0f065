"""Console sessions: signed cookies that survive a restart, roles, a CSRF token per session.

Log in with an API key (``read`` gives the read-only role, ``admin`` the admin role) or with
the console's session secret (the admin role, for a workspace without keys yet). The
session is a cookie signed with HMAC-SHA256 under that secret, which lives outside the
store: ``SEGMINT_CONSOLE_SECRET`` in the environment, or else ``.segmint/console-secret``
in the workspace (created on first use, mode 0600). The cookie holds the key's id, never
the key; every request checks that key again through the app's
:class:`segmint.api.auth.KeyRing`, so a revoked key ends its sessions within the ring's
cache time, and a changed scope changes the role. Changing the secret ends every session.

The cookie is ``HttpOnly`` and ``SameSite=Strict`` and expires after
:data:`SESSION_SECONDS`. Every form carries the session's CSRF token (scripts send it as
``X-CSRF-Token``); a state-changing request without it is refused. The login form has its
own token, a double-submit cookie. Logging out forgets the session in this process (the
browser drops the cookie too).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import orjson
from fastapi import Request

from segmint.api.auth import KeyRing
from segmint.api.errors import ApiError
from segmint.intake.errors import ApiKeyError
from segmint.intake.keys import ApiKey

COOKIE = "segmint_session"
LOGIN_COOKIE = "segmint_login"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
SECRET_ENV = "SEGMINT_CONSOLE_SECRET"  # noqa: S105 (a variable name, not a secret)
SECRET_FILE = "console-secret"  # noqa: S105 (a file name)
"""The secret's file in the workspace's ``.segmint/`` folder when the variable is not set."""
SESSION_SECONDS = 7 * 24 * 3600
"""How long a session lasts after login."""


@dataclass(frozen=True)
class Session:
    """One logged-in browser.

    Attributes:
        sid: A random id (what logging out forgets).
        key_id: The API key logged in with, or ``""`` for the session secret.
        csrf: The token every form and script request of this session must carry.
        expires: When the session ends (seconds since the epoch).
    """

    sid: str
    key_id: str
    csrf: str
    expires: float


@dataclass(frozen=True)
class User:
    """Who is asking: the session, and the key behind it (None: the session secret)."""

    session: Session
    key: ApiKey | None

    @property
    def admin(self) -> bool:
        """Whether the user may change definitions."""
        return self.key is None or self.key.allows("admin")

    @property
    def role(self) -> str:
        """``admin`` or ``read-only``."""
        return "admin" if self.admin else "read-only"

    @property
    def name(self) -> str:
        """Whom the session belongs to, as shown in the page header."""
        return "session secret" if self.key is None else f"{self.key.name} ({self.key.key_id})"


class Sessions:
    """The sessions of one app, signed with one secret."""

    def __init__(self, secret: str) -> None:
        self._secret = secret.encode()
        self._ended: set[str] = set()
        self._lock = threading.Lock()

    def login(self, ring: KeyRing, given: str) -> tuple[Session, str]:
        """Start a session for ``given``: a key that can read, or the session secret.

        Returns:
            The session and its cookie value.

        Raises:
            ApiError: 401 for an unknown or revoked key, 403 for one that cannot read.
        """
        given = given.strip()
        if given and hmac.compare_digest(given.encode(), self._secret):
            key_id = ""
        else:
            key = _verify(ring, given)
            if not key.allows("read"):
                raise ApiError(403, "forbidden", f"key {key.key_id} ({key.name}) cannot read: "
                               "log in with a key created with --scope read or admin")  # fmt: skip
            key_id = key.key_id
        session = Session(secrets.token_urlsafe(16), key_id, secrets.token_urlsafe(32),
                          time.time() + SESSION_SECONDS)  # fmt: skip
        return session, self.sign(session)

    def sign(self, session: Session) -> str:
        """The cookie value of ``session``: its fields and their signature."""
        payload = _b64(orjson.dumps([session.sid, session.key_id, session.csrf, session.expires]))
        return f"{payload}.{self._mac(payload)}"

    def read(self, cookie: str | None) -> Session | None:
        """The session of a cookie, or None for a forged, expired or ended one."""
        if not cookie or "." not in cookie:
            return None
        payload, mac = cookie.rsplit(".", 1)
        if not hmac.compare_digest(mac, self._mac(payload)):
            return None
        try:
            sid, key_id, csrf, expires = orjson.loads(base64.urlsafe_b64decode(payload + "=="))
        except (ValueError, TypeError):
            return None
        if expires < time.time() or sid in self._ended:
            return None
        return Session(str(sid), str(key_id), str(csrf), float(expires))

    def logout(self, sid: str) -> None:
        """End a session in this process."""
        with self._lock:
            self._ended.add(sid)

    def user(self, request: Request) -> User | None:
        """The request's user, or None without a live session."""
        session = self.read(request.cookies.get(COOKIE))
        if session is None:
            return None
        if not session.key_id:
            return User(session, None)
        ring: KeyRing = request.app.state.keys
        try:
            key = ring.by_id(session.key_id)
        except ApiKeyError:
            return None
        return User(session, key)

    def _mac(self, payload: str) -> str:
        digest = hmac.new(self._secret, payload.encode(), hashlib.sha256).digest()
        return _b64(digest)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _verify(ring: KeyRing, secret: str) -> ApiKey:
    try:
        return ring.verify(secret)
    except ApiKeyError as exc:
        raise ApiError(401, "unauthorized", str(exc), "key") from None


def console_secret(state_dir: Path) -> str:
    """The session secret: ``SEGMINT_CONSOLE_SECRET``, or the workspace's secret file.

    The file is created with a random secret, readable by its owner only, when missing.
    """
    given = os.environ.get(SECRET_ENV, "").strip()
    if given:
        return given
    path = state_dir / SECRET_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first
            return path.read_text(encoding="utf-8").strip()
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(secrets.token_urlsafe(32) + "\n")
    return path.read_text(encoding="utf-8").strip()


def same_token(given: str | None, expected: str) -> bool:
    """Compare a CSRF token in constant time."""
    return bool(given) and hmac.compare_digest(str(given), expected)
