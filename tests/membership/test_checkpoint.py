"""Trait state written every interval: what a stop with or without saving leaves behind."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from segmint.clock import FixedClock
from segmint.intake.pipeline import Intake
from segmint.membership.batch import reconcile
from segmint.membership.changes import all_members
from segmint.membership.compiled import CompiledSegments
from segmint.membership.realtime import UNSAVED_KEY, RealtimeEngine
from segmint.store.bulk import upsert_rows

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def _meta(store, key: str) -> str | None:
    rows = store.fetchall("SELECT value FROM meta WHERE key = ?", [key])
    return rows[0][0] if rows else None


def _rig(ws, at: datetime, every: float):
    clock = FixedClock(at)
    intake = Intake(ws, clock)
    engine = RealtimeEngine(
        ws.store, CompiledSegments(ws.definition), clock, checkpoint_every=every
    )
    intake.add_listener(engine)
    return clock, intake, engine


def _pid(store, user: str) -> str:
    rows = store.fetchall(
        "SELECT profile_id FROM identities WHERE kind = 'user_id' AND value = ?", [user]
    )
    return str(rows[0][0])


def test_state_waits_for_the_checkpoint_but_memberships_and_schedule_do_not(
    tmp_path, track, make_workspace
):
    ws = make_workspace(tmp_path)
    try:
        _, intake, engine = _rig(ws, T0, every=3600)
        intake.submit([track("u1", "Order Completed", T0, total=700)], source="test")
        pid = _pid(ws.store, "u1")
        assert "recent_buyer" in all_members(ws.store)[pid]
        assert ws.store.fetchall("SELECT count(*) FROM schedule")[0][0] == 1
        assert ws.store.fetchall("SELECT count(*) FROM trait_state")[0][0] == 0
        assert _meta(ws.store, UNSAVED_KEY) == "1"
        assert engine.checkpoint() == 1
        assert ws.store.fetchall("SELECT count(*) FROM trait_state")[0][0] == 1
        assert _meta(ws.store, UNSAVED_KEY) == "0"
        assert engine.checkpoint() == 0
    finally:
        ws.close()


def test_a_stop_without_saving_rebuilds_state_from_the_events(tmp_path, track, make_workspace):
    ws = make_workspace(tmp_path)
    try:
        _, intake, engine = _rig(ws, T0, every=0)
        intake.submit([track("u1", "Order Completed", T0, total=300)], source="test")
        _, intake, _lagging = _rig(ws, T0 + DAY, every=3600)
        later = T0 + DAY
        intake.submit([track("u1", "Order Completed", later, total=400)], source="test")
        # The process dies here: the stored state still holds only the first order.
        assert _meta(ws.store, UNSAVED_KEY) == "1"
        clock, intake, engine = _rig(ws, T0 + 2 * DAY, every=3600)
        assert ws.store.fetchall("SELECT count(*) FROM trait_state")[0][0] == 0
        intake.submit([track("u1", "Order Completed", T0 + 2 * DAY, total=400)], source="test")
        pid = _pid(ws.store, "u1")
        # 300 + 400 + 400 from the rebuilt state: the lost checkpoint cost nothing.
        assert "vip" in all_members(ws.store)[pid]
        engine.close()
        assert _meta(ws.store, UNSAVED_KEY) == "0"
        assert reconcile(ws.store, engine.compiled, T0 + 2 * DAY) == []
    finally:
        ws.close()


def test_a_clean_close_keeps_the_saved_state(tmp_path, track, make_workspace):
    ws = make_workspace(tmp_path)
    try:
        _, intake, engine = _rig(ws, T0, every=3600)
        intake.submit([track("u1", "Order Completed", T0, total=600)], source="test")
        engine.close()
        _, intake, engine = _rig(ws, T0 + DAY, every=3600)
        assert ws.store.fetchall("SELECT count(*) FROM trait_state")[0][0] == 1
        intake.submit([track("u1", "Order Completed", T0 + DAY, total=600)], source="test")
        assert "vip" in all_members(ws.store)[_pid(ws.store, "u1")]
    finally:
        ws.close()


def test_upsert_rows_replaces_and_inserts_on_each_backend(store):
    key = ("profile_id",)
    cols = ("profile_id", "due_at")
    first = [(f"p{i}", datetime(2026, 1, 1) + timedelta(hours=i)) for i in range(40)]
    upsert_rows(store, "schedule", cols, key, first)
    second = [(f"p{i}", datetime(2027, 1, 1)) for i in range(20, 60)]
    with store.transaction():
        upsert_rows(store, "schedule", cols, key, second)
        upsert_rows(store, "schedule", cols, key, [("p0", datetime(2028, 1, 1))])
    rows = dict(store.fetchall("SELECT profile_id, due_at FROM schedule"))
    assert len(rows) == 60
    assert rows["p0"] == datetime(2028, 1, 1)
    assert rows["p1"] == datetime(2026, 1, 1, 1)
    assert all(rows[f"p{i}"] == datetime(2027, 1, 1) for i in range(20, 60))
