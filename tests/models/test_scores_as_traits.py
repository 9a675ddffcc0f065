"""A model's score is a trait: rules on it validate, and memberships follow its changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from segmint.clock import FixedClock
from segmint.config.errors import ConfigError
from segmint.membership.service import Membership
from segmint.models.registry import ModelVersion, register
from segmint.models.scores import score_events, write_scores
from segmint.traits.batch import read_values
from segmint.traits.validate import workspace_catalog
from segmint.workspace import Workspace

from .conftest import add_orders

T0 = datetime(2026, 6, 1, tzinfo=UTC)

YAML = """
name: shop
traits:
  orders: {count: events, event: Order Completed}
  lifetime_value: {sum: properties.total, event: Order Completed}
models:
  churn_risk: {kind: propensity, target: churn, within: 30d}
segments:
  at_risk: {rule: "churn_risk > 0.7 and lifetime_value > 20"}
"""


def _workspace(root, text=YAML, store=None) -> Workspace:
    folder = root / "ws"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "segmint.yaml").write_text(text)
    ws = Workspace.open(folder)
    if store is not None:
        ws._store = store
    return ws


@pytest.fixture
def shop(tmp_path, store):
    ws = _workspace(tmp_path, store=store)
    add_orders(
        ws.store, [("ann", T0 - timedelta(days=3), 50.0), ("bob", T0, 10.0), ("cy", T0, 80.0)]
    )
    register(ws.store, ModelVersion("churn_risk", 0, "propensity", T0, T0, {}, [], {}, {}, {}))
    yield ws
    ws.close()


def _score(ws: Workspace, at: datetime, **scores: float):
    events = score_events("churn_risk", 1, at, {p: {"score": s} for p, s in scores.items()})
    return write_scores(ws.store, events)


def test_a_rule_on_a_model_trait_validates_and_a_typo_is_located(tmp_path):
    bad = YAML.replace("churn_risk > 0.7", "churn_rsk > 0.7")
    with pytest.raises(ConfigError) as info:
        _workspace(tmp_path, bad)
    assert "churn_rsk" in str(info.value) and "churn_risk" in info.value.detailed_message()


def test_batch_refresh_moves_members_when_scores_change(shop):
    membership = Membership(shop)
    _score(shop, T0 + timedelta(hours=1), ann=0.9, bob=0.95, cy=0.2)
    report = membership.refresh(T0 + timedelta(hours=1))
    assert report.entered == 1
    assert [
        p
        for (p,) in shop.store.fetchall(
            "SELECT profile_id FROM memberships WHERE segment = 'at_risk'"
        )
    ] == ["ann"]
    _score(shop, T0 + timedelta(hours=2), ann=0.1, bob=0.95, cy=0.8)
    report = membership.refresh(T0 + timedelta(hours=2))
    assert (report.entered, report.exited) == (1, 1)
    changes = shop.store.fetchall(
        "SELECT profile_id, change FROM membership_changes ORDER BY occurred_at, profile_id"
    )
    assert changes == [("ann", "enter"), ("ann", "exit"), ("cy", "enter")]


def test_scores_do_not_make_a_profile_look_active(shop):
    catalog = workspace_catalog(shop)
    _score(shop, T0 + timedelta(days=10), ann=0.9)
    Membership(shop).refresh(T0 + timedelta(days=10))
    values = read_values(shop.store, catalog)["ann"]
    assert values["churn_risk"] == 0.9
    assert values["event_count"] == 1
    assert values["last_seen_at"] == T0 - timedelta(days=3)


def test_real_time_engine_moves_members_on_score_events_with_the_trait_as_cause(shop):
    at = T0 + timedelta(hours=1)
    engine = Membership(shop).realtime(FixedClock(at))
    engine.catch_up(at)
    stored = _score(shop, at, ann=0.9, cy=0.3)
    engine.process(stored, [], at)
    rows = shop.store.fetchall(
        "SELECT profile_id, change, cause FROM membership_changes WHERE segment = 'at_risk'"
    )
    assert [(p, c) for p, c, _ in rows] == [("ann", "enter")]
    assert "churn_risk" in str(rows[0][2])
    later = at + timedelta(hours=1)
    engine.process(_score(shop, later, ann=0.5), [], later)
    assert shop.store.fetchall("SELECT count(*) FROM memberships WHERE segment = 'at_risk'") == [
        (0,)
    ]
    engine.close()
    # the batch path reads the same scores: nothing to reconcile
    assert Membership(shop).reconcile(later) == []


def test_scoring_twice_at_one_instant_writes_nothing_new(shop):
    assert len(_score(shop, T0, ann=0.9)) == 1
    assert _score(shop, T0, ann=0.9) == []
