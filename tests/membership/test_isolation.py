"""A profile the real-time engine fails on is set aside; the rest of its batch is applied."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from segmint.clock import FixedClock
from segmint.intake.pipeline import Intake
from segmint.membership.changes import all_members
from segmint.membership.compiled import CompiledSegments
from segmint.membership.realtime import RealtimeEngine
from segmint.store import write_meta
from segmint.traits.state import SEQ_KEY

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _pid(store, user: str) -> str:
    rows = store.fetchall(
        "SELECT profile_id FROM identities WHERE kind = 'user_id' AND value = ?", [user]
    )
    return str(rows[0][0])


def _store_with_a_poisoned_event(ws, track) -> None:
    """Three buyers' events stored together; one has a time no window can extend.

    Intake refuses such instants now; the row stands for one stored before it did, or
    written by another tool: whatever a profile's step raises, the others must go on.
    """
    Intake(ws, FixedClock(T0)).submit(
        [
            track("u1", "Order Completed", T0, total=1500),
            track("u2", "Email Opened", T0) | {"messageId": "bad"},
            track("u3", "Order Completed", T0, total=2000),
        ],
        source="test",
    )
    ws.store.execute(
        "UPDATE events SET \"timestamp\" = ? WHERE message_id = 'bad'",
        [datetime(9999, 12, 31, 23, 59, 59)],
    )
    with ws.store.transaction():
        write_meta(ws.store, SEQ_KEY, "0")  # an engine saved before these events


def test_one_failing_profile_does_not_stop_its_batch(tmp_path, make_workspace, store, track):
    ws = make_workspace(tmp_path, store=store)
    _store_with_a_poisoned_event(ws, track)
    engine = RealtimeEngine(ws.store, CompiledSegments(ws.definition), FixedClock(T0))
    assert engine.catch_up(T0) == 3  # one batch holding all three
    members = all_members(ws.store)
    u1, u2, u3 = (_pid(ws.store, u) for u in ("u1", "u2", "u3"))
    assert {"vip", "recent_buyer"} <= members[u1]
    assert {"vip", "recent_buyer"} <= members[u3]
    assert u2 not in members  # nothing half-decided was written for it
    assert engine.stats["failed"] == 1
    rows = ws.store.fetchall("SELECT profile_id, message_id, error FROM realtime_failures")
    assert [(r[0], r[1]) for r in rows] == [(u2, "bad")]
    assert rows[0][2].startswith("OverflowError")
    saved = {r[0] for r in ws.store.fetchall("SELECT profile_id FROM trait_values")}
    assert saved == {u1, u3}
    ws.close()


def test_status_counts_real_time_failures(tmp_path, make_workspace, track, cli):
    ws = make_workspace(tmp_path)
    _store_with_a_poisoned_event(ws, track)
    RealtimeEngine(ws.store, CompiledSegments(ws.definition), FixedClock(T0)).catch_up(T0)
    ws.close()
    shown = cli("-w", str(ws.path), "status", "--format", "json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["counts"]["realtime_failures"] == 1
    text = cli("-w", str(ws.path), "status").stdout
    assert "realtime_failures 1" in text
