"""Fixtures of the demo tests: one small shop generated once per session."""

from __future__ import annotations

from typing import Any

import pytest

from segmint.demo import Shop, ShopConfig
from segmint.demo.customer import Customer

SMALL = 1500


@pytest.fixture(scope="session")
def small_shop() -> list[tuple[Customer, list[dict[str, Any]]]]:
    """Every customer of a 1,500-customer shop with their messages (default seed)."""
    return list(Shop(ShopConfig(customers=SMALL)).customers())
