"""``POST /webhooks/shopify/orders``: the Shopify order webhook.

The request is verified before anything else: the base64 HMAC-SHA256 of the raw body under
the shop's shared secret (read from the environment variable named by the workspace's
``shopify.secret_env``) must equal ``X-Shopify-Hmac-Sha256``. An unverified request gets a
401 and nothing is stored or quarantined (an attacker must not fill the quarantine either).

A verified order becomes an ``identify`` of its customer and an ``Order Completed`` track
(:mod:`segmint.intake.shopify`), committed durably through the group-commit writer before
the 200. A verified payload that cannot be mapped is quarantined with its reason and answered
200, so Shopify stops retrying something a retry cannot fix. Topics other than
``orders/create`` and ``orders/paid`` (sent in ``X-Shopify-Topic``) are acknowledged and not
mapped: a cancellation is not an order completed.
"""

from __future__ import annotations

import os
from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from segmint.api.errors import ApiError
from segmint.intake.errors import PayloadError, PayloadTooLarge
from segmint.intake.payloads import decode_message
from segmint.intake.quarantine import quarantine_row
from segmint.intake.results import Submission
from segmint.intake.shopify import SOURCE, ShopifyPayloadError, order_messages, verify

router = APIRouter()

MAX_BODY = 4 * 1024 * 1024
"""The largest webhook body read (an order with hundreds of line items stays far below)."""
TOPICS = ("orders/create", "orders/paid")
"""The webhook topics mapped to ``Order Completed``."""
SIGNATURE_HEADER = "X-Shopify-Hmac-Sha256"


@router.post("/webhooks/shopify/orders", tags=["webhooks"])
async def shopify_orders(request: Request) -> Response:
    """Verify a Shopify order webhook and store the order as ``Order Completed``."""
    state = request.app.state
    body = await _raw_body(request)
    secret = os.environ.get(state.workspace.definition.shopify.secret_env)
    if not verify(body, request.headers.get(SIGNATURE_HEADER), secret):
        raise ApiError(401, "unauthorized", _why_unverified(request, secret), SIGNATURE_HEADER)
    topic = request.headers.get("X-Shopify-Topic")
    if topic is not None and topic not in TOPICS:
        return _answer({"success": True, "ignored": f"topic {topic} is not mapped"})
    submission = _submission(body, request)
    result = await state.committer.submit_async(submission)
    return _answer(
        {
            "success": True,
            "stored": result.accepted,
            "duplicates": result.duplicates,
            "quarantined": result.quarantined,
        }
    )


async def _raw_body(request: Request) -> bytes:
    """The body exactly as sent: the signature covers these bytes, not a re-encoding."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise PayloadTooLarge("body", f"body is over the {MAX_BODY} byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


def _why_unverified(request: Request, secret: str | None) -> str:
    if not secret:
        return "the Shopify webhook secret is not configured on this server"
    if not request.headers.get(SIGNATURE_HEADER):
        return f"missing {SIGNATURE_HEADER} header"
    return f"{SIGNATURE_HEADER} does not match the body"


def _submission(body: bytes, request: Request) -> Submission:
    """Map the order into messages, or into a quarantine row saying why it cannot be."""
    at = request.app.state.clock.now()
    try:
        order = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        text = body.decode("utf-8", errors="replace")
        return _quarantined(at, text, f"shopify order is not valid JSON: {exc}", "body")
    try:
        messages = [
            decode_message(_tagged(m, request), received_at=at) for m in order_messages(order)
        ]
    except ShopifyPayloadError as exc:
        return _quarantined(at, order, f"shopify order cannot be mapped: {exc}", exc.field)
    except PayloadError as exc:
        return _quarantined(at, order, f"malformed: {exc}", exc.field or None)
    return Submission(messages, SOURCE)


def _tagged(message: dict[str, Any], request: Request) -> dict[str, Any]:
    """Record which shop and webhook delivery the message came from."""
    shop = {
        "shop_domain": request.headers.get("X-Shopify-Shop-Domain"),
        "topic": request.headers.get("X-Shopify-Topic"),
        "webhook_id": request.headers.get("X-Shopify-Webhook-Id"),
    }
    context = dict(message.get("context") or {})
    context["shopify"] = {k: v for k, v in shop.items() if v}
    return {**message, "context": context}


def _quarantined(at: Any, payload: Any, reason: str, field: str | None) -> Submission:
    return Submission([], SOURCE, quarantine=[quarantine_row(at, SOURCE, payload, reason, field)])


def _answer(data: dict[str, Any]) -> Response:
    return Response(orjson.dumps(data), media_type="application/json")
