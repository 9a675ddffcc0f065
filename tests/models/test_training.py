"""Training on a store: propensity's time split (no leakage), refusals, clustering rules."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from segmint.models import service
from segmint.models.errors import NotEnoughDataError
from segmint.models.registry import latest, versions
from segmint.rules import check, parse
from segmint.rules.workspace import workspace_schema
from segmint.workspace import Workspace

from .conftest import add_orders

AS_OF = datetime(2026, 6, 1, tzinfo=UTC)

YAML = """
name: shop
traits:
  orders: {count: events, event: Order Completed}
  lifetime_value: {sum: properties.total, event: Order Completed}
  avg_order_value: {avg: properties.total, event: Order Completed}
  last_purchase_at: {last: timestamp, event: Order Completed}
  orders_30d: {count: events, event: Order Completed, within: 30d}
models:
  churn: {kind: propensity, target: churn, within: 30d}
  buy: {kind: propensity, target: purchase, within: 30d, features: [orders, orders_30d]}
  clv: {kind: clv, within: 30d, horizon: 365d}
  rfm: {kind: clustering, k: 3}
"""


def _shop(n: int, seed: int = 1) -> list[tuple[str, datetime, float]]:
    """Customers whose order rate differs; the busy ones keep ordering."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        rate = rng.choice([0.01, 0.05, 0.2])  # orders per day
        spend = rng.choice([20.0, 60.0, 200.0])
        day = rng.uniform(0, 60)
        while day < 180:
            rows.append((f"p{i:04d}", AS_OF - timedelta(days=180 - day), round(spend, 2)))
            day += rng.expovariate(rate)
    return rows


def _workspace(tmp_path, rows) -> Workspace:
    folder = tmp_path / "ws"
    folder.mkdir(parents=True)
    (folder / "segmint.yaml").write_text(YAML)
    ws = Workspace.open(folder)
    add_orders(ws.store, rows)
    return ws


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    ws = _workspace(tmp_path_factory.mktemp("shop"), _shop(600))
    yield ws
    ws.close()


def test_propensity_trains_out_of_time_and_reports_calibrated_metrics(shop):
    entry = service.train(shop, "churn", AS_OF)
    assert entry.version == 1 and entry.kind == "propensity"
    assert entry.metrics["auc"] > 0.7
    assert {"log_loss", "brier", "calibration", "base_rate"} <= entry.metrics.keys()
    assert entry.data_window["final_labels"].endswith(f"{AS_OF.isoformat()}]")
    scores = service.compute_scores(shop, "churn", AS_OF)
    assert all(0.0 <= s["score"] <= 1.0 for s in scores.values())


def test_nothing_after_the_cut_off_reaches_training(tmp_path):
    """Later events (even wild ones) change neither the features nor the model trained."""
    rows = _shop(400, seed=3)
    clean = _workspace(tmp_path / "a", rows)
    cutoff = AS_OF - timedelta(days=30)
    later = [(f"p{i:04d}", cutoff + timedelta(days=1 + i % 60), 9999.0) for i in range(0, 400, 3)]
    leaky = _workspace(tmp_path / "b", rows)
    add_orders(leaky.store, [r for r in later if r[1] > AS_OF], prefix="late")
    catalog = service._catalog(clean)
    names = service.feature_traits(catalog, clean.definition.models["churn"])
    a = service.snapshot(clean, catalog, clean.definition.models["churn"], names, cutoff)
    mixed = [r for r in later if r[1] > cutoff]
    add_orders(clean.store, mixed, prefix="mid")  # after the cut-off: labels may move, features not
    b = service.snapshot(clean, catalog, clean.definition.models["churn"], names, cutoff)
    assert a.profile_ids == b.profile_ids
    assert np.array_equal(a.features, b.features, equal_nan=True)
    # Events after as_of are never read: the two stores train the same model.
    clean2 = _workspace(tmp_path / "c", rows)
    m1 = service.train(clean2, "buy", AS_OF)
    m2 = service.train(leaky, "buy", AS_OF)
    assert m1.metrics == m2.metrics
    s1 = service.compute_scores(clean2, "buy", AS_OF)
    s2 = service.compute_scores(leaky, "buy", AS_OF)
    assert s1 == s2
    for ws in (clean, leaky, clean2):
        ws.close()


def test_too_little_data_is_refused_with_how_much_is_needed(tmp_path):
    ws = _workspace(tmp_path, _shop(30))
    with pytest.raises(NotEnoughDataError, match="needs at least 200"):
        service.train(ws, "churn", AS_OF)
    ws.close()


def test_one_class_is_refused(tmp_path):
    rows = [
        (f"p{i:03d}", AS_OF - timedelta(days=d), 10.0) for i in range(300) for d in range(0, 90, 5)
    ]
    ws = _workspace(tmp_path, rows)
    with pytest.raises(NotEnoughDataError, match="0 that did not|that ordered and 0"):
        service.train(ws, "buy", AS_OF)
    ws.close()


def test_clv_trains_and_scores_every_customer(shop):
    entry = service.train(shop, "clv", AS_OF)
    assert set(entry.params) == {"bgnbd", "gamma_gamma"}
    scores = service.compute_scores(shop, "clv", AS_OF)
    assert len(scores) == 600
    one = next(iter(scores.values()))
    assert set(one) == {"expected_purchases", "probability_alive", "expected_spend", "clv"}
    assert 0 <= one["probability_alive"] <= 1


def test_clusters_are_described_and_their_rules_validate(shop):
    entry = service.train(shop, "rfm", AS_OF)
    clusters = entry.report["clusters"]
    assert len(clusters) == 3 and sum(c["size"] for c in clusters) == 600
    schema = workspace_schema(shop.definition)
    for c in clusters:
        check(parse(c["proposed_rule"]), schema, expect="boolean")
        assert c["summary"]
    assert entry.features == ["last_purchase_at", "orders", "avg_order_value"]
    assert [v.version for v in versions(shop.store, "rfm")] == [1]
    assert latest(shop.store, "rfm").metrics["k"] == 3


def test_an_unknown_model_name_suggests_the_nearest(shop):
    with pytest.raises(KeyError, match="did you mean 'churn'"):
        service.train(shop, "chrun", AS_OF)
