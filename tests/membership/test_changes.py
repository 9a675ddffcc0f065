from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from segmint.membership.changes import (
    MembershipChange,
    all_members,
    diff_members,
    members_of,
    read_changes,
    write_changes,
)
from segmint.membership.schedule import Schedule

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def cause(segment: str, kind: str) -> dict[str, object]:
    return {"source": "event", "rule": f"rule of {segment}", "traits": ["orders"], "kind": kind}


def test_diff_lists_exits_then_enters_with_their_cause():
    changes = diff_members("p1", {"a", "b"}, {"b", "c", "d"}, T0, cause)
    assert [(c.segment, c.change) for c in changes] == [
        ("a", "exit"),
        ("c", "enter"),
        ("d", "enter"),
    ]
    assert changes[0].cause == cause("a", "exit")
    assert all(c.occurred_at == T0 and c.profile_id == "p1" for c in changes)
    assert diff_members("p1", {"a"}, {"a"}, T0, cause) == []


def test_changes_and_memberships_are_written_together(store):
    write_changes(store, diff_members("p1", set(), {"vip", "buyers"}, T0, cause))
    write_changes(store, diff_members("p2", set(), {"buyers"}, T0, cause))
    later = T0 + timedelta(hours=1)
    write_changes(store, diff_members("p1", {"vip", "buyers"}, {"buyers"}, later, cause))
    assert all_members(store) == {"p1": {"buyers"}, "p2": {"buyers"}}
    assert members_of(store, ["p1", "p3"]) == {"p1": {"buyers"}, "p3": set()}
    log = read_changes(store, profile_id="p1")
    assert [(c.segment, c.change, c.occurred_at) for c in log] == [
        ("buyers", "enter", T0),
        ("vip", "enter", T0),
        ("vip", "exit", later),
    ]
    assert log[-1].cause == cause("vip", "exit")
    assert log[0].id is not None and log[0].id < log[-1].id
    entered = store.fetchall("SELECT entered_at FROM memberships WHERE profile_id = 'p1'")
    assert entered == [(T0.replace(tzinfo=None),)]


def test_a_failing_transaction_writes_neither_memberships_nor_changes(store):
    with pytest.raises(RuntimeError), store.transaction():
        write_changes(store, diff_members("p1", set(), {"vip"}, T0, cause))
        raise RuntimeError("crash after writing")
    assert all_members(store) == {}
    assert read_changes(store) == []


def test_read_changes_filters_and_orders(store):
    for i in range(5):
        at = T0 + timedelta(minutes=i)
        old, new = ({"s"}, set()) if i % 2 else (set(), {"s"})
        write_changes(store, diff_members("p1", old, new, at, cause))
    newest = read_changes(store, segment="s", newest_first=True, limit=2)
    assert [c.change for c in newest] == ["enter", "exit"]
    first = read_changes(store, limit=1)[0]
    assert [c.id for c in read_changes(store, after_id=first.id)] == [
        c.id for c in read_changes(store)[1:]
    ]
    assert MembershipChange("s", "p", "enter", T0).to_json()["type"] == "segment.enter"


def test_read_changes_of_some_segments_within_an_id_range(store):
    for i, segment in enumerate(["a", "b", "c", "a", "b", "c"]):
        before, after = (set(), {segment}) if i < 3 else ({segment}, set())  # enter, then exit
        write_changes(store, diff_members("p1", before, after, T0 + timedelta(minutes=i), cause))
    ids = [c.id for c in read_changes(store)]
    found = read_changes(store, segments={"a", "c"}, after_id=ids[0], upto_id=ids[4])
    assert [(c.segment, c.id) for c in found] == [("c", ids[2]), ("a", ids[3])]
    assert read_changes(store, segments=set()) == []


def test_schedule_returns_due_profiles_in_order(store):
    schedule = Schedule(store)
    schedule.set_many({"p1": T0 + timedelta(days=2), "p2": T0 + timedelta(days=1), "p3": None})
    schedule.set("p3", T0 + timedelta(days=3))
    assert schedule.next_due() == T0 + timedelta(days=1)
    assert schedule.due(T0) == []
    assert schedule.due(T0 + timedelta(days=2)) == [
        ("p2", T0 + timedelta(days=1)),
        ("p1", T0 + timedelta(days=2)),
    ]
    schedule.set("p2", None)
    assert schedule.get("p2") is None
    assert schedule.count() == 2
    schedule.replace_all({"p9": T0})
    assert schedule.due(T0) == [("p9", T0)]


def test_schedule_survives_reopening_the_store(tmp_path):
    from segmint.store.duckdb import DuckDBStore

    first = DuckDBStore(tmp_path / "s.duckdb")
    Schedule(first).set("p1", T0)
    first.close()
    second = DuckDBStore(tmp_path / "s.duckdb")
    try:
        assert Schedule(second).due(T0 + timedelta(days=365)) == [("p1", T0)]
    finally:
        second.close()


def test_only_pairs_whose_first_change_is_an_exit_are_deleted(store):
    """An enter means the pair had no row: an event's write that only enters runs no
    delete (on DuckDB neither the read of the profile's row ids); an exit deletes its row,
    and a pair that leaves and comes back within one write keeps one row."""
    from .conftest import record_statements

    seen = record_statements(store)
    write_changes(store, diff_members("p1", set(), {"a", "b"}, T0, cause))
    assert not [sql for sql in seen if "DELETE FROM memberships" in sql or "rowid" in sql]
    assert all_members(store) == {"p1": {"a", "b"}}
    changes = diff_members("p1", {"a", "b"}, {"b"}, T0 + timedelta(minutes=1), cause)
    changes += diff_members("p1", {"b"}, {"a", "b"}, T0 + timedelta(minutes=2), cause)
    changes += diff_members("p1", {"a", "b"}, {"a"}, T0 + timedelta(minutes=3), cause)
    write_changes(store, changes)
    assert [sql for sql in seen if "DELETE FROM memberships" in sql]
    rows = store.fetchall("SELECT segment FROM memberships WHERE profile_id = 'p1'")
    assert sorted(r[0] for r in rows) == ["a"]
