"""CORS for the tracking endpoints, and Analytics.js's short paths as aliases of the long ones.

A pure ASGI middleware (no per-request task or body copy, so the tracking hot path stays
fast). It acts only on requests that carry an ``Origin`` header and go to a tracking path
(:func:`is_tracking_path`); every other route, the management API included, never answers
with CORS headers, so no page can read from segmint.

- A preflight (``OPTIONS`` with ``Access-Control-Request-Method``) names no key, so it is
  answered 204 with the CORS headers when *some* live key lists the origin, else 403.
- Any other request is passed on; its response gets ``Access-Control-Allow-Origin`` (the
  origin itself, never ``*``) when some key lists the origin. The endpoint then checks that
  the request's own key lists it (:func:`segmint.api.public.admit`).
- ``Access-Control-Allow-Credentials`` is never sent: cookies never reach segmint.

The middleware also serves Analytics.js's one-letter paths (``/v1/t`` …, ``/v1/b``) as the
calls they stand for (:data:`SHORT_PATHS`): the request goes on to ``/v1/track``'s own
endpoint, so the browser path costs no extra routing and cannot drift from the server path.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from segmint.api.auth import CACHE_SECONDS
from segmint.api.errors import error_response
from segmint.intake.keys import allowed_origins
from segmint.store import Store

SHORT_PATHS = {
    f"/v1/{letter}": f"/v1/{call}"
    for letter, call in (("t", "track"), ("p", "page"), ("i", "identify"), ("g", "group"),
                         ("a", "alias"), ("s", "screen"), ("b", "batch"))
}  # fmt: skip
"""Analytics.js's paths and the endpoints that serve them."""

TRACKING_CALLS = frozenset(
    ("identify", "track", "page", "screen", "group", "alias", "batch")
    + ("i", "t", "p", "s", "g", "a", "b")
)
"""The ``/v1/<call>`` paths that take events (long and Analytics.js short forms)."""

MAX_AGE = "600"
"""How long a browser may reuse a preflight answer, in seconds."""

ALLOW_METHODS = b"GET, POST, OPTIONS"


def is_tracking_path(path: str) -> bool:
    """Whether ``path`` is an endpoint a browser may call (events, settings, pixel)."""
    if path.startswith("/v1/"):
        rest = path[4:]
        if rest in TRACKING_CALLS or rest.startswith("pixel/"):
            return True
        return rest.startswith("projects/") and rest.endswith("/settings")
    return path.rstrip("/") == "/sourceConfig"


class OriginRing:
    """The origins some live key allows, read from the store and cached briefly.

    Args:
        store: Where the keys are.
        clock: Monotonic seconds (tests pass their own).
    """

    def __init__(self, store: Store, clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.clock = clock
        self._origins: frozenset[str] = frozenset()
        self._expires = float("-inf")
        self._lock = threading.Lock()

    async def allows(self, origin: str) -> bool:
        """Whether some live key lists ``origin`` (a stale cache is refreshed off the loop)."""
        if self.clock() >= self._expires:
            await run_in_threadpool(self.refresh)
        return origin in self._origins

    def refresh(self) -> None:
        """Read the origins from the store now."""
        origins = allowed_origins(self.store)
        with self._lock:
            self._origins = origins
            self._expires = self.clock() + CACHE_SECONDS

    def forget(self) -> None:
        """Read the store again on next use (after a key is created or revoked here)."""
        self._expires = float("-inf")


class CorsMiddleware:
    """Answer preflights and add CORS headers on the tracking paths (module docstring).

    Args:
        app: The wrapped ASGI app.
        ring: The origins allowed.
    """

    def __init__(self, app: ASGIApp, ring: OriginRing) -> None:
        self.app = app
        self.ring = ring

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI connection scope."""
        if scope["type"] != "http" or not is_tracking_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        long = SHORT_PATHS.get(scope["path"])
        if long is not None:
            scope = {**scope, "path": long, "raw_path": long.encode()}
        origin = preflight = None
        for name, value in scope["headers"]:
            if name == b"origin":
                origin = value
            elif name == b"access-control-request-method":
                preflight = value
        if origin is None:
            await self.app(scope, receive, send)
            return
        allowed = await self.ring.allows(origin.decode("latin-1"))
        if scope["method"] == "OPTIONS" and preflight is not None:
            await _preflight(scope, send, origin, allowed)
            return
        if not allowed:
            await self.app(scope, receive, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                headers += [(b"access-control-allow-origin", origin), (b"vary", b"Origin")]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_cors)


async def _preflight(scope: Scope, send: Send, origin: bytes, allowed: bool) -> None:
    if not allowed:
        text = origin.decode("latin-1")
        response = error_response(
            403,
            "origin_not_allowed",
            f"no API key allows origin {text!r}; add it with "
            f"'segmint keys create --name web --origin {text}'",
            "Origin",
        )
        await response(scope, _no_receive, send)
        return
    requested = dict(scope["headers"]).get(b"access-control-request-headers", b"")
    headers = [
        (b"access-control-allow-origin", origin),
        (b"access-control-allow-methods", ALLOW_METHODS),
        (b"access-control-max-age", MAX_AGE.encode()),
        (b"vary", b"Origin, Access-Control-Request-Headers"),
        (b"content-length", b"0"),
    ]
    if requested:
        # Credentials are never allowed, so echoing the asked-for headers exposes nothing.
        headers.append((b"access-control-allow-headers", requested))
    await send({"type": "http.response.start", "status": 204, "headers": headers})
    await send({"type": "http.response.body", "body": b""})


async def _no_receive() -> Message:  # a preflight has no body to read
    return {"type": "http.request", "body": b"", "more_body": False}
