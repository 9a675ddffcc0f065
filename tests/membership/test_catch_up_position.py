"""A server's saved catch-up position never skips a stored event it has not applied.

On PostgreSQL a writer may draw ``seq`` 100, a second writer 101 and commit first. A server
applies 101 and saves; if it stops before its change feed delivers 100, the next start must
still apply 100 (a catch-up from "the newest ``seq`` applied" never would), and must not
apply again what the saved position covers.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.membership.conftest import live_views, stored_views
from tests.membership.views import AT, NOW, YAML, insert, server

from segmint.clock import FixedClock
from segmint.events import Event
from segmint.membership.batch import reconcile
from segmint.membership.follow import Follower, unapplied_since_checkpoint
from segmint.membership.realtime import RealtimeEngine
from segmint.membership.service import Membership
from segmint.store import Store, read_meta
from segmint.traits import APPLIED_KEY, EVENT_COLUMNS, CommitPosition, read_position, row_to_event
from segmint.traits.position import adopt_restored, write_position
from segmint.workspace import Workspace


def _drain(follower: Follower) -> None:
    while follower.step():
        pass


def _assert_exact(ws: Workspace, views: dict[str, int]) -> None:
    """Trait values count every stored event once; memberships equal a batch recompute."""
    assert live_views(ws) == stored_views(ws) == views
    assert reconcile(ws.store, Membership(ws).compiled, NOW) == []


@pytest.fixture
def late_writer(pg_store: Store) -> Iterator[Callable[[str], Callable[[], None]]]:
    """Opens a transaction that writes an event (drawing its ``seq``) and waits to commit.

    Calling the fixture with a message id returns the function that commits it.
    """
    late = pg_store.reopen()  # type: ignore[attr-defined]
    threads: list[tuple[threading.Thread, threading.Event]] = []

    def begin(message_id: str) -> Callable[[], None]:
        drawn, release, done = threading.Event(), threading.Event(), threading.Event()

        def write() -> None:
            with late.transaction():
                insert(late, message_id)
                drawn.set()
                release.wait(10)
            done.set()

        thread = threading.Thread(target=write)
        thread.start()
        threads.append((thread, release))
        assert drawn.wait(10)

        def commit() -> None:
            release.set()
            assert done.wait(10)

        return commit

    yield begin
    for thread, release in threads:
        release.set()
        thread.join()
    late.close()


def _restart(ws: Workspace, store: Store, how: str) -> Follower | None:
    """Start real time again: a server (catch-up, then its feed) or a command's recovery."""
    if how == "recovery":  # what a CLI command runs after a server died unsaved
        engine = Membership(ws).realtime(FixedClock(NOW))
        engine.catch_up(NOW)
        engine.close()
        return None
    engine, follower = server(ws, store)
    _drain(follower)
    engine.checkpoint(NOW)
    return follower


@pytest.mark.postgres
@pytest.mark.parametrize("applied_before", [False, True], ids=["unapplied", "applied"])
@pytest.mark.parametrize("stop", ["close", "die", "die-unsaved"])
@pytest.mark.parametrize("restart", ["server", "recovery"])
def test_a_late_commit_below_the_saved_position_is_applied_once(
    pg_store: Store,
    tmp_path: Path,
    make_workspace: Any,
    late_writer: Callable[[str], Callable[[], None]],
    applied_before: bool,
    stop: str,
    restart: str,
) -> None:
    """A writer holds seq 1 open while "early" (seq 2, 3) commits and is applied and saved;
    then seq 1 commits, and the server stops (or dies) before (or after) applying it.

    ``die-unsaved``: the server saves trait state once a minute; it dies before (its
    memberships are written, its trait state is rebuilt from the events at the restart).
    """
    ws = make_workspace(tmp_path, YAML, pg_store)
    Membership(ws).realtime(FixedClock(NOW)).catch_up(NOW)  # an engine ran here before
    engine, follower = server(ws, pg_store, 60.0 if stop == "die-unsaved" else 0.0)
    commit_late = late_writer("late")
    with pg_store.transaction():
        insert(pg_store, "early-1")
        insert(pg_store, "early-2")
    after: Follower | None = None
    try:
        assert follower.step() == 2
        newest = pg_store.fetchall("SELECT max(seq) FROM events")[0][0]
        commit_late()
        assert pg_store.fetchall("SELECT seq FROM events WHERE message_id = 'late'")[0][0] < newest
        if stop != "die-unsaved":
            assert read_meta(pg_store, "trait_state.events_seq") == str(newest)
        if applied_before:
            assert follower.step() == 1
            assert engine.segments_of("p") == frozenset({"regular"})
        if stop == "close":
            engine.close()
        follower.close()  # (died: the engine saved with its last batch, nothing since)
        if stop != "die-unsaved":  # what 'segmint status' counts as not yet applied
            assert unapplied_since_checkpoint(pg_store) == (0 if applied_before else 1)
        after = _restart(ws, pg_store, restart)
        _assert_exact(ws, {"p": 3})
        assert ws.store.fetchall("SELECT profile_id, segment FROM memberships") == [
            ("p", "regular")
        ]
    finally:
        follower.close()
        if after is not None:
            after.close()


def _stored_event(store: Store, message_id: str) -> Event:
    rows = store.fetchall(f"SELECT {EVENT_COLUMNS} FROM events WHERE message_id = ?", [message_id])
    return row_to_event(rows[0])


@pytest.mark.postgres
@pytest.mark.parametrize("restart", ["server", "recovery"])
def test_an_own_event_read_but_not_through_the_listener_is_applied_after_a_crash(
    pg_store: Store, tmp_path: Path, make_workspace: Any, restart: str
) -> None:
    """The server's intake stores "b", then "a"; the listener of "a" reads the feed (which
    returns both: its own, skipped) and applies "a"; the server dies before the listener
    of "b" runs. The saved position covers "b" as read, not as applied."""
    ws = make_workspace(tmp_path, YAML, pg_store)
    Membership(ws).realtime(FixedClock(NOW)).catch_up(NOW)
    engine, follower = server(ws, pg_store)
    after: Follower | None = None
    try:
        for mid in ("b", "a"):
            follower.claim([mid])
            with pg_store.transaction():
                insert(pg_store, mid)
        follower([_stored_event(pg_store, "a")])  # the listener of "a"
        assert live_views(ws) == {"p": 1}
        position = read_position(pg_store)
        assert position is not None and position.unapplied == ("b",)
        follower.close()  # died: the listener of "b" never runs
        after = _restart(ws, pg_store, restart)
        _assert_exact(ws, {"p": 2})
    finally:
        follower.close()
        if after is not None:
            after.close()


@pytest.mark.postgres
def test_a_catch_up_that_fails_half_way_leaves_the_next_one_exact(
    pg_store: Store, tmp_path: Path, make_workspace: Any, late_writer: Any
) -> None:
    """A catch-up (by chunks of one event) saves nothing until it is done: one that fails
    after applying some chunks leaves its state unsaved, rebuilt by the next catch-up."""
    ws = make_workspace(tmp_path, YAML, pg_store)
    Membership(ws).realtime(FixedClock(NOW)).catch_up(NOW)
    engine, follower = server(ws, pg_store)
    commit_late = late_writer("late")
    with pg_store.transaction():
        insert(pg_store, "early")
    assert follower.step() == 1
    commit_late()
    follower.close()  # died before "late" was delivered
    for n in range(4):
        with pg_store.transaction():
            insert(pg_store, f"more-{n}", "q")
    failing = Membership(ws).realtime(FixedClock(NOW))
    calls = 0
    process = failing.process

    def fail_third(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise RuntimeError("injected: the catch-up stops here")
        return process(*args, **kwargs)

    failing.process = fail_third  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="injected"):
        failing.catch_up(NOW, chunk=1)
    failing.close()  # a stop saves nothing the failed catch-up applied
    assert read_meta(pg_store, "trait_state.unsaved") == "1"
    engine = RealtimeEngine(ws.store, Membership(ws).compiled, FixedClock(NOW))
    assert engine.catch_up(NOW) == 5
    engine.close()
    _assert_exact(ws, {"p": 2, "q": 4})


def test_a_position_is_saved_as_ranges_and_read_back() -> None:
    position = CommitPosition(812, (4, 5, 6, 9, 11, 12), ("m-1",))
    assert json.loads(position.dumps())["seen"] == [[4, 6], [9, 9], [11, 12]]
    assert CommitPosition.loads(position.dumps()) == position
    assert CommitPosition.loads(CommitPosition(3).dumps()) == CommitPosition(3)


@pytest.mark.parametrize("store", ["duckdb"], indirect=True)
def test_duckdb_saves_no_commit_position(store: Store, tmp_path: Path, make_workspace: Any) -> None:
    """DuckDB commits in ``seq`` order: the saved ``seq`` alone says what was applied."""
    ws = make_workspace(tmp_path, YAML, store)
    engine = Membership(ws).realtime(FixedClock(NOW))
    engine.catch_up(NOW)
    with store.transaction():
        insert(store, "one")
    engine.catch_up(NOW)
    engine.close()
    assert read_meta(store, APPLIED_KEY) is None
    assert live_views(ws) == {"p": 1}


@pytest.mark.postgres
def test_a_stopping_leader_saves_before_another_server_can_take_the_lead(
    pg_store: Store, tmp_path: Path, make_workspace: Any
) -> None:
    """A stopping server releases the lead only after its final save: a server taking over
    earlier would catch up from the previous save on events the final save then records
    as applied (and a profile loaded after that save would fold them twice)."""
    from segmint.intake.pipeline import Intake
    from segmint.membership.follow import Leadership
    from segmint.membership.service import attach_realtime

    ws = make_workspace(tmp_path, YAML, pg_store)
    clock = FixedClock(NOW)
    intake = Intake(ws, clock)
    service = attach_realtime(ws, intake, clock)
    probe = pg_store.reopen()  # type: ignore[attr-defined]
    free_at_save: list[bool] = []
    close = service.engine.close

    def saving() -> None:
        free_at_save.append(Leadership(probe).try_take())
        close()

    service.engine.close = saving  # type: ignore[method-assign]
    try:
        assert service.leading
        message = {"type": "track", "userId": "u", "event": "Viewed", "messageId": "v-1",
                   "timestamp": AT.isoformat()}  # fmt: skip
        intake.submit([message], source="test")
    finally:
        service.close()
        probe.close()
    assert free_at_save[0] is False
    assert read_meta(pg_store, "trait_state.unsaved") == "0"


@pytest.mark.postgres
def test_a_rebuild_saves_the_position_of_what_it_folded(
    pg_store: Store, tmp_path: Path, make_workspace: Any
) -> None:
    """``segmint rebuild`` folds every stored event into the state: the position saved
    before it is replaced by the rebuild's own, so the next catch-up applies none of them
    a second time."""
    from segmint.traits import rebuild

    ws = make_workspace(tmp_path, YAML, pg_store)
    _served(ws, pg_store, "seen")
    before = read_position(pg_store)
    with pg_store.transaction():
        insert(pg_store, "after")
    rebuild(pg_store, Membership(ws).compiled.catalog, NOW)
    assert read_position(pg_store) not in (None, before)
    _restart(ws, pg_store, "server").close()  # type: ignore[union-attr]
    _assert_exact(ws, {"p": 2})


@pytest.mark.postgres
def test_an_event_committed_after_a_rebuild_with_a_lower_seq_is_applied_once(
    pg_store: Store, tmp_path: Path, make_workspace: Any, late_writer: Any
) -> None:
    """A transaction drew ``seq`` first and commits after the rebuild read the events (a
    later one committed before): the rebuild did not fold it, and the next start applies
    it (a rebuild that saved "every event up to the newest seq" never would)."""
    from segmint.traits import rebuild

    ws = make_workspace(tmp_path, YAML, pg_store)
    Membership(ws).realtime(FixedClock(NOW)).catch_up(NOW)
    commit_late = late_writer("late")  # seq drawn, not committed
    with pg_store.transaction():
        insert(pg_store, "early")  # a higher seq, committed
    rebuild(pg_store, Membership(ws).compiled.catalog, NOW)
    commit_late()
    for how in ("recovery", "server"):
        follower = _restart(ws, pg_store, how)
        if follower is not None:
            follower.close()
        _assert_exact(ws, {"p": 2})


def test_events_stored_during_a_rebuild_are_folded_once(
    duck_store: Store, tmp_path: Path, make_workspace: Any
) -> None:
    """DuckDB: another process's events committed while a rebuild reads profile range by
    range (here: just after it read the newest ``seq``) are left to the next catch-up,
    not folded by the rebuild and applied again."""
    from segmint.traits import rebuild

    ws = make_workspace(tmp_path, YAML, duck_store)
    Membership(ws).realtime(FixedClock(NOW)).catch_up(NOW)
    insert(duck_store, "first")
    store = _WritesAfterNewestSeq(duck_store)
    rebuild(store, Membership(ws).compiled.catalog, NOW)  # type: ignore[arg-type]
    assert store.written
    _restart(ws, duck_store, "recovery")
    _assert_exact(ws, {"p": 2})


class _WritesAfterNewestSeq:
    """The store, with another writer's event committed right after ``max(seq)`` is read."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.written = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def fetchall(self, sql: str, params: Any = ()) -> Any:
        found = self._store.fetchall(sql, params)
        if "max(seq)" in sql and not self.written:
            insert(self._store, "meanwhile")
            self.written = True
        return found


def _served(ws: Workspace, store: Store, applied: str, *stored: str) -> None:
    """A first server catches up, applies ``applied`` from its feed, and stops (saving its
    position) after ``stored`` were stored and not read."""
    Membership(ws).realtime(FixedClock(NOW)).catch_up(NOW)
    engine, follower = server(ws, store)
    try:
        with store.transaction():
            insert(store, applied)
        assert follower.step() == 1
        for message_id in stored:
            with store.transaction():
                insert(store, message_id)
    finally:
        engine.close()
        follower.close()


def _as_if_from_a_cluster_ahead(store: Store, by: int = 10**12) -> None:
    """What a dump of a store whose cluster was ``by`` transactions further on looks like
    once restored here: every stored id (and the saved position) that much higher."""
    for table in ("events", "profile_merges"):
        store.execute(f"UPDATE {table} SET xid = (xid::text::numeric + ?)::text::xid8", [by])
    saved = read_position(store)
    if saved is not None:
        with store.transaction():
            write_position(store, CommitPosition(saved.low + by, saved.seen, saved.unapplied))
    for pid, snap in store.fetchall("SELECT profile_id, snap FROM worker_applied"):
        low, high, running = str(snap).split(":")
        moved = [str(int(x) + by) for x in (low, high)] + [
            ",".join(str(int(x) + by) for x in running.split(",") if x)
        ]
        store.execute("UPDATE worker_applied SET snap = ? WHERE profile_id = ?",
                      [":".join(moved), pid])  # fmt: skip


@pytest.mark.postgres
@pytest.mark.parametrize("how", ["server", "recovery"])
def test_a_store_restored_into_another_cluster_applies_what_is_written_after(
    pg_store: Store, tmp_path: Path, make_workspace: Any, how: str
) -> None:
    """Restored into a cluster whose transaction ids are lower, the saved position would
    take every new event for applied. The next start re-numbers the restored rows and
    applies the new events, and the stored events the state lacked, once."""
    ws = make_workspace(tmp_path, YAML, pg_store)
    _served(ws, pg_store, "applied", "stored, not applied")
    _as_if_from_a_cluster_ahead(pg_store)
    with pg_store.transaction():
        insert(pg_store, "after the restore")
    follower = _restart(ws, pg_store, how)
    try:
        _assert_exact(ws, {"p": 3})
        if follower is not None:  # and the feed reads what comes next
            with pg_store.transaction():
                insert(pg_store, "later")
            _drain(follower)
            assert live_views(ws) == {"p": 4}
    finally:
        if follower is not None:
            follower.close()
    assert pg_store.fetchall("SELECT count(*) FROM events WHERE xid::text = '3'")[0][0] == 2


@pytest.mark.postgres
def test_a_restored_store_leaves_the_kafka_workers_nothing_to_skip(
    pg_store: Store, tmp_path: Path, make_workspace: Any
) -> None:
    """A worker's watermark holds a snapshot of the old cluster: restored, every event
    written since (with this cluster's lower ids) looked visible in it, so applied."""
    from segmint.scale.worker import worker_lag

    make_workspace(tmp_path, YAML, pg_store)
    with pg_store.transaction():
        insert(pg_store, "applied by a worker")
    with pg_store.transaction():  # the watermark a worker's batch writes after applying it
        pg_store.execute(
            "INSERT INTO worker_applied (profile_id, seq, snap) "
            "SELECT 'p', max(seq), pg_current_snapshot()::text FROM events"
        )
    assert worker_lag(pg_store)["pending_events"] == 0
    _as_if_from_a_cluster_ahead(pg_store)
    with pg_store.transaction():
        insert(pg_store, "after the restore")
    adopt_restored(pg_store)
    assert worker_lag(pg_store)["pending_events"] == 1


@pytest.mark.postgres
@pytest.mark.parametrize("saved_before", [True, False])
def test_a_transaction_open_when_the_leader_starts_is_applied_when_it_commits(
    pg_store: Store,
    tmp_path: Path,
    make_workspace: Any,
    late_writer: Callable[[str], Callable[[], None]],
    saved_before: bool,
) -> None:
    """A writer holds "late" open while a server takes the lead (its feed starts, its
    catch-up runs) and other events commit; "late" commits after the catch-up and
    reaches real time through the feed, once."""
    ws = make_workspace(tmp_path, YAML, pg_store)
    if saved_before:  # an engine ran here before (a saved position), or none ever did
        Membership(ws).realtime(FixedClock(NOW)).catch_up(NOW)
    with pg_store.transaction():
        insert(pg_store, "before-1")
    commit_late = late_writer("late")
    with pg_store.transaction():
        insert(pg_store, "before-2")
    engine, follower = server(ws, pg_store)
    try:
        caught_up = engine.segments_of("p")
        commit_late()
        applied = 0
        for _ in range(3):
            applied += follower.step()
        assert applied == 1
        assert engine.segments_of("p") == frozenset({"regular"}) != caught_up
        engine.checkpoint()
        _assert_exact(ws, {"p": 3})
    finally:
        follower.close()
