"""``segments validate`` warns about event and property names nothing has ever sent."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

Run = Callable[..., Any]

TYPO_SEGMENTS = """
  typo_event:
    rule: "performed('Order Complted')"
  typo_property:
    rule: "performed('Order Completed', where => 'totl > 50')"
"""
TYPO_TRAIT = """
  big_totals:
    {sum: properties.totl, event: Order Completed}
  filtered:
    {count: events, event: Order Completed, where: "currncy = 'EUR'"}
"""


def _add(path: Path, section: str, text: str) -> None:
    yaml = path / "segmint.yaml"
    body = yaml.read_text()
    assert f"\n{section}:\n" in body
    yaml.write_text(body.replace(f"\n{section}:\n", f"\n{section}:{text}", 1))


@pytest.fixture
def shop(cli: Run, tmp_path: Path) -> Path:
    """``segmint init`` and its sample orders ingested: the store knows 'Order Completed'."""
    target = tmp_path / "shop"
    assert cli("init", str(target)).returncode == 0
    orders = str(target / "data" / "shop_orders.csv")
    assert cli("-w", str(target), "ingest", orders, "--mapping", "shop_orders").returncode == 0
    return target


def _validate(cli: Run, shop: Path) -> dict[str, Any]:
    result = cli("-w", str(shop), "segments", "validate", "--format", "json")
    assert result.returncode == 0, result.stderr  # warnings never fail the check
    report: dict[str, Any] = json.loads(result.stdout)
    assert report["ok"] is True and report["errors"] == []
    return report


def test_typos_in_rules_are_warnings_with_did_you_mean(cli: Run, shop: Path) -> None:
    _add(shop, "segments", TYPO_SEGMENTS)
    report = _validate(cli, shop)
    assert report["names_checked_against"] == "the events stored so far"
    by_message = {w["message"]: w for w in report["warnings"]}
    event = by_message[
        "event 'Order Complted' in segment 'typo_event' is not in the events stored so far"
    ]
    assert event["hint"] == "did you mean 'Order Completed'?"
    assert event["key_path"] == "segments.typo_event.rule" and event["line"] is not None
    prop = by_message[
        "property 'totl' of event 'Order Completed' in segment 'typo_property' is not in "
        "the events stored so far"
    ]
    assert prop["hint"] == "did you mean 'total'?"


def test_typos_in_trait_targets_and_filters(cli: Run, shop: Path) -> None:
    _add(shop, "traits", TYPO_TRAIT)
    report = _validate(cli, shop)
    hints = {w["key_path"]: w["hint"] for w in report["warnings"]}
    assert hints["traits.big_totals.sum"] == "did you mean 'total'?"
    assert hints["traits.filtered.where"] == "did you mean 'currency'?"


def test_the_table_output_says_warning_and_its_basis(cli: Run, shop: Path) -> None:
    _add(shop, "segments", TYPO_SEGMENTS)
    result = cli("-w", str(shop), "segments", "validate")
    assert result.returncode == 0
    assert "warning: " in result.stderr and "did you mean 'Order Completed'?" in result.stderr
    assert "event and property names checked against the events stored so far" in result.stderr


def test_the_tracking_plan_is_the_basis_when_there_is_one(cli: Run, shop: Path) -> None:
    plan = """
tracking_plan:
  events:
    Order Completed:
      properties: {total: {type: number}}
    Product Viewed:
      properties: {category: {type: string}}
"""
    (shop / "segmint.yaml").write_text((shop / "segmint.yaml").read_text() + plan)
    _add(shop, "segments", "\n  viewed:\n    rule: \"performed('Product Veiwed')\"\n")
    report = _validate(cli, shop)
    assert report["names_checked_against"] == "the tracking plan"
    viewed = next(w for w in report["warnings"] if w["key_path"] == "segments.viewed.rule")
    assert viewed["message"].endswith("is not in the tracking plan")
    assert viewed["hint"] == "did you mean 'Product Viewed'?"


def test_known_names_give_no_warning(cli: Run, shop: Path) -> None:
    _add(
        shop,
        "segments",
        "\n  ok:\n    rule: \"performed('Order Completed', where => 'total > 5')\"\n",
    )
    report = _validate(cli, shop)
    assert not [w for w in report["warnings"] if w["key_path"] == "segments.ok.rule"]


def test_an_empty_store_is_no_basis(cli: Run, tmp_path: Path) -> None:
    target = tmp_path / "empty"
    assert cli("init", str(target)).returncode == 0
    _add(target, "segments", TYPO_SEGMENTS)
    report = _validate(cli, target)
    assert report["names_checked_against"] is None and report["warnings"] == []
