"""Shopify order webhooks: verify the signature, map the order to Segment messages.

Shopify signs each webhook with ``X-Shopify-Hmac-Sha256``: the base64 HMAC-SHA256 of the raw
request body under the app's shared secret. :func:`verify` checks it in constant time, on the
bytes as received (re-serialised JSON would not match).

:func:`order_messages` turns one order into an ``identify`` for its customer (email, name,
marketing consent) and an ``Order Completed`` track following the Segment e-commerce spec.
The message ids are derived from the Shopify ids (``shopify-order-{id}``), so Shopify's
retries, and an import of the same order from a shop export, store the order once.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
from collections.abc import Mapping
from typing import Any

from segmint.intake.errors import IntakeError

EVENT = "Order Completed"
SOURCE = "shopify"
LIBRARY = {"name": "segmint-shopify", "version": "1"}


class ShopifyPayloadError(IntakeError, ValueError):
    """A verified order payload that cannot be mapped; it is quarantined with this reason.

    Attributes:
        field: The JSON path of the offending field.
    """

    def __init__(self, message: str, field: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


def sign(body: bytes, secret: str) -> str:
    """The ``X-Shopify-Hmac-Sha256`` value for ``body`` (what Shopify sends; for tests)."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def verify(body: bytes, header: str | None, secret: str | None) -> bool:
    """Whether ``header`` is the valid signature of the raw ``body`` under ``secret``.

    A missing header, a missing or empty secret, or a header that is not base64 all fail.
    The digests are compared with :func:`hmac.compare_digest` (constant time).
    """
    if not header or not secret:
        return False
    try:
        given = base64.b64decode(header.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    expected = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return hmac.compare_digest(given, expected)


def order_messages(order: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Map a Shopify order (the ``orders/create`` or ``orders/paid`` payload) to messages.

    Returns:
        An ``identify`` of the customer (when the order has an email or a customer) followed
        by the ``Order Completed`` track.

    Raises:
        ShopifyPayloadError: If the order lacks an id or a time, or a price is not a number.
    """
    if not isinstance(order, Mapping):
        raise ShopifyPayloadError("expected a JSON object", "$")
    order_id = _required_id(order, "id")
    who = _who(order, order_id)
    stamp = order.get("processed_at") or order.get("created_at")
    if not isinstance(stamp, str) or not stamp:
        raise ShopifyPayloadError("missing order time (processed_at or created_at)", "$.created_at")
    traits = _traits(order)
    context: dict[str, Any] = {"library": LIBRARY, "traits": {"email": traits["email"]}}
    if not traits.get("email"):
        context.pop("traits")
    if order.get("browser_ip"):
        context["ip"] = order["browser_ip"]
    track = {
        "type": "track",
        "event": EVENT,
        "messageId": f"shopify-order-{order_id}",
        "timestamp": stamp,
        "properties": _properties(order, order_id),
        "context": context,
        **who,
    }
    if not traits:
        return [track]
    identify = {
        "type": "identify",
        "messageId": f"shopify-customer-order-{order_id}",
        "timestamp": stamp,
        "traits": traits,
        "context": {"library": LIBRARY},
        **who,
    }
    return [identify, track]


def _who(order: Mapping[str, Any], order_id: str) -> dict[str, str]:
    customer = order.get("customer")
    if isinstance(customer, Mapping) and customer.get("id") is not None:
        return {"userId": _required_id(customer, "id", "$.customer")}
    token = order.get("checkout_token") or order.get("token") or order_id
    return {"anonymousId": f"shopify-checkout-{token}"}


def _traits(order: Mapping[str, Any]) -> dict[str, Any]:
    customer = order.get("customer")
    customer = customer if isinstance(customer, Mapping) else {}
    traits: dict[str, Any] = {
        "email": customer.get("email") or order.get("email") or order.get("contact_email"),
        "first_name": customer.get("first_name"),
        "last_name": customer.get("last_name"),
        "phone": customer.get("phone") or order.get("phone"),
        "email_consent": _consent(customer),
    }
    return {k: v for k, v in traits.items() if v not in (None, "")}


def _consent(customer: Mapping[str, Any]) -> bool | None:
    """Shopify's marketing consent: ``email_marketing_consent.state``, else the older flag."""
    state = customer.get("email_marketing_consent")
    if isinstance(state, Mapping) and state.get("state"):
        return bool(state["state"] == "subscribed")
    flag = customer.get("accepts_marketing")
    return flag if isinstance(flag, bool) else None


def _properties(order: Mapping[str, Any], order_id: str) -> dict[str, Any]:
    codes = order.get("discount_codes") or []
    coupon = codes[0].get("code") if codes and isinstance(codes[0], Mapping) else None
    props: dict[str, Any] = {
        "order_id": order_id,
        "order_name": order.get("name"),
        "checkout_id": _text(order.get("checkout_id")),
        "total": _money(order, "total_price"),
        "subtotal": _money(order, "subtotal_price"),
        "tax": _money(order, "total_tax"),
        "discount": _money(order, "total_discounts"),
        "shipping": _shipping(order),
        "currency": order.get("currency"),
        "status": order.get("financial_status"),
        "coupon": coupon,
        "products": _products(order.get("line_items")),
    }
    if props["total"] is None:
        raise ShopifyPayloadError("missing total_price", "$.total_price")
    return {k: v for k, v in props.items() if v is not None}


def _products(items: Any) -> list[dict[str, Any]]:
    if items is None:
        return []
    if not isinstance(items, list):
        raise ShopifyPayloadError("expected a list", "$.line_items")
    return [_product(item, f"$.line_items[{i}]") for i, item in enumerate(items)]


def _product(item: Any, path: str) -> dict[str, Any]:
    if not isinstance(item, Mapping):
        raise ShopifyPayloadError("expected an object", path)
    quantity = item.get("quantity", 1)
    if not isinstance(quantity, int) or isinstance(quantity, bool):
        raise ShopifyPayloadError(f"quantity {quantity!r} is not a whole number", path)
    product = {
        "product_id": _text(item.get("product_id")),
        "variant_id": _text(item.get("variant_id")),
        "sku": item.get("sku") or None,
        "name": item.get("title") or item.get("name"),
        "variant": item.get("variant_title") or None,
        "brand": item.get("vendor") or None,
        "category": item.get("product_type") or None,
        "quantity": quantity,
        "price": _money(item, "price", path),
    }
    return {k: v for k, v in product.items() if v is not None}


def _shipping(order: Mapping[str, Any]) -> float | None:
    lines = order.get("shipping_lines")
    if not isinstance(lines, list) or not lines:
        return None
    return sum(_money(line, "price", "$.shipping_lines") or 0.0 for line in lines)


def _money(obj: Any, key: str, path: str = "$") -> float | None:
    """Shopify sends amounts as decimal strings ("199.00")."""
    value = obj.get(key) if isinstance(obj, Mapping) else None
    if value is None or value == "":
        return None
    try:
        amount = float(value)
    except (TypeError, ValueError):
        amount = math.nan
    if not math.isfinite(amount) or isinstance(value, bool):
        raise ShopifyPayloadError(f"{value!r} is not an amount", f"{path}.{key}")
    return amount


def _required_id(obj: Mapping[str, Any], key: str, path: str = "$") -> str:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, int | str) or value == "":
        raise ShopifyPayloadError("missing or invalid id", f"{path}.{key}")
    return str(value)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
