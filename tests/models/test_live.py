"""CLV follows a profile's orders in real time; the other kinds follow their schedule."""

from __future__ import annotations

from datetime import timedelta

from segmint.clock import FixedClock
from segmint.intake.pipeline import Intake
from segmint.membership.service import Membership
from segmint.models import service
from segmint.models.live import attach_live_scores
from segmint.workspace import Workspace

from .test_training import AS_OF, _shop

YAML = """
name: shop
traits:
  orders: {count: events, event: Order Completed}
models:
  clv: {kind: clv, within: 30d}
segments:
  likely_active: {rule: "clv_probability_alive > 0.9 and orders >= 2"}
"""


def _order(user: str, at, total: float, mid: str) -> dict:
    return {
        "type": "track",
        "userId": user,
        "event": "Order Completed",
        "properties": {"total": total},
        "timestamp": at.isoformat(),
        "messageId": mid,
    }


def test_an_order_rescores_clv_and_moves_membership_at_once(tmp_path):
    folder = tmp_path / "ws"
    folder.mkdir()
    (folder / "segmint.yaml").write_text(YAML)
    ws = Workspace.open(folder)
    history = [_order(p, t, v, f"h{i}") for i, (p, t, v) in enumerate(_shop(200))]
    history += [
        _order(f"gone{i}", AS_OF - timedelta(days=170 - 7 * w), 30.0, f"g{i}.{w}")
        for i in range(100)
        for w in range(i % 5 + 2)
    ]  # weekly buyers who stopped
    history += [_order("zoe", AS_OF - timedelta(days=d), 40.0, f"z{d}") for d in (170, 163, 156)]
    intake = Intake(ws, FixedClock(AS_OF))
    intake.submit(history, source="test")
    service.train(ws, "clv", AS_OF)
    service.score(ws, "clv", AS_OF)
    Membership(ws).refresh(AS_OF)
    zoe = ws.store.fetchall("SELECT DISTINCT profile_id FROM events WHERE user_id = 'zoe'")[0][0]

    def members() -> set[str]:
        rows = ws.store.fetchall(
            "SELECT profile_id FROM memberships WHERE segment = 'likely_active'"
        )
        return {r[0] for r in rows}

    before = ws.store.fetchall('SELECT "values" FROM trait_values WHERE profile_id = ?', [zoe])[0][
        0
    ]
    assert zoe not in members(), before  # three weekly orders long ago, none since: gone
    at = AS_OF + timedelta(hours=1)
    clock = FixedClock(at)
    live_intake = Intake(ws, clock)
    engine = Membership(ws).realtime(clock)
    engine.catch_up(at)
    live_intake.add_listener(engine)
    live = attach_live_scores(ws, live_intake, engine, clock)
    live_intake.submit([_order("zoe", at, 55.0, "z-now")], source="test")
    assert zoe in members()
    change = ws.store.fetchall(
        "SELECT cause FROM membership_changes WHERE profile_id = ? AND change = 'enter'", [zoe]
    )
    assert "clv_probability_alive" in str(change[-1][0])
    # a product view is not an order: nothing is re-scored
    scores = "SELECT count(*) FROM events WHERE type = 'score'"
    before = ws.store.fetchall(scores)
    view = {**_order("zoe", at, 0.0, "v1"), "event": "Product Viewed"}
    live_intake.submit([view], source="test")
    assert ws.store.fetchall(scores) == before
    assert live.models.keys() == {"clv"}
    engine.close()
    ws.close()


def test_a_version_of_another_kind_is_not_used_in_real_time(tmp_path, caplog):
    """`clv` was a clustering model when last trained: each order made the server load the
    clusters as a CLV model and log a traceback (KeyError: 'bgnbd'), instead of waiting for
    a CLV version."""
    from segmint.models.registry import ModelVersion, register

    folder = tmp_path / "ws"
    folder.mkdir()
    (folder / "segmint.yaml").write_text(YAML)
    ws = Workspace.open(folder)
    register(ws.store, ModelVersion("clv", 0, "clustering", AS_OF, AS_OF, {}, ["orders"], {},
                                    {}, {}, params={"centres": [[1.0]]}))  # fmt: skip
    clock = FixedClock(AS_OF + timedelta(hours=1))
    intake = Intake(ws, clock)
    engine = Membership(ws).realtime(clock)
    attach_live_scores(ws, intake, engine, clock)
    intake.submit([_order("ann", clock.now(), 20.0, "a1")], source="test")
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == []
    assert ws.store.fetchall("SELECT count(*) FROM events WHERE source = 'segmint.models'") == [
        (0,)
    ]
    assert ws.store.fetchall("SELECT count(*) FROM events") == [(1,)]
    ws.close()
