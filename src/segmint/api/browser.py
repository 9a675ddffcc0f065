"""Browser tracking: what Analytics.js 2.0 and RudderStack's JavaScript SDK call, and a pixel.

- ``POST /v1/t``, ``/v1/p``, ``/v1/i``, ``/v1/g``, ``/v1/a``, ``/v1/s`` (one message) and
  ``/v1/b`` (a batch): Analytics.js's short paths. The CORS middleware hands them to the
  endpoints of ``/v1/track`` and its siblings (:data:`segmint.api.cors.SHORT_PATHS`), so they
  take the very same intake path: size limits, validation, the ``writeKey`` in the body or
  the Authorization header, dedupe, group commit, a 200 only once stored. Bodies come as
  ``text/plain`` to spare a preflight and are read as JSON whatever their content type.
  RudderStack posts to the long ``/v1/<call>`` paths.
- ``GET /v1/projects/{writeKey}/settings``: the settings document Analytics.js loads at start
  from its CDN setting; pointing the snippet's CDN at segmint makes the library send to
  segmint and fetch nothing from elsewhere (no device-mode destinations, no remote plugins,
  no metrics).
- ``GET /sourceConfig/?writeKey=…``: the same for RudderStack (its ``configUrl``).
- ``GET /v1/pixel/{track|page}?data=<base64 JSON>``: a 1×1 GIF for places without
  JavaScript; the JSON is one message with its ``writeKey``.

CORS (:mod:`segmint.api.cors`) and the rules for public keys (:mod:`segmint.api.public`)
apply to all of them. :func:`install` mounts everything on an app.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson
from fastapi import APIRouter, FastAPI, Request
from starlette.responses import Response

from segmint.api.auth import authenticate, presented_key
from segmint.api.cors import CorsMiddleware, OriginRing
from segmint.api.errors import ApiError, error_response
from segmint.api.public import IpRateLimiter, RateLimited, admit, check_origin, consented
from segmint.intake.errors import PayloadError, PayloadTooLarge
from segmint.intake.payloads import MAX_MESSAGE_BYTES, decode_message
from segmint.intake.results import Submission

router = APIRouter()

PIXEL_CALLS = ("track", "page")

GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
"""A transparent 1×1 GIF."""

_MAX_PIXEL_DATA = MAX_MESSAGE_BYTES * 4 // 3 + 4


def install(app: FastAPI) -> None:
    """Mount the browser endpoints, CORS and the per-IP limiter on ``app``."""
    app.state.ip_limiter = IpRateLimiter()
    app.state.origins = OriginRing(app.state.workspace.store)
    app.add_middleware(CorsMiddleware, ring=app.state.origins)
    app.add_exception_handler(RateLimited, _rate_limited)
    app.include_router(router)


async def _rate_limited(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RateLimited)
    headers = {"Retry-After": str(exc.retry_after)}
    return error_response(exc.status, exc.code, str(exc), None, headers)


@router.get("/v1/projects/{write_key}/settings", tags=["browser"])
async def analytics_js_settings(request: Request, write_key: str) -> Response:
    """The settings Analytics.js loads at start, pointing it at this server."""
    key = await authenticate(request, "write", {"writeKey": write_key})
    check_origin(request, key)
    segmentio: dict[str, Any] = {
        "apiKey": write_key,
        "apiHost": f"{request.url.netloc}/v1",
        "protocol": request.url.scheme,
        "unbundledIntegrations": [],
        "addBundledMetadata": True,
        "maybeBundledConfigIds": {},
        "versionSettings": {"componentTypes": []},
    }
    document: dict[str, Any] = {
        "integrations": {"Segment.io": segmentio},
        "plan": {},
        "edgeFunction": {},
        "analyticsNextEnabled": True,
        "middlewareSettings": {},
        "enabledMiddleware": {},
        "metrics": {"sampleRate": 0},
        "legacyVideoPluginsEnabled": False,
        "remotePlugins": [],
    }
    if key.consent_category:
        segmentio["consentSettings"] = {"categories": [key.consent_category]}
        document["consentSettings"] = {"allCategories": [key.consent_category]}
    return _json(document)


@router.get("/sourceConfig", tags=["browser"])
@router.get("/sourceConfig/", tags=["browser"], include_in_schema=False)
async def rudderstack_source_config(request: Request) -> Response:
    """The source configuration RudderStack's JavaScript SDK loads at start."""
    query = request.query_params.get("writeKey")
    key = await authenticate(request, "write", {"writeKey": query})
    check_origin(request, key)
    secret = presented_key(request) or query
    workspace = request.app.state.workspace
    source = {
        "id": key.key_id,
        "name": key.name,
        "writeKey": secret,
        "enabled": True,
        "workspaceId": workspace.definition.name,
        "config": {
            "statsCollection": {"errors": {"enabled": False}, "metrics": {"enabled": False}}
        },  # fmt: skip
        "destinations": [],
    }
    return _json({"isHosted": False, "source": source})


def _json(document: dict[str, Any]) -> Response:
    headers = {"Cache-Control": "max-age=60"}
    return Response(orjson.dumps(document), media_type="application/json", headers=headers)


@router.get("/v1/pixel/{call}", tags=["browser"])
async def pixel(request: Request, call: str) -> Response:
    """Store one track or page message given as base64 JSON in ``data``; answer a 1×1 GIF."""
    if call not in PIXEL_CALLS:
        raise ApiError(404, "not_found", f"no pixel for {call!r}: use {' or '.join(PIXEL_CALLS)}")
    data = _pixel_data(request.query_params.get("data"))
    key = await authenticate(request, "write", data)
    admit(request, key)
    state = request.app.state
    raw = {k: v for k, v in data.items() if k != "writeKey"}
    message = decode_message(raw, received_at=state.clock.now(), type_=call)
    submission = Submission(consented([message], key), key.name)
    if submission.messages:
        await state.committer.submit_async(submission)
    return Response(GIF, media_type="image/gif", headers={"Cache-Control": "no-store"})


def _pixel_data(text: str | None) -> dict[str, Any]:
    """Decode the pixel's ``data``: base64 (standard or URL-safe, padding optional) JSON.

    Raises:
        PayloadError: Naming ``data`` for anything else.
    """
    if not text:
        raise PayloadError("data", "is required: a base64-encoded JSON message")
    if len(text) > _MAX_PIXEL_DATA:
        raise PayloadTooLarge("data", f"over the {MAX_MESSAGE_BYTES} byte message limit")
    padded = text.strip() + "=" * (-len(text.strip()) % 4)
    try:
        raw = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raise PayloadError("data", "is not valid base64") from None
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise PayloadError("data", f"is not base64 of JSON: {exc}") from None
    if not isinstance(value, dict):
        raise PayloadError("data", "must encode a JSON object")
    return value
