"""The real-time engine's schedule rows: what it holds in memory is what the table holds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from segmint.membership.live import FEW_MOVES, Live, save_schedule
from segmint.store.duckdb import DuckDBStore
from segmint.traits import TraitState

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _rows(store: DuckDBStore) -> dict[str, datetime]:
    rows = store.fetchall("SELECT profile_id, due_at FROM schedule ORDER BY profile_id")
    return {pid: due.replace(tzinfo=UTC) for pid, due in rows}


def _live(due: datetime | None, stored: datetime | None) -> Live:
    return Live(TraitState([]), due=due, stored_due=stored)


@pytest.mark.parametrize("count", [1, FEW_MOVES, FEW_MOVES + 3])
def test_moved_entries_are_written_whatever_the_table_holds(tmp_path, count):
    store = DuckDBStore(tmp_path / "s.duckdb")
    try:
        with store.transaction():
            store.executemany(
                "INSERT INTO schedule (profile_id, due_at) VALUES (?, ?)",
                [(f"kept{i}", T0.replace(tzinfo=None)) for i in range(count)]
                + [(f"gone{i}", T0.replace(tzinfo=None)) for i in range(count)],
            )
        later = T0 + timedelta(days=1)
        lives = {
            **{f"kept{i}": _live(later, T0) for i in range(count)},  # moved in place
            **{f"gone{i}": _live(None, T0) for i in range(count)},  # nothing due any more
            # held as stored, but another process deleted the row meanwhile
            **{f"lost{i}": _live(later, T0) for i in range(count)},
            **{f"new{i}": _live(later, None) for i in range(count)},
        }
        with store.transaction():
            save_schedule(store, lives, T0)  # the stored instants have come
        expected = {pid: later for pid in lives if not pid.startswith("gone")}
        assert _rows(store) == dict(sorted(expected.items()))
        assert all(live.stored_due == live.due for live in lives.values())
    finally:
        store.close()


def test_a_stored_entry_stays_early_while_it_is_ahead(tmp_path):
    """The table holds a lower bound: a due instant moved later is written only once the
    stored one has passed; an earlier one at once."""
    store = DuckDBStore(tmp_path / "s.duckdb")
    ahead, later, sooner = T0 + timedelta(days=1), T0 + timedelta(days=2), T0 + timedelta(hours=1)
    try:
        with store.transaction():
            store.executemany(
                "INSERT INTO schedule (profile_id, due_at) VALUES (?, ?)",
                [(pid, ahead.replace(tzinfo=None)) for pid in ("later", "sooner")],
            )
        lives = {"later": _live(later, ahead), "sooner": _live(sooner, ahead)}
        with store.transaction():
            save_schedule(store, lives, T0)
        assert _rows(store) == {"later": ahead, "sooner": sooner}
        assert lives["later"].stored_due == ahead  # what the table holds
        with store.transaction():
            save_schedule(store, lives, ahead)  # the stored instant has come
        assert _rows(store) == {"later": later, "sooner": sooner}
    finally:
        store.close()


def test_an_early_entry_left_by_one_engine_fires_nothing_in_the_next(
    tmp_path, store, make_workspace, make_rig, track
):
    """An event moved Ada's due instant later while the stored one was ahead: the table
    keeps the earlier one. The next engine wakes at it, decides nothing, and leaves her
    segment at the exact instant."""
    from segmint.intake.identity import resolve_person

    ws = make_workspace(tmp_path, store=store)
    day, tick = timedelta(days=1), timedelta(microseconds=1)  # ">= now() - 30 days" ends after
    first = make_rig(ws, T0)
    first.send(track("ada", "Order Completed", T0, total=10))
    pid = resolve_person(ws.store, "ada")
    assert _rows(ws.store)[pid] == T0 + 30 * day + tick  # recent_buyer ends 30 days on
    first.clock.set(T0 + 5 * day)
    first.send(track("ada", "Order Completed", T0 + 5 * day, total=10))
    assert _rows(ws.store)[pid] == T0 + 30 * day + tick  # now due at 35 days: the row stays early
    first.engine.close()

    second = make_rig(ws, T0 + 31 * day)
    assert second.engine.advance(T0 + 31 * day) == []
    assert _rows(ws.store)[pid] == T0 + 35 * day + tick  # looked at again: the exact instant
    changes = second.engine.advance(T0 + 40 * day)
    left = [(c.segment, c.change, c.occurred_at) for c in changes if c.profile_id == pid]
    assert ("recent_buyer", "exit", T0 + 35 * day + tick) in left


def test_an_events_write_leaves_passed_and_ended_entries_to_the_save(tmp_path):
    """On the event path (``urgent``) only a new entry or an earlier one is written: a
    passed entry or one no longer due is still a lower bound, written with the next save."""
    store = DuckDBStore(tmp_path / "s.duckdb")
    ahead, later = T0 + timedelta(days=1), T0 + timedelta(days=2)
    try:
        with store.transaction():
            store.executemany(
                "INSERT INTO schedule (profile_id, due_at) VALUES (?, ?)",
                [(pid, T0.replace(tzinfo=None)) for pid in ("passed", "ended", "sooner")],
            )
        lives = {
            "passed": _live(later, T0),
            "ended": _live(None, T0),
            "sooner": _live(T0 - timedelta(hours=1), T0),
            "new": _live(ahead, None),
        }
        with store.transaction():
            save_schedule(store, lives, T0, urgent=True)
        assert _rows(store) == {
            "ended": T0, "new": ahead, "passed": T0, "sooner": T0 - timedelta(hours=1)
        }  # fmt: skip
        assert lives["passed"].stored_due == T0 and lives["ended"].stored_due == T0
        with store.transaction():
            save_schedule(store, lives, T0)  # the save
        assert _rows(store) == {"new": ahead, "passed": later, "sooner": T0 - timedelta(hours=1)}
    finally:
        store.close()


def test_a_stop_before_the_save_leaves_a_passed_entry_that_fires_nothing(
    tmp_path, store, make_workspace, make_rig, track
):
    """A server (state saved hourly) fires Ada's exit from ``recent_buyer``; what follows
    for her is not written before the save, and the process stops. The next engine wakes at
    the passed entry and records nothing twice."""
    from segmint.intake.identity import resolve_person
    from segmint.membership.batch import reconcile

    ws = make_workspace(tmp_path, store=store)
    first = make_rig(ws, T0)
    first.engine.checkpoint_every = 3600
    first.send(track("ada", "Order Completed", T0, total=10))
    first.engine.checkpoint()
    pid = resolve_person(ws.store, "ada")
    entry = _rows(ws.store)[pid]
    fired = first.engine.advance(entry)
    assert ("recent_buyer", "exit") in [(c.segment, c.change) for c in fired]
    assert _rows(ws.store)[pid] == entry  # passed: left for the save, and the process stops

    later = entry + timedelta(days=1)
    second = make_rig(ws, later)
    assert second.engine.advance(later) == []  # looked at again: nothing decided
    second.engine.checkpoint()
    assert _rows(ws.store).get(pid, later) > entry
    assert reconcile(ws.store, second.compiled, later) == []


def test_a_profile_is_loaded_in_one_statement(tmp_path, store, make_workspace, make_rig, track):
    """Trait state, memberships and schedule entry of a profile come back in one query
    (an event of a profile not in memory pays one round trip), on both backends; a
    profile with stale state is rebuilt from its events."""
    from segmint.intake.identity import resolve_person
    from segmint.membership.live import load_many

    from .conftest import record_statements

    ws = make_workspace(tmp_path, store=store)
    rig = make_rig(ws, T0)
    rig.send(track("ada", "Order Completed", T0, total=10), track("bob", "Page Viewed", T0))
    rig.engine.checkpoint()
    ada, bob = resolve_person(ws.store, "ada"), resolve_person(ws.store, "bob")
    seen = record_statements(ws.store)
    loaded = load_many(ws.store, rig.compiled, [ada])
    assert len(seen) == 1
    assert loaded[ada].members == frozenset(rig.engine.segments_of(ada) or ())
    assert loaded[ada].due == loaded[ada].stored_due == _rows(ws.store)[ada]
    assert not loaded[ada].state.empty
    both = load_many(ws.store, rig.compiled, [ada, bob], rebuild=[bob])
    assert both[ada].members == loaded[ada].members and not both[bob].state.empty
    assert both[bob].members == frozenset(rig.engine.segments_of(bob) or ())
