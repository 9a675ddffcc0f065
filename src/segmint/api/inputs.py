"""What every management route reads alike: instants, NUL-free text, names, bounded bodies.

An instant a client sends (``as_of``, ``from``, a consent's ``timestamp``) is read as
``--as-of`` is on the command line (:func:`segmint.clock.parse_instant` given the server's
now): ISO 8601, ``now`` or an offset from it, between :data:`segmint.clock.EARLIEST` and
:data:`segmint.clock.LATEST`. Outside that range an instant is refused, as intake refuses an
event's: evaluating rules there overflows the calendar, and a statement dated then means
nothing.

:func:`refuse_nul` is a route dependency: a NUL character is refused wherever it is (path,
query, JSON body) before a route runs. PostgreSQL cannot store or compare text holding one,
and on DuckDB it would be kept as part of an address or a name nobody can type; the tracking
endpoints refuse it the same way (:mod:`segmint.intake.payloads`).
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Any, overload

import orjson
from fastapi import Request
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from segmint.api.cors import is_tracking_path
from segmint.api.errors import ApiError, error_response
from segmint.clock import parse_instant
from segmint.intake.errors import PayloadTooLarge


@overload
def instant(value: str | None, field: str, default: datetime, *, now: datetime) -> datetime: ...
@overload
def instant(value: str | None, field: str, default: None, *, now: datetime) -> datetime | None: ...


def instant(
    value: str | None, field: str, default: datetime | None, *, now: datetime
) -> datetime | None:
    """``value`` read as an instant, or ``default`` when absent.

    Args:
        value: The text the client sent (None or empty: absent).
        field: The request field it came from, named in the error.
        default: What an absent value means.
        now: The server's now, for ``now`` and offsets (``-7d``).

    Raises:
        ApiError: 422 naming ``field``, for text that is no instant or one out of range.
    """
    if value is None or value == "":
        return default
    try:
        return parse_instant(value, now=now)
    except ValueError as exc:
        raise ApiError(422, "invalid_request", f"{field}: {exc}", field) from None


async def refuse_nul(request: Request) -> None:
    """Dependency: refuse a request carrying a NUL character in a parameter or its JSON body.

    Raises:
        ApiError: 422 naming the parameter, or the JSON path in the body.
    """
    for name, value in [*request.path_params.items(), *request.query_params.multi_items()]:
        if "\x00" in name or "\x00" in str(value):
            _nul(name.replace("\x00", "\\x00"))
    if "json" not in request.headers.get("content-type", ""):
        return  # the routes read no other body as JSON
    body = await request.body()
    if b"\\u0000" in body:  # JSON carries NUL only as this escape
        try:
            _scan(orjson.loads(body))
        except orjson.JSONDecodeError:
            return  # the route's own parsing names what is wrong


def _scan(document: Any) -> None:
    """Raise for a string or key holding NUL, naming its path (``a.b[2].c``)."""
    stack: list[tuple[str, Any]] = [("", document)]
    while stack:  # no recursion: the JSON parser allows nesting deeper than Python's stack
        path, value = stack.pop()
        if isinstance(value, str) and "\x00" in value:
            _nul(path or "body")
        elif isinstance(value, dict):
            for key, item in reversed(value.items()):
                if "\x00" in key:
                    _nul(path or "body", "a key contains")
                stack.append((f"{path}.{key}" if path else key, item))
        elif isinstance(value, list):
            stack.extend((f"{path}[{i}]", item) for i, item in reversed(list(enumerate(value))))


def _nul(field: str, what: str = "contains") -> None:
    raise ApiError(422, "invalid_request", f"{field}: {what} a NUL character", field)


def not_renamed(kind: str, name: str, body_name: str | None) -> None:
    """Refuse an update whose body names another entry than its path: it would be dropped.

    Raises:
        ApiError: 422 naming ``name``.
    """
    if body_name is not None and body_name != name:
        message = (f"name: {body_name!r} is not the {kind} '{name}' of the path; a {kind} "
                   f"cannot be renamed: create '{body_name}', then archive '{name}'")  # fmt: skip
        raise ApiError(422, "invalid_request", message, "name")


MAX_BODY = 1024 * 1024
"""The largest body a route without a limit of its own reads (a definition, a template, a
consent): 1 MiB. The tracking endpoints keep Segment's limits and the Shopify webhook its
own (:func:`has_own_limit`)."""


def has_own_limit(path: str) -> bool:
    """Whether the route at ``path`` reads its body itself, under a limit of its own."""
    return path.startswith("/webhooks/shopify/") or is_tracking_path(path)


class BodyLimit:
    """ASGI middleware: refuse a body over :data:`MAX_BODY` before a route reads it.

    FastAPI reads and parses a route's JSON body before its dependencies run, the key check
    among them: without this any client could make the server hold a body of any size. A
    declared ``Content-Length`` over the limit is answered at once; a chunked body is
    counted as it arrives and, once past the limit, no more of it is read and whatever the
    route would answer is replaced. Both answers are 413 in the one error shape, naming
    ``body``.
    """

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on, its body counted against the limit."""
        if scope["type"] != "http" or has_own_limit(str(scope["path"])):
            await self.app(scope, receive, send)
            return
        length = Headers(scope=scope).get("content-length", "")
        if length.isdigit() and int(length) > self.limit:
            await self._too_large(length)(scope, receive, send)
            return
        watch = _BodyWatch(receive, send, self.limit)
        with contextlib.suppress(PayloadTooLarge):  # the route stopped reading: answered below
            await self.app(scope, watch.receive, watch.send)
        if watch.over and not watch.started:
            await self._too_large(None)(scope, receive, send)

    def _too_large(self, length: str | None) -> Response:
        size = f"{length} bytes, over" if length else "over"
        message = f"body: {size} the {self.limit} byte limit"
        return error_response(413, "payload_too_large", message, "body")


class _BodyWatch:
    """A request's ``receive`` that counts the body, and a ``send`` muted once it is over."""

    def __init__(self, receive: Receive, send: Send, limit: int) -> None:
        self._receive, self._send, self.limit = receive, send, limit
        self.seen = 0
        self.over = False
        self.started = False

    async def receive(self) -> Message:
        message = await self._receive()
        self.seen += len(message.get("body", b""))
        if self.seen > self.limit:
            self.over = True
            raise PayloadTooLarge("body", f"over the {self.limit} byte limit")
        return message

    async def send(self, message: Message) -> None:
        if self.over and not self.started:
            return  # the route's answer to a body it could not finish: ours replaces it
        self.started = self.started or message["type"] == "http.response.start"
        await self._send(message)
