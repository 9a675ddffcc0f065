"""The demo shop's fixed world: products, categories, time zones, names and email programme.

Everything here is a constant or derived from a constant, so two runs with the same seed see
the same shop. Email addresses use the reserved ``example.*`` domains (RFC 2606).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

CATALOG_SEED = 20261101
"""Seed of the product catalogue; independent of the customer seed so products never move."""


@dataclass(frozen=True, slots=True)
class Product:
    """One product of the catalogue."""

    product_id: str
    sku: str
    name: str
    category: str
    price: float
    premium: bool


@dataclass(frozen=True, slots=True)
class Zone:
    """A time zone customers live in, with its standard UTC offset and shop currency."""

    name: str
    offset_hours: float
    currency: str
    weight: int


CATEGORIES: dict[str, tuple[tuple[str, ...], float, float]] = {
    # category: (nouns, lowest price, highest price)
    "shoes": (("Sneaker", "Boot", "Loafer", "Sandal", "Runner"), 45.0, 260.0),
    "outerwear": (("Parka", "Trench Coat", "Puffer", "Rain Jacket", "Wool Coat"), 80.0, 480.0),
    "dresses": (("Wrap Dress", "Slip Dress", "Shirt Dress", "Maxi Dress"), 40.0, 320.0),
    "tops": (("T-Shirt", "Blouse", "Sweater", "Hoodie", "Polo"), 15.0, 140.0),
    "jeans": (("Slim Jeans", "Straight Jeans", "Wide-Leg Jeans", "Chinos"), 35.0, 180.0),
    "accessories": (("Scarf", "Belt", "Beanie", "Sunglasses", "Watch"), 12.0, 350.0),
    "bags": (("Tote", "Backpack", "Crossbody Bag", "Weekender"), 30.0, 520.0),
    "beauty": (("Face Serum", "Lip Balm", "Perfume", "Hand Cream"), 8.0, 120.0),
    "home": (("Candle", "Throw Blanket", "Mug Set", "Linen Pillow"), 10.0, 160.0),
}
ADJECTIVES = (
    "Classic", "Everyday", "Nordic", "Vintage", "Urban", "Coastal", "Alpine", "Essential",
    "Studio", "Heritage", "Featherweight", "Merino",
)  # fmt: skip
PRODUCTS_PER_CATEGORY = 24

ZONES: tuple[Zone, ...] = (
    Zone("America/New_York", -5, "USD", 22),
    Zone("America/Chicago", -6, "USD", 12),
    Zone("America/Denver", -7, "USD", 5),
    Zone("America/Los_Angeles", -8, "USD", 14),
    Zone("America/Toronto", -5, "USD", 4),
    Zone("Europe/London", 0, "GBP", 12),
    Zone("Europe/Berlin", 1, "EUR", 9),
    Zone("Europe/Paris", 1, "EUR", 7),
    Zone("Europe/Madrid", 1, "EUR", 4),
    Zone("Europe/Amsterdam", 1, "EUR", 3),
    Zone("Australia/Sydney", 10, "USD", 4),
    Zone("Asia/Tokyo", 9, "USD", 2),
    Zone("America/Sao_Paulo", -3, "USD", 2),
)
ZONE_WEIGHTS = tuple(z.weight for z in ZONES)

FIRST_NAMES = (
    "Olivia", "Liam", "Emma", "Noah", "Amelia", "Oliver", "Ava", "Elijah", "Sophia", "Mateo",
    "Isabella", "Lucas", "Mia", "Levi", "Charlotte", "Leo", "Harper", "Ezra", "Luna", "Hugo",
    "Chloé", "Jonas", "Léa", "Lukas", "Zoë", "Søren", "Inès", "Björn", "Aiko", "Ren",
    "Priya", "Arjun", "Fatima", "Omar", "Sofia", "Diego", "Hannah", "Finn", "Maya", "Kai",
)  # fmt: skip
LAST_NAMES = (
    "Smith", "Johnson", "Garcia", "Miller", "Davis", "Martin", "Müller", "Schmidt", "Dubois",
    "Rossi", "Silva", "Tanaka", "Sato", "Nguyen", "Kim", "Patel", "Brown", "Wilson", "Moreau",
    "Fernández", "Jansen", "O'Brien", "Novak", "Kowalski", "Andersen", "Lopez", "Clarke",
)  # fmt: skip
EMAIL_DOMAINS = ("example.com", "example.org", "example.net")

PAGES: tuple[tuple[str, str], ...] = (
    ("Home", "/"),
    ("New In", "/new"),
    ("Sale", "/sale"),
    ("Journal", "/journal"),
    ("Help", "/help"),
)
REFERRERS = (
    "https://www.google.com/", "https://www.instagram.com/", "https://www.pinterest.com/",
    "", "", "",
)  # fmt: skip

NEWSLETTERS: tuple[tuple[str, str], ...] = (
    ("new-arrivals", "New in this week"),
    ("style-notes", "Style notes: what to wear now"),
    ("sale-preview", "Sale preview: up to 40% off"),
    ("members-weekend", "Members' weekend: free shipping"),
)
"""Newsletter kinds the shop rotates through: (campaign id prefix, subject)."""

SHOP_URL = "https://shop.example.com"


def build_catalog() -> tuple[Product, ...]:
    """Build the product catalogue from :data:`CATALOG_SEED` (the same on every run)."""
    rng = random.Random(CATALOG_SEED)  # noqa: S311 (synthetic data, not security)
    products: list[Product] = []
    for category, (nouns, low, high) in CATEGORIES.items():
        for i in range(PRODUCTS_PER_CATEGORY):
            noun = nouns[i % len(nouns)]
            # Prices skew low: most of a category is affordable, a few items are premium.
            fraction = rng.random() ** 2
            price = round(low + (high - low) * fraction, 0) - 0.01
            sku = f"{category[:3].upper()}-{i + 1:03d}"
            products.append(
                Product(
                    product_id=f"p-{category}-{i + 1:03d}",
                    sku=sku,
                    name=f"{rng.choice(ADJECTIVES)} {noun}",
                    category=category,
                    price=price,
                    premium=fraction > 0.45,
                )
            )
    return tuple(products)


CATALOG = build_catalog()
CATEGORY_NAMES = tuple(CATEGORIES)
PRODUCTS_BY_CATEGORY: dict[str, tuple[Product, ...]] = {
    c: tuple(p for p in CATALOG if p.category == c) for c in CATEGORY_NAMES
}
PREMIUM_BY_CATEGORY: dict[str, tuple[Product, ...]] = {
    c: tuple(p for p in ps if p.premium) or ps for c, ps in PRODUCTS_BY_CATEGORY.items()
}
BUDGET_BY_CATEGORY: dict[str, tuple[Product, ...]] = {
    c: tuple(p for p in ps if not p.premium) or ps for c, ps in PRODUCTS_BY_CATEGORY.items()
}
