"""The Segment-compatible HTTP Tracking API: ``POST /v1/track`` and its siblings.

It follows the public Segment HTTP Tracking API so unmodified Segment and RudderStack
libraries work: the write key as the HTTP Basic user name (or ``writeKey`` in the body),
gzip bodies, ``{"success": true}`` answers, 32 KB per message and 500 KB per batch, the
clock-skew correction of :mod:`segmint.intake.payloads`, and messageId deduplication.

A 200 is sent only after the events are durably committed (group commit). Events sent with a
key carry the key's name as their ``source``.
"""

from __future__ import annotations

import zlib
from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from segmint.api.auth import authenticate
from segmint.api.public import admit, consented
from segmint.intake.errors import PayloadError, PayloadTooLarge
from segmint.intake.payloads import (
    MAX_BATCH_BYTES,
    MAX_DEPTH,
    MAX_MESSAGE_BYTES,
    decode_message,
    nesting_within,
)
from segmint.intake.results import Submission

router = APIRouter()

_SUCCESS = b'{"success":true}'
_CALLS = ("identify", "track", "page", "screen", "group", "alias")


def success() -> Response:
    """The answer Segment gives to an accepted call."""
    return Response(_SUCCESS, media_type="application/json")


async def read_body(request: Request, limit: int) -> bytes:
    """Read the body (gunzipped if need be), refusing more than ``limit`` bytes.

    Raises:
        PayloadTooLarge: Over ``limit``, before or after decompression.
        PayloadError: For a body that claims gzip and is not.
    """
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise PayloadTooLarge("body", f"{length} bytes, over the {limit} byte limit")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge("body", f"over the {limit} byte limit")
        chunks.append(chunk)
    body = b"".join(chunks)
    if request.headers.get("content-encoding", "").lower() == "gzip" or body[:2] == b"\x1f\x8b":
        return _gunzip(body, limit)
    return body


def _gunzip(body: bytes, limit: int) -> bytes:
    inflater = zlib.decompressobj(wbits=47)  # gzip or zlib header, detected
    try:
        data = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise PayloadError("body", f"not valid gzip: {exc}") from None
    if len(data) > limit:
        raise PayloadTooLarge("body", f"over the {limit} byte limit once decompressed")
    if not inflater.eof:
        raise PayloadError("body", "gzip data is truncated")
    return data


def parse_json(body: bytes) -> dict[str, Any]:
    """Parse a JSON object body.

    Raises:
        PayloadError: For invalid JSON or a body that is not an object.
    """
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise PayloadError("body", f"not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise PayloadError("body", "must be a JSON object")
    return data


def batch_submission(
    data: dict[str, Any], request: Request, source: str, body: bytes
) -> Submission:
    """Decode a ``/v1/batch`` body (``data``, parsed from ``body``) into a submission."""
    batch = data.get("batch")
    if not isinstance(batch, list):
        raise PayloadError("batch", "must be an array of messages")
    at = request.app.state.clock.now()
    defaults = {k: data[k] for k in ("context", "integrations") if data.get(k) is not None}
    options = {
        "received_at": at,
        "sent_at": data.get("sentAt"),
        "defaults": defaults,
        # JSON can carry NUL only as an escape, and no message outgrows a body it fits in.
        "scan_nul": b"\\u0000" in body,
        "check_size": len(body) > MAX_MESSAGE_BYTES,
        "check_depth": not nesting_within(body, MAX_DEPTH),
    }
    messages = []
    for index, raw in enumerate(batch):
        try:
            messages.append(decode_message(_strip(raw), **options))
        except PayloadError as exc:
            raise exc.within(f"batch[{index}]") from None
    return Submission(messages, source)


def _strip(raw: Any) -> Any:
    if isinstance(raw, dict) and "writeKey" in raw:
        return {k: v for k, v in raw.items() if k != "writeKey"}
    return raw


async def _accept(request: Request, kind: str | None) -> Response:
    state = request.app.state
    key = await authenticate(request, "write") if "authorization" in request.headers else None
    limit = MAX_BATCH_BYTES if kind is None else MAX_MESSAGE_BYTES
    body = await read_body(request, limit)
    data = parse_json(body)
    if key is None:
        key = await authenticate(request, "write", data)
    admit(request, key)  # a browser's origin, a public key's per-IP rate
    if kind is None:
        submission = batch_submission(data, request, key.name, body)
    else:
        message = decode_message(_strip(data), received_at=state.clock.now(), type_=kind)
        submission = Submission([message], key.name)
    submission.messages = consented(submission.messages, key)
    if submission.messages:
        await state.committer.submit_async(submission)
    return success()


def _route(kind: str) -> Any:
    async def endpoint(request: Request) -> Response:
        return await _accept(request, kind)

    endpoint.__name__ = f"post_{kind}"
    endpoint.__doc__ = f"Segment {kind} call."
    return endpoint


for _kind in _CALLS:
    router.add_api_route(f"/v1/{_kind}", _route(_kind), methods=["POST"], tags=["tracking"])


@router.post("/v1/batch", tags=["tracking"])
async def post_batch(request: Request) -> Response:
    """Segment batch call: up to 500 KB of messages of any type."""
    return await _accept(request, None)
