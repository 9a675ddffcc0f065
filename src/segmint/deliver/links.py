"""Signed tracking and unsubscribe links.

A link carries a small JSON payload and an HMAC-SHA256 tag over the link kind and the
payload, keyed by the workspace secret (the variable named by ``email.secret_env``)::

    {base_url}/e/o/{token}     open pixel          payload: campaign, profile, message id
    {base_url}/e/c/{token}     click redirect      payload: … and the target URL
    {base_url}/e/u/{token}     one-click unsubscribe (GET: a page; POST: RFC 8058)
    {base_url}/e/p/{token}     preference page     payload: profile

``token`` is ``base64url(payload) "." base64url(tag[:16])``. The target of a click is inside
the signed payload, so changing it breaks the tag: there is no open redirect.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import os
import re
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

import orjson

from segmint.config.model import EmailDef
from segmint.deliver.errors import CampaignError, LinkError

LinkKind = Literal["o", "c", "u", "p"]
TAG_BYTES = 16


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


_B64URL = re.compile(r"[A-Za-z0-9_-]*")


def _unb64(text: str, size: int | None = None) -> bytes:
    """Decode unpadded base64url strictly: only its canonical spelling is accepted.

    Python's decoder ignores what follows the padding and the unused low bits of the last
    character, so several spellings decode to the same bytes; a tag must have exactly one.

    Raises:
        ValueError: If ``text`` is not the canonical encoding (of ``size`` bytes, if given).
    """
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise ValueError("not unpadded base64url")
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64(data) != text or (size is not None and len(data) != size):
        raise ValueError("not the canonical base64url of the expected length")
    return data


def secret_from_env(email: EmailDef) -> bytes:
    """Read the signing secret from the variable named by ``email.secret_env``.

    Raises:
        CampaignError: If the variable is unset or shorter than 16 characters.
    """
    value = os.environ.get(email.secret_env, "")
    if len(value) < 16:
        raise CampaignError(
            f"set {email.secret_env} to a random secret of at least 16 characters: it signs "
            "unsubscribe and tracking links (for example: export "
            f'{email.secret_env}="$(python -c "import secrets; print(secrets.token_urlsafe())")")'
        )
    return value.encode()


@dataclass(frozen=True)
class LinkSigner:
    """Builds and verifies signed links.

    Attributes:
        secret: The HMAC key.
        base_url: Where ``segmint serve`` answers, without a trailing slash.
    """

    secret: bytes
    base_url: str

    @classmethod
    def from_email(cls, email: EmailDef) -> LinkSigner:
        """Build a signer from the workspace's email settings and the environment."""
        return cls(secret_from_env(email), email.base_url.rstrip("/"))

    @functools.cached_property
    def _keyed(self) -> hmac.HMAC:
        """The HMAC keyed once: each tag copies it (the key schedule is not redone)."""
        return hmac.new(self.secret, digestmod=hashlib.sha256)

    def _tag(self, kind: str, payload: str) -> bytes:
        mac = self._keyed.copy()
        mac.update(f"{kind}.{payload}".encode())
        return mac.digest()

    def token(self, kind: LinkKind, data: dict[str, Any]) -> str:
        """Return a signed token carrying ``data``."""
        payload = _b64(orjson.dumps(data))
        return f"{payload}.{_b64(self._tag(kind, payload)[:TAG_BYTES])}"

    def verify(self, kind: LinkKind, token: str) -> dict[str, Any]:
        """Return the data of a token signed for ``kind``.

        Raises:
            LinkError: If the token is malformed or its tag does not match.
        """
        payload, _, tag = token.partition(".")
        try:
            given = _unb64(tag, TAG_BYTES)
            expected = self._tag(kind, payload)[:TAG_BYTES]
            if not hmac.compare_digest(given, expected):
                raise LinkError("the link's signature does not match: it was altered")
            data = orjson.loads(_unb64(payload))
        except (ValueError, orjson.JSONDecodeError) as exc:
            raise LinkError("the link is malformed or truncated") from exc
        if not isinstance(data, dict):
            raise LinkError("the link's payload is not an object")
        return data

    def url(self, kind: LinkKind, data: dict[str, Any]) -> str:
        """Return the full URL of a signed link."""
        return f"{self.base_url}/e/{kind}/{self.token(kind, data)}"

    def open_url(self, campaign: str, profile_id: str, message_id: str) -> str:
        """The open pixel's URL."""
        return self.url("o", {"c": campaign, "p": profile_id, "m": message_id})

    def click_url(self, campaign: str, profile_id: str, message_id: str, target: str) -> str:
        """The click redirect's URL for ``target`` (http and https links, except our own)."""
        # our own links first: each is new (its token), so the cached check would miss
        if target.startswith(f"{self.base_url}/e/") or not is_web_url(target):
            return target
        return self.url("c", {"c": campaign, "p": profile_id, "m": message_id, "u": target})

    def unsubscribe_url(self, campaign: str, profile_id: str, topic: str) -> str:
        """The one-click unsubscribe URL (page on GET, RFC 8058 on POST)."""
        return self.url("u", {"c": campaign, "p": profile_id, "t": topic})

    def preferences_url(self, profile_id: str) -> str:
        """The preference page's URL."""
        return self.url("p", {"p": profile_id})


@functools.lru_cache(maxsize=4096)
def is_web_url(target: str) -> bool:
    """Return whether ``target`` is an absolute http(s) URL with a host.

    Cached: a template's links are the same for every recipient.
    """
    parts = urlsplit(target)
    return parts.scheme in ("http", "https") and bool(parts.netloc)
