"""Web sessions of one demo customer: page views, product views, carts and orders."""

from __future__ import annotations

import random
from typing import Any

from segmint.demo import catalog as cat
from segmint.demo.archetypes import Archetype
from segmint.demo.messages import Entry

HOUR_WEIGHTS = (
    1, 1, 1, 1, 1, 1, 2, 3, 4, 5, 5, 5, 6, 6, 5, 5, 5, 6, 8, 10, 11, 10, 7, 3,
)  # fmt: skip
"""How likely a session starts at each local hour: quiet at night, busy in the evening."""
COUPONS = (("WELCOME10", 0.10), ("SALE20", 0.20), ("FLASH30", 0.30))
MISSING_TOTAL = 0.015
"""Share of orders whose total (and revenue) the shop fails to send: missing data on purpose."""


class SessionWriter:
    """Appends one customer's web sessions to a timeline.

    Args:
        rng: The customer's random source.
        arch: The customer's archetype.
        zone: The customer's time zone.
        seed: The shop's seed (part of order and cart ids).
        index: The customer's number.
        end: Nothing is written at or after this instant.
    """

    def __init__(
        self,
        rng: random.Random,
        arch: Archetype,
        zone: cat.Zone,
        seed: int,
        index: int,
        end: float,
    ) -> None:
        self.rng = rng
        self.arch = arch
        self.zone = zone
        self.end = end
        self.entries: list[Entry] = []
        self.favourite = rng.choice(cat.CATEGORY_NAMES)
        self._ids = f"{seed}-{index:06d}"
        self._carts = 0

    def local_time(self, at: float) -> float:
        """Move ``at`` to a likely local hour of the same day (evenings are busiest)."""
        offset = self.zone.offset_hours * 3600
        day = (at + offset) // 86400 * 86400
        hour = self.rng.choices(range(24), weights=HOUR_WEIGHTS)[0]
        moved = day + hour * 3600 + self.rng.uniform(0, 3600) - offset
        return moved if moved < self.end else at

    def browse(self, at: float, *, abandon: bool = False) -> None:
        """A browsing session; it may put products in a cart and leave them there."""
        at = self._landing(at)
        views = self._views(at, self.rng.randint(*self.arch.views))
        if views and (abandon or self.rng.random() < self.arch.cart_rate):
            at, items = self._add_to_cart(views[-1][0], [p for _, p in views][-2:])
            self._add(at + self.rng.uniform(3600, 3 * 3600), "Cart Abandoned", self._cart(items))

    def purchase(self, at: float, number: int) -> None:
        """A session that ends with order number ``number`` completed at ``at``."""
        wanted = self.rng.randint(*self.arch.items)
        start = at - 240 * wanted - 300
        self._landing(start)
        views = self._views(start + 30, wanted)
        _, items = self._add_to_cart(views[-1][0], [p for _, p in views])
        self._add(at, "Order Completed", self._order(items, number))

    def _add(self, at: float, event: str, props: dict[str, Any]) -> None:
        if at < self.end:
            self.entries.append(Entry(at, "track", event, props))

    def _landing(self, at: float) -> float:
        sale = self.arch.loves_sales and self.rng.random() < 0.7
        name, path = ("Sale", "/sale") if sale else self.rng.choice(cat.PAGES)
        props = {
            "path": path,
            "url": f"{cat.SHOP_URL}{path}",
            "title": f"{name} · Demo Shop",
            "referrer": self.rng.choice(cat.REFERRERS),
        }
        if at < self.end:
            self.entries.append(Entry(at, "page", name, props))
        return at

    def _views(self, at: float, count: int) -> list[tuple[float, cat.Product]]:
        seen: list[tuple[float, cat.Product]] = []
        for _ in range(max(count, 1)):
            at += self.rng.uniform(20, 150)
            product = self._pick()
            props = self._product(product)
            if self.rng.random() < 0.02:
                del props["category"]  # missing data on purpose
            self._add(at, "Product Viewed", props)
            seen.append((at, product))
        return seen

    def _pick(self) -> cat.Product:
        category = self.favourite if self.rng.random() < 0.55 else None
        category = category or self.rng.choice(cat.CATEGORY_NAMES)
        premium = self.rng.random() < self.arch.premium
        shelf = cat.PREMIUM_BY_CATEGORY if premium else cat.BUDGET_BY_CATEGORY
        return self.rng.choice(shelf[category])

    def _price(self, product: cat.Product) -> float:
        return round(product.price * 0.7, 2) if self.arch.loves_sales else product.price

    def _product(self, product: cat.Product, quantity: int | None = None) -> dict[str, Any]:
        props: dict[str, Any] = {
            "product_id": product.product_id,
            "sku": product.sku,
            "name": product.name,
            "category": product.category,
            "price": self._price(product),
            "currency": self.zone.currency,
        }
        if self.arch.loves_sales:
            props["on_sale"] = True
        if quantity is not None:
            props["quantity"] = quantity
        return props

    def _add_to_cart(
        self, at: float, products: list[cat.Product]
    ) -> tuple[float, list[dict[str, Any]]]:
        self._carts += 1
        cart_id = f"cart-{self._ids}-{self._carts}"
        items = []
        for product in products:
            at += self.rng.uniform(10, 90)
            item = self._product(product, 2 if self.rng.random() < 0.1 else 1)
            item.pop("currency")
            items.append(item)
            self._add(at, "Product Added", dict(item, cart_id=cart_id, currency=self.zone.currency))
        return at, [dict(item, cart_id=cart_id) for item in items]

    def _cart(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        value = round(sum(i["price"] * i["quantity"] for i in items), 2)
        products = [{k: v for k, v in i.items() if k != "cart_id"} for i in items]
        return {
            "cart_id": items[0]["cart_id"],
            "value": value,
            "currency": self.zone.currency,
            "products": products,
        }

    def _order(self, items: list[dict[str, Any]], number: int) -> dict[str, Any]:
        cart = self._cart(items)
        subtotal = cart["value"]
        props: dict[str, Any] = {"order_id": f"order-{self._ids}-{number + 1}"}
        discount = 0.0
        if self.rng.random() < self.arch.coupon:
            code, share = self.rng.choice(COUPONS)
            discount = round(subtotal * share, 2)
            props["coupon"] = code
        shipping = 0.0 if subtotal >= 75 else 5.95
        tax = round((subtotal - discount) * 0.08, 2)
        top = max(cart["products"], key=lambda p: p["price"])
        props |= {
            "checkout_id": cart["cart_id"],
            "subtotal": subtotal,
            "discount": discount,
            "shipping": shipping,
            "tax": tax,
            "total": round(subtotal - discount + shipping + tax, 2),
            "revenue": round(subtotal - discount, 2),
            "currency": self.zone.currency,
            "category": top["category"],
            "products": cart["products"],
        }
        if self.rng.random() < MISSING_TOTAL:
            del props["total"], props["revenue"]  # missing data on purpose
        return props
