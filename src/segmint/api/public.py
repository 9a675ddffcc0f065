"""What a request must pass when its key may be used from a browser: origin, rate, consent.

Every tracking endpoint (``/v1/track`` and the browser forms of :mod:`segmint.api.browser`)
calls :func:`admit` once the request's key is known, and :func:`consented` on the decoded
messages before they are stored:

- a request that carries an ``Origin`` header (a browser sent it) is refused with 403 unless
  the key lists that origin; a server key (no origins) is therefore never usable from a page;
- a public key (one with origins) is limited per client IP to ``key.ip_rate`` requests a
  second, with bursts of twice that (a token bucket); over it the answer is 429 with
  ``Retry-After``, which the Segment and RudderStack libraries honour;
- a key with a consent category drops (answers 200, stores nothing) each message whose
  context says the visitor refused that category: Segment's
  ``context.consent.categoryPreferences[category] == false`` or RudderStack's
  ``context.consentManagement.deniedConsentIds`` containing it.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from fastapi import Request

from segmint.api.errors import ApiError
from segmint.intake.keys import ApiKey
from segmint.intake.payloads import Message

log = logging.getLogger(__name__)

BURST_SECONDS = 2.0
"""A bucket holds this many seconds' worth of requests: the burst a page load may send."""


class RateLimited(ApiError):
    """Over a public key's per-IP rate; ``retry_after`` is in whole seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(429, "rate_limited", message)
        self.retry_after = retry_after


class IpRateLimiter:
    """Token buckets per (key, client IP), in memory.

    Args:
        clock: Monotonic seconds (``time.monotonic``; tests pass their own).
        max_buckets: Past this many buckets, full ones are dropped (they hold no state
            a fresh bucket would not).
    """

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, max_buckets: int = 100_000
    ) -> None:
        self.clock = clock
        self.max_buckets = max_buckets
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key_id: str, ip: str, rate: float) -> float:
        """Spend one request of ``rate`` per second for ``(key_id, ip)``.

        Returns:
            0.0 when allowed, else the seconds until a request would be.
        """
        now = self.clock()
        capacity = max(1.0, rate * BURST_SECONDS)
        with self._lock:
            tokens, then = self._buckets.get((key_id, ip), (capacity, now))
            tokens = min(capacity, tokens + (now - then) * rate)
            if tokens < 1.0:
                self._buckets[(key_id, ip)] = (tokens, now)
                return (1.0 - tokens) / rate
            self._buckets[(key_id, ip)] = (tokens - 1.0, now)
            if len(self._buckets) > self.max_buckets:
                self._prune(now)
        return 0.0

    def _prune(self, now: float) -> None:
        # A bucket idle long enough to be full again is the same as no bucket.
        stale = now - 10 * BURST_SECONDS
        for bucket, (_, then) in list(self._buckets.items()):
            if then < stale:
                del self._buckets[bucket]


def client_ip(request: Request) -> str:
    """The client's address (uvicorn puts a trusted proxy's ``X-Forwarded-For`` here)."""
    return request.client.host if request.client is not None else "unknown"


def admit(request: Request, key: ApiKey) -> None:
    """Refuse a browser request from an origin the key does not list, or over its IP rate.

    Raises:
        ApiError: 403 for an origin the key does not allow.
        RateLimited: 429 when the client IP is over the key's rate.
    """
    check_origin(request, key)
    if key.origins and key.ip_rate > 0:
        limiter: IpRateLimiter = request.app.state.ip_limiter
        wait = limiter.take(key.key_id, client_ip(request), key.ip_rate)
        if wait:
            raise RateLimited(
                f"over {key.ip_rate:g} requests/s from this address for key {key.key_id}; "
                f"retry in {wait:.1f} s",
                max(1, math.ceil(wait)),
            )


def check_origin(request: Request, key: ApiKey) -> None:
    """Refuse a request whose ``Origin`` header (sent by browsers) the key does not list.

    Raises:
        ApiError: 403, saying which origins the key allows or that it is a server key.
    """
    origin = request.headers.get("origin")
    if origin is not None and origin not in key.origins:
        raise ApiError(403, "origin_not_allowed", _origin_message(origin, key), "Origin")


def _origin_message(origin: str, key: ApiKey) -> str:
    if not key.origins:
        return (
            f"key {key.key_id} ({key.name}) is a server key and cannot be used from a browser "
            f"(origin {origin}); create a public one with "
            f"'segmint keys create --name web --origin {origin}'"
        )
    return (
        f"origin {origin!r} may not send with key {key.key_id} ({key.name}); "
        f"it allows {', '.join(key.origins)}"
    )


def consented(messages: Sequence[Message], key: ApiKey) -> list[Message]:
    """The messages whose context does not refuse the key's consent category."""
    category = key.consent_category
    if category is None:
        return list(messages)
    kept = [m for m in messages if not refuses(m.context, category)]
    if len(kept) < len(messages):
        log.debug("dropped %d messages without %s consent", len(messages) - len(kept), category)
    return kept


def refuses(context: dict[str, Any], category: str) -> bool:
    """Whether a message ``context`` says the visitor refused ``category``.

    Segment's consent wrapper writes ``consent.categoryPreferences`` (category → bool);
    RudderStack's consent managers write ``consentManagement.deniedConsentIds``.
    """
    consent = context.get("consent")
    if isinstance(consent, dict):
        preferences = consent.get("categoryPreferences")
        if isinstance(preferences, dict) and preferences.get(category) is False:
            return True
    managed = context.get("consentManagement")
    if isinstance(managed, dict):
        denied = managed.get("deniedConsentIds")
        if isinstance(denied, list) and category in denied:
            return True
    return False
