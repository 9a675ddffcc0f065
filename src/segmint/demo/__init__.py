"""The demo shop: a deterministic synthetic shop and the ``segmint demo`` walk-through."""

from __future__ import annotations

from segmint.demo.errors import DemoError
from segmint.demo.generator import (
    DEFAULT_AS_OF,
    DEFAULT_CUSTOMERS,
    DEFAULT_SEED,
    Shop,
    ShopConfig,
    ShopStats,
)

__all__ = [
    "DEFAULT_AS_OF",
    "DEFAULT_CUSTOMERS",
    "DEFAULT_SEED",
    "DemoError",
    "Shop",
    "ShopConfig",
    "ShopStats",
]
