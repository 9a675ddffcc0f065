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


def test_refusals(workspace: Workspace) -> None:
    with pytest.raises(MeasureError, match="did you mean 'vip'"):
        suggest(workspace, "vpi", T0)
    with pytest.raises(MeasureError, match="no campaign targets segment 'churned'"):
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
