"""``segmint profile show``: one instant for traits, membership and clauses, and it says which."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import refreshed_shop

Run = Callable[..., Any]
REFRESHED = "2026-11-01T00:00:00Z"
LATER = "2027-06-01T00:00:00Z"  # seven months on: no longer high_value, now churned


@pytest.fixture
def shop(cli: Run, tmp_path: Path) -> Path:
    """The scaffolded workspace with its sample CSVs, refreshed at ``REFRESHED``."""
    return refreshed_shop(cli, tmp_path, REFRESHED)


def _show(cli: Run, shop: Path, *args: str) -> Any:
    result = cli("-w", str(shop), "profile", "show", "grace.hopper@example.com", *args)
    assert result.returncode == 0, result.stderr
    return result


def test_member_column_is_at_the_instant_of_the_clauses(cli: Run, shop: Path) -> None:
    view = json.loads(_show(cli, shop, "--as-of", LATER, "--format", "json").stdout)
    assert view["as_of"] == "2027-06-01T00:00:00+00:00" and view["as_of_source"] == "--as-of"
    by_name = {s["segment"]: s for s in view["segments"]}
    for entry in by_name.values():  # never "member yes — the rule is false"
        if entry["rule"] is not None and entry["member"]:
            assert entry["matches"] is True, entry
    high_value, churned = by_name["high_value"], by_name["churned"]
    assert high_value["member"] is False and high_value["matches"] is False
    assert high_value["stored"] is True  # what the refresh at REFRESHED wrote
    assert "stored membership (last refresh or real time) says yes" in high_value["reason"]
    assert churned["member"] is True and churned["stored"] is False


def test_at_the_refresh_instant_stored_and_computed_agree(cli: Run, shop: Path) -> None:
    view = json.loads(_show(cli, shop, "--as-of", REFRESHED, "--format", "json").stdout)
    for entry in view["segments"]:
        assert entry["member"] == entry["stored"], entry
        assert "stored membership" not in entry["reason"]


def test_the_table_names_its_one_instant(cli: Run, shop: Path) -> None:
    table = _show(cli, shop, "--as-of", LATER).stdout
    header = table.splitlines()[0]
    assert "as of 2027-06-01T00:00:00Z (--as-of)" in header
    assert "traits, membership and clauses all computed from its events at this instant" in header


def test_without_as_of_the_instant_is_now_and_says_so(cli: Run, shop: Path) -> None:
    view = json.loads(_show(cli, shop, "--format", "json").stdout)
    assert view["as_of_source"] == "now"
    assert "(now)" in _show(cli, shop).stdout.splitlines()[0]
