from __future__ import annotations

import asyncio
import copy
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI

from segmint.api.app import create_app
from segmint.clock import FixedClock
from segmint.intake.shopify import ShopifyPayloadError, order_messages, sign, verify
from segmint.workspace import Workspace

from .conftest import DATA, as_json, count

SECRET = "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"  # noqa: S105 (a test secret)
ORDER: dict[str, Any] = orjson.loads((DATA / "shopify_order.json").read_bytes())


def test_order_maps_to_identify_and_order_completed() -> None:
    identify, track = order_messages(ORDER)
    assert identify["type"] == "identify"
    assert identify["userId"] == "7390016487541"
    assert identify["traits"] == {
        "email": "ada.lovelace@example.com",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "phone": "+442079460018",
        "email_consent": True,
    }
    assert track["event"] == "Order Completed"
    assert track["messageId"] == "shopify-order-5912345678901"
    assert track["timestamp"] == "2026-10-12T14:03:25+02:00"
    assert track["context"]["traits"] == {"email": "ada.lovelace@example.com"}
    props = track["properties"]
    assert props["total"] == 256.15 and props["subtotal"] == 229.0
    assert (props["tax"], props["discount"], props["shipping"]) == (45.15, 22.9, 4.9)
    assert (props["currency"], props["coupon"], props["order_id"]) == (
        "EUR",
        "AUTUMN10",
        "5912345678901",
    )
    assert props["products"] == [
        {
            "product_id": "8123456789001",
            "variant_id": "45123456789001",
            "sku": "NB-A5-DOT-BLU",
            "name": "Dotted Notebook A5",
            "variant": "Midnight Blue",
            "brand": "Paper & Co",
            "category": "Notebooks",
            "quantity": 2,
            "price": 24.5,
        },
        {
            "product_id": "8123456789002",
            "variant_id": "45123456789002",
            "sku": "PEN-FTN-CLS",
            "name": "Fountain Pen Classic",
            "brand": "Inkwell",
            "category": "Pens",
            "quantity": 1,
            "price": 180.0,
        },
    ]


def test_guest_checkout_is_anonymous_with_email() -> None:
    order = copy.deepcopy(ORDER)
    del order["customer"]
    identify, track = order_messages(order)
    assert track["anonymousId"] == "shopify-checkout-9f3b2c1d0e8a7b6c5d4e3f2a1b0c9d8e"
    assert "userId" not in track
    assert identify["traits"] == {"email": "ada.lovelace@example.com"}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"id": None}, "$.id"),
        ({"total_price": "12,00"}, "$.total_price"),
        ({"total_price": None}, "$.total_price"),
        ({"created_at": None, "processed_at": None}, "$.created_at"),
        ({"line_items": [{"quantity": "two", "price": "1.00"}]}, "$.line_items[0]"),
        ({"line_items": [{"quantity": 1, "price": "NaN"}]}, "$.line_items[0].price"),
    ],
)
def test_unmappable_orders_name_the_field(change: dict[str, Any], field: str) -> None:
    with pytest.raises(ShopifyPayloadError) as info:
        order_messages({**ORDER, **change})
    assert info.value.field == field


def test_signature_is_checked_on_raw_bytes_in_constant_time() -> None:
    body = orjson.dumps(ORDER)
    good = sign(body, SECRET)
    assert verify(body, good, SECRET)
    assert not verify(body + b" ", good, SECRET)
    assert not verify(body, good, SECRET + "x")
    assert not verify(body, None, SECRET)
    assert not verify(body, good, None)
    assert not verify(body, good, "")
    assert not verify(body, "not base64!!", SECRET)


def make_app(
    ws: Workspace, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FastAPI]:
    """The real app (its group-commit writer included), called in-process over ASGI."""
    monkeypatch.setenv(ws.definition.shopify.secret_env, SECRET)
    app = create_app(ws, clock)
    yield app
    app.state.committer.close()


@pytest.fixture
def any_client(
    ws: Workspace, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FastAPI]:
    """The app on each backend in turn."""
    yield from make_app(ws, clock, monkeypatch)


@pytest.fixture
def client(
    workspace: Workspace, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FastAPI]:
    """The app on DuckDB (HTTP behaviour does not depend on the backend)."""
    yield from make_app(workspace, clock, monkeypatch)


def post(app: FastAPI, body: bytes, signature: str | None, **headers: str) -> httpx.Response:
    if signature is not None:
        headers["X-Shopify-Hmac-Sha256"] = signature
    headers.setdefault("X-Shopify-Topic", "orders/create")
    headers.setdefault("X-Shopify-Shop-Domain", "paper-and-co.myshopify.com")
    headers["Content-Type"] = "application/json"

    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://shop.test") as http:
            return await http.post("/webhooks/shopify/orders", content=body, headers=headers)

    return asyncio.run(send())


def test_router_is_registered_in_the_app(client: FastAPI) -> None:
    assert "/webhooks/shopify/orders" in client.openapi()["paths"]


def test_verified_order_is_stored_once(any_client: FastAPI, ws: Workspace) -> None:
    client = any_client
    # Shopify's own serialisation (spacing, key order) is what is signed: send it verbatim.
    body = (DATA / "shopify_order.json").read_bytes()
    response = post(client, body, sign(body, SECRET), **{"X-Shopify-Webhook-Id": "b54557e4"})
    assert response.status_code == 200, response.text
    assert response.json() == {"success": True, "stored": 2, "duplicates": 0, "quarantined": 0}
    retry = post(client, body, sign(body, SECRET))
    assert retry.json()["duplicates"] == 2
    rows = ws.store.fetchall(
        "SELECT type, event, user_id, source, properties, context FROM events ORDER BY type"
    )
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [
        ("identify", None, "7390016487541", "shopify"),
        ("track", "Order Completed", "7390016487541", "shopify"),
    ]
    props, context = as_json(rows[1][4]), as_json(rows[1][5])
    assert props["total"] == 256.15 and len(props["products"]) == 2
    assert context["shopify"] == {
        "shop_domain": "paper-and-co.myshopify.com",
        "topic": "orders/create",
        "webhook_id": "b54557e4",
    }


def test_unverified_request_gets_401_and_stores_nothing(
    client: FastAPI, workspace: Workspace
) -> None:
    ws = workspace
    body = orjson.dumps(ORDER)
    for signature in (None, "", "AAAA", "bm90IHRoZSByaWdodCBvbmU=", sign(body, SECRET + "x")):
        response = post(client, body, signature)
        assert response.status_code == 401
        error = response.json()["error"]
        assert error["code"] == "unauthorized" and error["field"] == "X-Shopify-Hmac-Sha256"
    assert count(ws, "SELECT count(*) FROM events") == 0
    assert count(ws, "SELECT count(*) FROM quarantine") == 0


def test_tampered_body_is_refused(client: FastAPI, workspace: Workspace) -> None:
    ws = workspace
    body = orjson.dumps(ORDER)
    tampered = body.replace(b'"256.15"', b'"0.01"')
    assert tampered != body
    assert post(client, tampered, sign(body, SECRET)).status_code == 401
    assert count(ws, "SELECT count(*) FROM events") == 0


def test_without_a_configured_secret_nothing_verifies(
    client: FastAPI, workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = workspace
    monkeypatch.delenv(ws.definition.shopify.secret_env)
    body = orjson.dumps(ORDER)
    response = post(client, body, sign(body, ""))
    assert response.status_code == 401
    assert "not configured" in response.json()["error"]["message"]


def test_verified_but_unmappable_is_quarantined(client: FastAPI, workspace: Workspace) -> None:
    ws = workspace
    body = orjson.dumps({**ORDER, "total_price": "lots"})
    response = post(client, body, sign(body, SECRET))
    assert response.status_code == 200
    assert response.json()["quarantined"] == 1
    rows = ws.store.fetchall("SELECT source, reason, field FROM quarantine")
    assert rows == [
        (
            "shopify",
            "shopify order cannot be mapped: $.total_price: 'lots' is not an amount",
            "$.total_price",
        )
    ]
    assert count(ws, "SELECT count(*) FROM events") == 0
    broken = b'{"id": 1, '
    assert post(client, broken, sign(broken, SECRET)).json()["quarantined"] == 1


def test_other_topics_are_acknowledged_not_mapped(client: FastAPI, workspace: Workspace) -> None:
    ws = workspace
    body = orjson.dumps(ORDER)
    response = post(client, body, sign(body, SECRET), **{"X-Shopify-Topic": "orders/cancelled"})
    assert response.status_code == 200 and "ignored" in response.json()
    assert count(ws, "SELECT count(*) FROM events") == 0
