"""segments suggest: outcome rates across a threshold, and a proposal that changes nothing."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from segmint.measure.errors import MeasureError
from segmint.measure.suggest import suggest
from segmint.membership import Membership
from segmint.workspace import Workspace

from .conftest import T0, Shop

D = timedelta(days=1)


@pytest.fixture
def shop(workspace: Workspace) -> Shop:
    """60 VIPs (lifetime value 1000 … 3950): above 2500 half convert after the send, below
    none do; ten non-members below the threshold (700 … 970)."""
    s = Shop(workspace)
    for i in range(60):
        s.ordered(f"v{i:02d}", T0 - 10 * D, 1000 + 50 * i)
    for i in range(10):
        s.ordered(f"n{i}", T0 - 10 * D, 700 + 30 * i)
    Membership(workspace).refresh(T0)
    for i in range(60):
        s.sent("lifecycle_update", f"v{i:02d}", T0)
        if 1000 + 50 * i >= 2500 and i % 2 == 0:
            s.ordered(f"v{i:02d}", T0 + D, 10)
    return s


def test_buckets_and_a_tighter_threshold(shop: Shop) -> None:
    ws = shop.workspace
    report = suggest(ws, "vip", T0 + 10 * D)
    assert (report.recipients, report.converted, report.size) == (60, 15, 60)
    (clause,) = report.clauses
    assert (clause.trait, clause.op, clause.threshold) == ("lifetime_value", ">=", 1000.0)
    assert [b.n for b in clause.buckets] == [12] * 5
    assert [b.converted for b in clause.buckets] == [0, 0, 3, 6, 6]
    assert clause.proposal is not None and clause.proposal["direction"] == "tighter"
    # the loosest bucket edge whose kept recipients convert significantly better than the
    # dropped (0 of 12 below 1600 against 15 of 48): 1600
    assert clause.proposal["clause"] == "lifetime_value >= 1600"
    assert clause.proposal["expected_size"] == 48  # 1600 … 3950 in steps of 50
    assert clause.proposal["expected_rate"] == pytest.approx(15 / 48)
    assert ws.definition.segments["vip"].rule == "lifetime_value >= 1000"  # unchanged


def test_a_flat_edge_proposes_looser_with_its_size(shop: Shop) -> None:
    ws = shop.workspace
    for i in range(0, 30, 2):  # the low values convert as well now
        shop.ordered(f"v{i:02d}", T0 + D, 10)
    report = suggest(ws, "vip", T0 + 10 * D)
    proposal = report.clauses[0].proposal
    assert proposal is not None and proposal["direction"] == "looser"
    assert proposal["clause"] == "lifetime_value >= 450"  # one bucket width (550) lower
    assert proposal["expected_size"] == 70  # the ten non-members join
    assert "assumed" in proposal["why"]


def test_a_journey_s_messages_are_outcomes_of_its_entry_segment(workspace: Workspace) -> None:
    # segments suggest read campaign sends only: `lapsing`, which only the win-back journey
    # sends to, was refused ("no campaign targets it") though its messages had outcomes
    shop = Shop(workspace)
    for i in range(40):  # last orders 46 … 85 days ago: all lapsing; orders 1 … 4
        for n in range(1 + i % 4):
            shop.ordered(f"l{i:02d}", T0 - (46 + i) * D - n * D * 100, 50)
    Membership(workspace).refresh(T0)
    for i in range(40):
        shop.sent(f"journey:win_back:miss_you:{1 + i % 2}", f"l{i:02d}", T0)
        if i % 4 == 3:  # the four-order customers come back
            shop.ordered(f"l{i:02d}", T0 + D, 30)
    report = suggest(workspace, "lapsing", T0 + 10 * D)
    assert (report.campaigns, report.journeys) == ([], ["win_back"])
    assert (report.recipients, report.converted) == (40, 10)
    orders = next(c for c in report.clauses if c.trait == "orders")
    assert [(b.low, b.n, b.converted) for b in orders.buckets] == [
        (1.0, 10, 0), (2.0, 10, 0), (3.0, 10, 0), (4.0, 10, 10),
    ]  # fmt: skip
    assert report.to_dict()["journeys"] == ["win_back"]


def test_refusals(workspace: Workspace) -> None:
    with pytest.raises(MeasureError, match="did you mean 'vip'"):
        suggest(workspace, "vpi", T0)
    with pytest.raises(MeasureError, match="no campaign or journey sends to segment 'churned'"):
        suggest(workspace, "churned", T0)


def test_cli_json(cli: Callable[..., Any], shop: Shop) -> None:
    path = str(shop.workspace.path)
    shop.workspace.close()
    out = cli("-w", path, "segments", "suggest", "vip", "--as-of",
              (T0 + 10 * D).isoformat(), "--format", "json")  # fmt: skip
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["clauses"][0]["proposal"]["clause"] == "lifetime_value >= 1600"
    table = cli("-w", path, "segments", "suggest", "vip", "--as-of", (T0 + 10 * D).isoformat())
    assert "the rule is unchanged" in table.stdout
