"""Trait state written every interval: what a stop with or without saving leaves behind."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from segmint.clock import FixedClock
from segmint.intake.pipeline import Intake
from segmint.membership.batch import reconcile
from segmint.membership.changes import all_members
from segmint.membership.compiled import CompiledSegments
from segmint.membership.realtime import RealtimeEngine
from segmint.membership.recovery import catch_up_unsaved, serving
from segmint.profiles import decode_traits
from segmint.store.bulk import upsert_rows
from segmint.traits import SEQ_KEY, SERVING_KEY, UNSAVED_KEY
from segmint.workspace import Workspace

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


@pytest.fixture
def shop(tmp_path, make_workspace):
    ws = make_workspace(tmp_path)
    yield ws
    ws.close()


@pytest.fixture
def any_shop(tmp_path, make_workspace, store):
    ws = make_workspace(tmp_path, store=store)
    yield ws
    ws.close()


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


def test_state_waits_for_the_checkpoint_but_memberships_and_schedule_do_not(shop, track):
    ws = shop
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


def test_a_stop_without_saving_rebuilds_state_from_the_events(shop, track):
    ws = shop
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


def test_a_clean_close_keeps_the_saved_state(shop, track):
    ws = shop
    _, intake, engine = _rig(ws, T0, every=3600)
    intake.submit([track("u1", "Order Completed", T0, total=600)], source="test")
    engine.close()
    _, intake, engine = _rig(ws, T0 + DAY, every=3600)
    assert ws.store.fetchall("SELECT count(*) FROM trait_state")[0][0] == 1
    intake.submit([track("u1", "Order Completed", T0 + DAY, total=600)], source="test")
    assert "vip" in all_members(ws.store)[_pid(ws.store, "u1")]


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


def _ingest(ws, at: datetime, *messages) -> None:
    """Store events with no engine listening (``segmint ingest``, or a crash before delivery)."""
    Intake(ws, FixedClock(at)).submit(list(messages), source="test")


def test_events_stored_while_no_engine_ran_are_caught_up(any_shop, track):
    ws = any_shop
    _, intake, engine = _rig(ws, T0, every=0)
    intake.submit([track("u1", "Order Completed", T0, total=600)], source="test")
    engine.close()
    later = T0 + DAY
    _ingest(
        ws, later,
        track("u1", "Order Completed", later, total=600),
        track("u2", "Order Completed", later, total=50),
    )  # fmt: skip
    clock, _, engine = _rig(ws, later + DAY, every=3600)
    seen: list[tuple[int, int]] = []
    assert engine.catch_up(later + DAY, progress=lambda *p: seen.append(p)) == 2
    assert seen == [(2, 2)]
    u1, u2 = _pid(ws.store, "u1"), _pid(ws.store, "u2")
    members = all_members(ws.store)
    assert "vip" in members[u1]  # 600 from the saved state + 600 caught up, not 1800
    assert "recent_buyer" in members[u2]
    assert reconcile(ws.store, engine.compiled, later + DAY) == []
    assert engine.catch_up(later + DAY) == 0  # nothing twice


def test_a_crash_between_commit_and_delivery_loses_nothing(shop, track):
    ws = shop
    _, intake, engine = _rig(ws, T0, every=3600)
    intake.submit([track("u1", "Order Completed", T0, total=400)], source="test")
    intake.submit([track("u1", "Order Completed", T0, total=400)], source="test")
    # committed, never delivered: the process died in between
    _ingest(ws, T0, track("u1", "Order Completed", T0, total=400))
    _, _, engine = _rig(ws, T0 + DAY, every=3600)
    engine.catch_up(T0 + DAY)
    pid = _pid(ws.store, "u1")
    assert "vip" in all_members(ws.store)[pid]  # 3 x 400 >= 1000
    assert reconcile(ws.store, engine.compiled, T0 + DAY) == []


def test_a_merge_while_no_engine_ran_exits_the_merged_profile(any_shop, track):
    ws = any_shop
    _, intake, engine = _rig(ws, T0, every=0)
    anon = {
        "type": "track", "anonymousId": "a1", "event": "Order Completed",
        "properties": {"total": 800}, "timestamp": T0.isoformat(), "messageId": "x1",
    }  # fmt: skip
    intake.submit([anon, track("u1", "Order Completed", T0, total=300)], source="test")
    old = ws.store.fetchall(
        "SELECT profile_id FROM identities WHERE kind = 'anonymous_id' AND value = 'a1'"
    )[0][0]
    assert "big_recent" in all_members(ws.store)[old]
    engine.close()
    alias = {"type": "alias", "userId": "u1", "previousId": "a1", "messageId": "al",
             "timestamp": T0.isoformat()}  # fmt: skip
    _ingest(ws, T0, alias)
    _, _, engine = _rig(ws, T0 + DAY, every=0)
    engine.catch_up(T0 + DAY)
    survivor = _pid(ws.store, "u1")
    members = all_members(ws.store)
    assert old not in members
    assert {"vip", "big_recent", "recent_buyer"} <= members[survivor]
    assert reconcile(ws.store, engine.compiled, T0 + DAY) == []


def test_a_store_no_engine_saved_into_starts_from_its_newest_event(shop, track):
    ws = shop
    _ingest(ws, T0, track("u1", "Order Completed", T0, total=600))
    _, _, engine = _rig(ws, T0, every=0)
    assert engine.catch_up(T0) == 0
    top = ws.store.fetchall("SELECT max(seq) FROM events")[0][0]
    assert _meta(ws.store, SEQ_KEY) == str(top)


def test_a_due_profile_rebuilt_while_catching_up_counts_its_events_once(any_shop, track):
    ws = any_shop
    _, intake, engine = _rig(ws, T0, every=3600)
    intake.submit([track("u1", "Order Completed", T0, total=10)], source="test")
    # The process dies here: trait state unsaved, recent_buyer due to end in 30 days.
    assert ws.store.fetchall("SELECT count(*) FROM schedule")[0][0] == 1
    later = T0 + 31 * DAY
    _, _, engine = _rig(ws, later, every=3600)
    engine.catch_up(later)  # the stored order is both due-profile history and the batch
    members = all_members(ws.store).get(_pid(ws.store, "u1"), set())
    assert "repeat" not in members  # one order, not two
    assert reconcile(ws.store, engine.compiled, later) == []


def test_a_due_profile_whose_state_lags_a_refresh_is_decided_on_all_its_events(any_shop, track):
    from segmint.membership.batch import refresh

    ws = any_shop
    _, intake, engine = _rig(ws, T0, every=0)
    intake.submit([track("u1", "Order Completed", T0, total=10)], source="test")
    engine.close()  # saved: one order
    later = T0 + 10 * DAY
    _ingest(ws, later, *[track("u1", "Email Opened", later) for _ in range(3)])
    refresh(ws.store, CompiledSegments(ws.definition), later)  # sees the opens; state does not
    assert "engaged" in all_members(ws.store)[_pid(ws.store, "u1")]
    end = later + 40 * DAY  # the opens' 30-day window is over: engaged is due to end
    _, _, engine = _rig(ws, end, every=0)
    engine.catch_up(end)
    assert "engaged" not in all_members(ws.store)[_pid(ws.store, "u1")]
    assert reconcile(ws.store, engine.compiled, end) == []


def test_a_stop_inside_serving_is_caught_up_by_the_next_reader(any_shop, track):
    ws = any_shop
    with serving(ws.store):
        _, intake, engine = _rig(ws, T0, every=3600)
        intake.submit([track("u1", "Order Completed", T0, total=600)], source="test")
        engine.close()
        _, intake, _lagging = _rig(ws, T0, every=3600)
        intake.submit([track("u1", "Order Completed", T0, total=600)], source="test")
        # the engine has not seen this one when the process dies
        _ingest(ws, T0, track("u2", "Order Completed", T0, total=1200))
    # (a clean exit from `serving` clears the mark: put the crash's mark back)
    ws.store.execute("UPDATE meta SET value = '1' WHERE key = ?", [SERVING_KEY])
    assert catch_up_unsaved(ws, T0 + DAY) == 2
    values = dict(ws.store.fetchall('SELECT profile_id, "values" FROM trait_values'))
    u1, u2 = _pid(ws.store, "u1"), _pid(ws.store, "u2")
    assert decode_traits(values[u1])["lifetime_value"] == 1200
    assert decode_traits(values[u2])["lifetime_value"] == 1200
    assert {"vip"} <= all_members(ws.store)[u1] & all_members(ws.store)[u2]
    assert (_meta(ws.store, SERVING_KEY), _meta(ws.store, UNSAVED_KEY)) == ("0", "0")
    assert catch_up_unsaved(ws, T0 + DAY) is None  # nothing twice


def test_a_running_server_on_postgres_is_left_alone(
    pg_store, postgres_url, tmp_path, make_workspace, track
):
    from segmint.store.postgres import PostgresStore

    ws = make_workspace(tmp_path, store=pg_store)
    other = PostgresStore(postgres_url, schema=pg_store.fetchall("SELECT current_schema()")[0][0])
    reader = Workspace(path=ws.path, definition=ws.definition, _store=other)
    try:
        with serving(ws.store):
            _, intake, engine = _rig(ws, T0, every=3600)
            intake.submit([track("u1", "Order Completed", T0, total=600)], source="test")
            assert _meta(ws.store, UNSAVED_KEY) == "1"
            assert catch_up_unsaved(reader, T0) is None  # the server holds it
            engine.close()
        ws.store.execute("UPDATE meta SET value = '1' WHERE key = ?", [SERVING_KEY])
        pg_store.fetchall("SELECT pg_advisory_unlock_all()")  # the server's process is gone
        assert catch_up_unsaved(reader, T0) == 0
        assert _meta(ws.store, SERVING_KEY) == "0"
    finally:
        other.close()


def test_without_servers_holds_off_servers_and_refuses_beside_one(pg_store, postgres_url):
    """PostgreSQL: ``without_servers`` holds the exclusive lock for its block (a server
    starting meanwhile waits), and refuses while a server holds the shared one."""
    from segmint.membership.recovery import serving, without_servers
    from segmint.store.errors import StoreLocked
    from segmint.store.postgres import PostgresStore

    schema = pg_store.fetchall("SELECT current_schema()")[0][0]
    server = PostgresStore(postgres_url, schema=schema)
    try:
        with without_servers(pg_store, "segmint rebuild"):
            locked = server.fetchall(
                "SELECT pg_try_advisory_lock_shared(hashtext('segmint.realtime'), "
                "hashtext(current_schema()))"
            )
            assert locked == [(False,)]  # a server starting now would wait
        with (
            serving(server),
            pytest.raises(StoreLocked, match="stop the servers"),
            without_servers(pg_store, "segmint rebuild"),
        ):
            pytest.fail("ran beside a server")
    finally:
        server.close()  # the server's process ends: its lock goes with its connection
    with without_servers(pg_store, "segmint rebuild"):
        assert pg_store.fetchall("SELECT count(*) FROM trait_state") == [(0,)]
