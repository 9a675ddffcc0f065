"""An erasure racing the real-time engine's batches leaves nothing of the person behind.

Between two saves of trait state (once a second in a server) the engine's batches write
memberships, membership changes and the schedule only. ``segmint privacy erase`` may run
beside it: while such a batch is open (PostgreSQL: its rows uncommitted, invisible to the
erasure's deletes), just before it (the engine waits, then finds the person gone), or
before a batch that applies events read earlier or fires a time transition of a profile
the engine holds in memory. None of these may write the person's rows back.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from tests.conftest import POSTGRES_URL

from segmint.clock import FixedClock
from segmint.intake.identity import resolve_person
from segmint.intake.pipeline import Intake
from segmint.membership.realtime import RealtimeEngine
from segmint.privacy import audit
from segmint.privacy.erase import erase
from segmint.privacy.protect import Privacy
from segmint.store import Store
from segmint.store.duckdb import DuckDBStore
from segmint.store.sharedwrite import connect_shared_writes
from segmint.traits import EVENT_COLUMNS, row_to_event
from segmint.workspace import Workspace

from .conftest import T0, erasure_rig, held, record_statements

WAIT = 10.0
"""Seconds a test waits for the other side before it fails."""

TABLES = ("memberships", "membership_changes", "schedule", "trait_state", "trait_values")


def _held(store: Store, pid: str) -> dict[str, int]:
    """The rows naming ``pid`` in each table the engine writes."""
    return held(store, pid, TABLES)


NOTHING = dict.fromkeys(TABLES, 0)


def _rig(
    tmp_path: Path, store: Store, make_workspace: Any, shop_yaml: str, track: Any
) -> tuple[Workspace, RealtimeEngine, Intake, str]:
    """Ada bought once (prospect, recent buyer); her state saved; a server's engine."""
    ws = make_workspace(tmp_path, shop_yaml, store)
    # saved: the next batches write memberships, changes and schedule only
    engine, intake = erasure_rig(ws, track, total=10)
    pid = resolve_person(ws.store, "ada")
    assert _held(ws.store, pid)["memberships"] == 2  # prospect, recent_buyer
    return ws, engine, intake, pid


def _waits_on_lock(backend: int) -> Callable[[], bool]:
    """Whether the server process ``backend`` waits for a row lock (seen from outside)."""

    def waiting() -> bool:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as con:
            row = con.execute(
                "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [backend]
            ).fetchone()
        return row is not None and row[0] == "Lock"

    return waiting


def _until(condition: Callable[[], bool], done: threading.Event) -> None:
    """Wait until ``condition`` holds or ``done`` is set (polling the server's view)."""
    deadline = threading.Event()
    timer = threading.Timer(WAIT, deadline.set)
    timer.start()
    try:
        while not done.is_set() and not condition():
            assert not deadline.is_set(), "the other side neither finished nor waited"
            done.wait(0.01)
    finally:
        timer.cancel()


class _HoldOpen:
    """Fault injection through the engine's outbox seam: the outbox is filled inside the
    batch's transaction, after its memberships, changes and schedule are written; this one
    runs ``during`` there, with the batch still uncommitted."""

    def __init__(self, during: Callable[[], None]) -> None:
        self.during = during

    def enqueue_new(self, as_of: datetime) -> int:
        self.during()
        return 0


@pytest.fixture
def other(pg_store: Store) -> Iterator[Store]:
    """A second connection to the same schema (another process's)."""
    store: Store = pg_store.reopen()  # type: ignore[attr-defined]
    yield store
    store.close()


@pytest.mark.postgres
def test_an_erasure_during_a_batch_waits_and_then_deletes_its_rows(
    tmp_path: Path, pg_store: Store, other: Store, make_workspace: Any, shop_yaml: str, track: Any
) -> None:
    """The batch has written Ada's new memberships (uncommitted) when the erasure starts:
    the erasure must wait for the batch's commit and then delete (or anonymise) its rows."""
    ws, engine, intake, pid = _rig(tmp_path, pg_store, make_workspace, shop_yaml, track)
    privacy = Privacy(ws.path, ws.definition, other)
    erasing = other.backend_pid()  # type: ignore[attr-defined]
    done = threading.Event()
    failed: list[BaseException] = []

    def run_erasure() -> None:
        try:
            erase(privacy, "ada@example.com", at=T0)
        except BaseException as exc:  # reported by the test thread
            failed.append(exc)
        finally:
            done.set()

    thread = threading.Thread(target=run_erasure)

    def during() -> None:  # the batch's rows are written, not committed
        engine.outbox = None
        thread.start()
        _until(_waits_on_lock(erasing), done)

    engine.outbox = _HoldOpen(during)  # type: ignore[assignment]
    intake.submit([track("ada", "Order Completed", T0, total=1200)], source="test")
    thread.join(WAIT)
    assert not failed and done.is_set()
    assert _held(ws.store, pid) == NOTHING
    bob = resolve_person(ws.store, "bob")
    assert _held(ws.store, bob)["memberships"] == 2  # the others are kept


@pytest.mark.postgres
def test_a_batch_waits_for_an_erasure_under_way_and_writes_nothing(
    tmp_path: Path,
    pg_store: Store,
    other: Store,
    make_workspace: Any,
    shop_yaml: str,
    track: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The erasure has deleted Ada's rows and not committed when a batch (no trait state
    saved) decides her again: the batch waits for it, then finds her gone."""
    ws, engine, _, pid = _rig(tmp_path, pg_store, make_workspace, shop_yaml, track)
    privacy = Privacy(ws.path, ws.definition, other)
    engine_backend = pg_store.backend_pid()  # type: ignore[attr-defined]
    done = threading.Event()
    deleted = threading.Event()
    failed: list[BaseException] = []
    append = audit.append

    def last_step(store: Store, *args: Any, **kwargs: Any) -> Any:
        # the erasure's last write before its commit: hold the commit until the engine waits
        result = append(store, *args, **kwargs)
        deleted.set()
        _until(_waits_on_lock(engine_backend), done)
        return result

    def run_erasure() -> None:
        try:
            erase(privacy, "ada@example.com", at=T0)
        except BaseException as exc:
            failed.append(exc)
        finally:
            done.set()

    monkeypatch.setattr(audit, "append", last_step)
    thread = threading.Thread(target=run_erasure)
    thread.start()
    try:
        assert deleted.wait(WAIT)
        # the time transition of her purchase (30 days on), fired from the engine's memory
        changes = engine.advance(T0 + timedelta(days=31))
    finally:
        thread.join(WAIT)
    assert not failed and done.is_set()
    assert [c for c in changes if c.profile_id == pid] == []
    assert _held(ws.store, pid) == NOTHING


def test_a_time_transition_after_an_erasure_writes_nothing(
    tmp_path: Path, store: Store, make_workspace: Any, shop_yaml: str, track: Any
) -> None:
    """The engine holds Ada in memory, her schedule entry in its heap; she is erased (no
    notice reaches the engine) and the entry then falls due."""
    ws, engine, _, pid = _rig(tmp_path, store, make_workspace, shop_yaml, track)
    erase(ws.privacy, "ada@example.com", at=T0 + timedelta(days=1))
    changes = engine.advance(T0 + timedelta(days=31))
    assert [c for c in changes if c.profile_id == pid] == []
    assert _held(ws.store, pid) == NOTHING
    assert engine.stats["erased"] == 1
    engine.checkpoint()
    assert _held(ws.store, pid) == NOTHING
    bob = resolve_person(ws.store, "bob")  # his transition fired as before
    assert any(c.profile_id == bob and c.segment == "recent_buyer" for c in changes)


def test_a_batch_of_someone_else_between_the_erasure_and_the_transition(
    tmp_path: Path, store: Store, make_workspace: Any, shop_yaml: str, track: Any
) -> None:
    """The first batch after the erasure writes for Bob only; Ada's transition falls due
    later, still from the engine's memory."""
    ws, engine, intake, pid = _rig(tmp_path, store, make_workspace, shop_yaml, track)
    erase(ws.privacy, "ada@example.com", at=T0 + timedelta(days=1))
    intake.submit([track("bob", "Email Opened", T0 + timedelta(days=2))], source="test")
    changes = engine.advance(T0 + timedelta(days=31))
    assert [c for c in changes if c.profile_id == pid] == []
    assert _held(ws.store, pid) == NOTHING


def test_events_read_before_an_erasure_write_nothing_after_it(
    tmp_path: Path, store: Store, make_workspace: Any, shop_yaml: str, track: Any
) -> None:
    """A change feed read Ada's new event; the erasure commits before the engine applies it."""
    ws, engine, _, pid = _rig(tmp_path, store, make_workspace, shop_yaml, track)
    unheard = Intake(ws, FixedClock(T0))  # another process's intake: the engine is not told
    unheard.submit([track("ada", "Order Completed", T0, total=1200)], source="test")
    rows = ws.store.fetchall(
        f"SELECT {EVENT_COLUMNS} FROM events WHERE profile_id = ? ORDER BY seq", [pid]
    )
    events = [row_to_event(row) for row in rows][-1:]  # what the feed read
    erase(ws.privacy, "ada@example.com", at=T0)
    changes = engine.process(events, as_of=T0 + timedelta(minutes=1))
    assert changes == []
    assert _held(ws.store, pid) == NOTHING


def test_an_erasure_written_through_the_server_by_another_process(
    tmp_path: Path, duck_store: DuckDBStore, make_workspace: Any, shop_yaml: str, track: Any
) -> None:
    """DuckDB: ``segmint privacy erase`` run while a server holds the file writes through
    that server (:mod:`segmint.store.sharedwrite`); the engine queries nothing to notice
    (the store's erasure hint moved before the erasure committed) and then writes nothing
    for Ada when her time transition falls due."""
    ws, engine, _, pid = _rig(tmp_path, duck_store, make_workspace, shop_yaml, track)
    duck_store.share_reads()
    writer = connect_shared_writes(duck_store.path, "the test server")
    assert writer is not None
    try:
        hint = duck_store.erasure_hint()
        erase(Privacy(ws.path, ws.definition, writer), "ada@example.com", at=T0)
        assert duck_store.erasure_hint() > hint
    finally:
        writer.close()
    changes = engine.advance(T0 + timedelta(days=31))
    assert [c for c in changes if c.profile_id == pid] == []
    assert _held(ws.store, pid) == NOTHING
    assert engine.stats["erased"] == 1


def test_the_erasure_hint_moves_for_erasures_and_other_processes_writes_only(
    tmp_path: Path, duck_store: DuckDBStore, make_workspace: Any, shop_yaml: str, track: Any
) -> None:
    ws, engine, intake, _ = _rig(tmp_path, duck_store, make_workspace, shop_yaml, track)
    hint = duck_store.erasure_hint()
    intake.submit([track("bob", "Email Opened", T0)], source="test")
    engine.checkpoint()
    assert duck_store.erasure_hint() == hint  # the server's own writes: no check needed
    again = DuckDBStore(
        Path(duck_store.path).parent
        / ".."
        / Path(duck_store.path).parent.name
        / Path(duck_store.path).name
    )  # the same file, spelled otherwise
    try:
        erase(Privacy(ws.path, ws.definition, again), "ada@example.com", at=T0)
        assert duck_store.erasure_hint() == hint + 1
    finally:
        again.close()


def test_a_save_reads_no_events_while_nothing_was_erased(
    tmp_path: Path, duck_store: DuckDBStore, make_workspace: Any, shop_yaml: str, track: Any
) -> None:
    """DuckDB: whether the profiles a save writes still have events is read (a scan of the
    events table) only when the erasure hint moved; otherwise the state is written at once."""
    ws, engine, intake, pid = _rig(tmp_path, duck_store, make_workspace, shop_yaml, track)
    intake.submit([track("ada", "Email Opened", T0)], source="test")
    seen = record_statements(duck_store)
    assert engine.checkpoint() == 1
    assert seen and not [sql for sql in seen if "FROM events" in sql]
    assert _held(ws.store, pid)["trait_state"] == 1


def test_retention_deleting_every_event_of_a_person_is_noticed(
    tmp_path: Path, duck_store: DuckDBStore, make_workspace: Any, shop_yaml: str, track: Any
) -> None:
    """Retention run in the server's process deletes all of Ada's events while the engine
    holds her newer state unsaved: the save checks, and writes no state without events."""
    from segmint.privacy.retention import enforce

    ws, engine, intake, pid = _rig(tmp_path, duck_store, make_workspace, shop_yaml, track)
    intake.submit([track("ada", "Email Opened", T0)], source="test")
    saved = "SELECT updated_at FROM trait_state WHERE profile_id = ?"
    before = ws.store.fetchall(saved, [pid])
    hint = duck_store.erasure_hint()
    privacy = ws.privacy
    privacy.settings.retention.update(
        {name: timedelta(days=1) for name in ("Order Completed", "Email Opened")}
    )
    ws.store.execute("DELETE FROM events WHERE type = 'identify'")  # (no retention for those)
    deleted = enforce(privacy, as_of=T0 + timedelta(days=2))
    assert deleted["Email Opened"] == 1 and duck_store.erasure_hint() > hint
    assert pid in engine._unsaved
    engine.checkpoint(T0 + timedelta(days=2))
    assert ws.store.fetchall(saved, [pid]) == before  # not written again
    assert pid not in engine._live
