"""The REST API's one error shape, and the handlers that give every error that shape.

Every error response, whatever raised it, is::

    {"error": {"status": 400, "code": "invalid_payload",
               "message": "batch[3].userId: must be a string, got an object",
               "field": "batch[3].userId"}}

``field`` is the JSON path of the offending input, or null when no single field is to blame.
``tests/api/test_error_shape.py`` pins this shape.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from segmint.errors import SegmintError, Transient
from segmint.intake.errors import ApiKeyError, PayloadError

log = logging.getLogger(__name__)


class ApiError(SegmintError):
    """An error answered with a JSON error body.

    Attributes:
        status: The HTTP status.
        code: A stable machine-readable code (``unauthorized``, ``invalid_payload`` …).
        field: The offending input field, if one is to blame.
    """

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.field = field


def error_body(status: int, code: str, message: str, field: str | None = None) -> dict[str, Any]:
    """The error shape as a dict."""
    return {"error": {"status": status, "code": code, "message": message, "field": field}}


def error_response(
    status: int,
    code: str,
    message: str,
    field: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """An error response in the one shape."""
    body = orjson.dumps(error_body(status, code, message, field))
    return Response(body, status_code=status, media_type="application/json", headers=headers)


async def _api_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    headers = {"WWW-Authenticate": 'Basic realm="segmint"'} if exc.status == 401 else None
    return error_response(exc.status, exc.code, str(exc), exc.field, headers)


async def _payload_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, PayloadError)
    return error_response(exc.status, exc.code, str(exc), exc.field or None)


async def _key_error(_: Request, exc: Exception) -> Response:
    headers = {"WWW-Authenticate": 'Basic realm="segmint"'}
    return error_response(401, "unauthorized", str(exc), "writeKey", headers)


async def _http_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, str(exc.detail))


async def _validation_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    where, why = _where(first), _why(first)
    return error_response(422, "invalid_request", f"{where}: {why}", where)


_SOURCES = ("body", "query", "path", "header", "cookie")


def _where(error: dict[str, Any]) -> str:
    """The field a FastAPI validation error is about, spelt as the routes spell it.

    The parameter's own name (``as_of``, not ``query.as_of``), a body field's JSON path as
    intake writes it (``tags[1]``), and ``body`` for the body as a whole.
    """
    loc = list(error.get("loc", ()))
    if error.get("type") == "json_invalid":
        return "body"  # its loc ends in a character position, not a field
    if loc and loc[0] in _SOURCES:
        loc = loc[1:] or ["body"]
    where = ""
    for part in loc:
        if isinstance(part, int):
            where += f"[{part}]"
        else:
            where += f".{part}" if where else str(part)
    return where or "body"


def _why(error: dict[str, Any]) -> str:
    """What is wrong, in the words intake uses for the same mistakes where it has them."""
    kind, loc = error.get("type"), tuple(error.get("loc", ()))
    if kind == "json_invalid":
        detail = (error.get("ctx") or {}).get("error")
        return "not valid JSON" + (f": {detail}" if detail else "")
    if loc == ("body",) and kind in ("missing", "model_attributes_type", "dict_type"):
        return "must be a JSON object" if kind != "missing" else "is required: a JSON object"
    return str(error.get("msg", "invalid"))


async def _segmint_error(_: Request, exc: Exception) -> Response:
    if isinstance(exc, Transient):  # the store is away: clients retry on 503
        message = f"temporarily unavailable, nothing was stored; retry: {exc}"
        wait = str(getattr(exc, "retry_after", 1))
        return error_response(503, "unavailable", message, headers={"Retry-After": wait})
    log.error("request failed: %s", exc)
    return error_response(500, "internal_error", f"nothing was stored: {exc}")


async def _unexpected(_: Request, exc: Exception) -> Response:
    log.exception("unexpected error", exc_info=exc)
    return error_response(500, "internal_error", "internal error; the request was not stored")


def install_handlers(app: FastAPI) -> None:
    """Route every error through the one shape."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(PayloadError, _payload_error)
    app.add_exception_handler(ApiKeyError, _key_error)
    app.add_exception_handler(SegmintError, _segmint_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected)
