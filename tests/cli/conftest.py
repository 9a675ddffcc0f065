"""Fixtures of the CLI tests that feed commands the wrong things."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import refreshed_shop

SHOP_AS_OF = "2026-11-01T00:00:00Z"
"""The instant the ``shop`` fixture's workspace is refreshed at."""


@pytest.fixture
def shop(cli: Callable[..., Any], tmp_path: Path) -> Path:
    """``segmint init`` with its sample contacts and orders ingested and refreshed."""
    return refreshed_shop(cli, tmp_path, SHOP_AS_OF)


@pytest.fixture
def is_erased(cli: Callable[..., Any]) -> Callable[[Path, str], bool]:
    """Whether ``profile show`` says the person ``ref`` of a workspace was erased."""

    def check(shop: Path, ref: str) -> bool:
        shown = cli("-w", str(shop), "profile", "show", ref, "--as-of", SHOP_AS_OF)
        return "was erased" in shown.stderr

    return check


def import_consent(cli: Callable[..., Any], shop: Path, *rows: str) -> Any:
    """``consent import`` of a CSV (email, topic, status, occurred_at) holding ``rows``."""
    csv = shop / "consent.csv"
    csv.write_text("email,topic,status,occurred_at\n" + "".join(f"{row}\n" for row in rows))
    return cli("-w", str(shop), "consent", "import", str(csv))
