"""A server's real time applies its own events and other writers' events, each once.

The server's intake hands its events to the engine (listener path); another writer's
events come through the change feed. Interleavings of both, in any order, must leave the
live trait values equal to what the stored events say, and memberships equal to a batch
recompute.
"""

from __future__ import annotations

import json
import socket
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segmint.clock import FixedClock
from segmint.intake.pipeline import Intake
from segmint.membership.feed import ChangeFeed
from segmint.membership.follow import Follower, realtime_status
from segmint.membership.service import Membership
from segmint.store import Store
from segmint.workspace import Workspace

NOW = datetime(2026, 11, 1, tzinfo=UTC)
OPS = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(["own", "other"]), st.integers(1, 4), st.integers(0, 3)),
        st.just(("step", 0, 0)),
    ),
    min_size=1,
    max_size=12,
)


def _orders(prefix: str, n: int, count: int, person: int) -> list[dict[str, Any]]:
    return [
        {"type": "track", "event": "Order Completed", "userId": f"u{person}",
         "messageId": f"{prefix}-{n}-{i}", "timestamp": "2026-10-30T00:00:00Z",
         "properties": {"total": 400}}
        for i in range(count)
    ]  # fmt: skip


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=OPS)
def test_own_and_other_writers_events_are_applied_once(ops: list[tuple[str, int, int]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace.init(Path(tmp) / "ws", name="follow")
        try:
            _run(ws, ops)
        finally:
            ws.close()


def _run(ws: Workspace, ops: list[tuple[str, int, int]]) -> None:
    clock = FixedClock(NOW)
    membership = Membership(ws)
    engine = membership.realtime(clock)
    follower = Follower(engine, ChangeFeed(ws.store), clock)
    assert follower.lead(NOW)
    own = Intake(ws, clock)
    own.add_listener(follower)
    own.watch_commits(follower)
    other = Intake(ws, clock)  # another process's intake: no listener here
    for n, (kind, count, person) in enumerate(ops):
        if kind == "step":
            follower.step()
        elif kind == "own":
            own.submit(_orders(kind, n, count, person), source=kind)
        else:
            other.submit(_orders(kind, n, count, person), source=kind)
            follower.written_elsewhere(False)  # what the DuckDB holder says after a write
    while follower.step():
        pass
    engine.checkpoint(NOW)
    stored = dict(
        ws.store.fetchall(
            "SELECT i.value, count(*) FROM events e JOIN identities i "
            "ON i.profile_id = e.profile_id AND i.kind = 'user_id' GROUP BY i.value"
        )
    )
    live = {
        user: values["orders"]
        for user, values in _values(ws).items()
        if values.get("orders") is not None
    }
    assert live == stored  # every event folded once
    assert membership.reconcile(NOW + timedelta(microseconds=1)) == []
    other_events = sum(c for k, c, _ in ops if k == "other")
    assert follower.applied == other_events
    assert follower.lag().events == 0


def _values(ws: Workspace) -> dict[str, dict[str, Any]]:
    import json

    rows = ws.store.fetchall(
        'SELECT i.value, v."values" FROM trait_values v JOIN identities i '
        "ON i.profile_id = v.profile_id AND i.kind = 'user_id'"
    )
    return {user: json.loads(v) if isinstance(v, str) else v for user, v in rows}


def test_status_reports_each_running_server(workspace: Workspace) -> None:
    clock = FixedClock(NOW)
    engine = Membership(workspace).realtime(clock)
    follower = Follower(engine, ChangeFeed(workspace.store), clock, report=workspace.store)
    follower._publish()  # what the follower thread does every second
    found = realtime_status(workspace.store, NOW + timedelta(seconds=2))
    assert [s["running"] for s in found["servers"]] == [True]
    assert found["servers"][0]["leading"] is False  # it has not taken the lead (lead())
    assert found["servers"][0]["events"] == 0 and found["stored_since_checkpoint"] == 0
    stale = realtime_status(workspace.store, NOW + timedelta(minutes=5))
    assert [s["running"] for s in stale["servers"]] == [False]
    follower.close()
    assert realtime_status(workspace.store, NOW)["servers"] == []


def test_a_killed_server_on_this_machine_is_not_reported_running(workspace: Workspace) -> None:
    """``kill -9`` of a server left its last report, fresh for ten seconds: ``status`` then
    listed it as leading beside the server started after it."""
    import subprocess
    import sys

    from segmint.membership.follow import LAG_KEY
    from segmint.store import write_meta

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    body = {"at": NOW.isoformat(), "leading": True, "events": 0}
    with workspace.store.transaction():
        write_meta(workspace.store, f"{LAG_KEY}{socket.gethostname()}:{dead.stdout.strip()}",
                   json.dumps(body))  # fmt: skip
        write_meta(workspace.store, f"{LAG_KEY}elsewhere:1", json.dumps(body))
    found = realtime_status(workspace.store, NOW + timedelta(seconds=2))["servers"]
    assert {s["server"].split(":")[0]: s["running"] for s in found} == {
        socket.gethostname(): False,  # gone: its process ended
        "elsewhere": True,  # another machine's: its report alone says
    }


@pytest.mark.postgres
def test_a_second_server_leaves_the_leaders_unsaved_state_alone(
    pg_store: Store, tmp_path: Path
) -> None:
    """The leader's unsaved mark is not a crash while it runs: a second server starting
    keeps the saved trait state; the server taking the lead after a crash drops it."""
    from segmint.membership.follow import Leadership
    from segmint.membership.service import attach_realtime
    from segmint.store import read_meta
    from segmint.traits import UNSAVED_KEY

    clock = FixedClock(NOW)
    first = Workspace.init(tmp_path / "a", name="lead")
    first._store = pg_store
    lock = pg_store.reopen()  # the leader's lock, as its follower holds it
    assert Leadership(lock).try_take()
    engine = Membership(first).realtime(clock, checkpoint_every=3600)
    intake = Intake(first, clock)
    intake.add_listener(engine)
    intake.submit(_orders("a", 0, 2, 1) + _orders("a", 1, 1, 2), source="t")
    engine.checkpoint()
    intake.submit(_orders("b", 0, 1, 3), source="t")  # applied, its state not yet saved
    assert read_meta(pg_store, UNSAVED_KEY) == "1"

    def states() -> int:
        return int(pg_store.fetchall("SELECT count(*) FROM trait_state")[0][0])

    saved = states()
    assert saved >= 2
    second = Workspace.init(tmp_path / "b", name="lead")
    second._store = pg_store.reopen()
    service = attach_realtime(second, Intake(second, clock), clock)
    try:
        assert service.follower is not None and not service.follower.leading
        assert states() == saved and read_meta(pg_store, UNSAVED_KEY) == "1"
        lock.close()  # the leader dies without saving: the second takes the lead
        deadline = time.monotonic() + 30
        while not service.follower.leading:
            assert time.monotonic() < deadline, "the second server did not take the lead"
            time.sleep(0.05)
        assert states() == 0 or read_meta(pg_store, UNSAVED_KEY) == "0"
    finally:
        service.close()
        second.store.close()


def test_a_stop_waits_for_the_batch_being_applied(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # bench/ingest.py stopped a lagging `serve` while its feed applied a batch: the stop
    # gave the thread 10 s, closed the store under it, and DuckDB aborted the process
    # ("connection is busy with another call"). A stop now waits for the batch.
    import threading

    import segmint.common

    monkeypatch.setattr(segmint.common, "STOP_PATIENCE", 0.05)  # say so at once, then wait on
    clock = FixedClock(NOW)
    engine = Membership(workspace).realtime(clock)
    follower = Follower(engine, ChangeFeed(workspace.store), clock)
    assert follower.lead(NOW)
    applying, release = threading.Event(), threading.Event()
    process = engine.process

    def slow(*args: Any, **kwargs: Any) -> Any:
        with workspace.store.transaction():  # a long batch, inside its transaction
            applying.set()
            release.wait(5)
            return process(*args, **kwargs)

    monkeypatch.setattr(engine, "process", slow)
    Intake(workspace, clock).submit(_orders("other", 0, 3, 1), source="other")
    follower.written_elsewhere(False)
    follower.start()
    assert applying.wait(5)
    stopper = threading.Thread(target=follower.close)
    stopper.start()
    stopper.join(0.3)
    assert stopper.is_alive()  # still waiting for the batch, past the patience
    assert "stopping: waiting for real time to finish the batch" in caplog.text
    release.set()
    stopper.join(5)
    assert not stopper.is_alive()
    assert follower.applied == 3
    workspace.store.fetchall("SELECT 1")  # the store is intact and closes normally


@pytest.mark.postgres
def test_a_refresh_by_another_process_is_heard_and_the_cache_forgotten(
    pg_store: Store, tmp_path: Path, make_workspace: Any, shop_yaml: str, track: Any
) -> None:
    """PostgreSQL: ``segmint refresh`` on another connection rewrites memberships; the
    leader hears its commit and re-reads them, rather than diff against its cache (it kept
    a profile's stale membership and recorded nothing when the profile's rule held again)."""
    from segmint.membership.batch import refresh
    from segmint.membership.compiled import CompiledSegments

    ws = make_workspace(tmp_path, shop_yaml, pg_store)
    clock = FixedClock(NOW)
    engine = Membership(ws).realtime(clock)
    follower = Follower(engine, ChangeFeed(pg_store.reopen(), owned=True), clock)  # type: ignore[attr-defined]
    follower.own_pids.add(pg_store.backend_pid())  # type: ignore[attr-defined]
    assert follower.lead(NOW)
    intake = Intake(ws, clock)
    intake.add_listener(follower)
    intake.submit([track("ann", "Order Completed", NOW, total=600)], source="t")
    pid = ws.store.fetchall("SELECT profile_id FROM identities WHERE value = 'ann'")[0][0]

    def segments() -> set[str]:
        rows = ws.store.fetchall("SELECT segment FROM memberships WHERE profile_id = ?", [pid])
        return {str(r[0]) for r in rows}

    assert "recent_buyer" in segments()
    other = pg_store.reopen()  # type: ignore[attr-defined]
    try:
        refresh(other, CompiledSegments(ws.definition), NOW + timedelta(days=60))
        assert "recent_buyer" not in segments()
        deadline = time.monotonic() + 10
        while not (heard := follower.feed.wait(1.0)) or other.backend_pid() not in heard.derived_by:
            assert time.monotonic() < deadline, "the refresh's commit was not heard"
        follower.heard(heard)
        intake.submit([track("ann", "Product Viewed", NOW)], source="t")  # decided at NOW
        assert "recent_buyer" in segments()
    finally:
        other.close()
        follower.close()
