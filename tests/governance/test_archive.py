"""``archived: true`` and ``lifespan:`` on segments: set aside at load, exact on both paths."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.membership.conftest import deploy_step

from segmint.clock import FixedClock
from segmint.config.errors import ConfigErrors
from segmint.config.loader import load_workspace_def
from segmint.intake.pipeline import Intake
from segmint.membership.batch import reconcile, refresh
from segmint.membership.changes import all_members, read_changes
from segmint.membership.compiled import CompiledSegments
from segmint.membership.realtime import RealtimeEngine
from segmint.membership.service import Membership
from segmint.workspace import Workspace

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
BASE = """
name: arch
traits:
  orders: {count: events, event: Order Completed}
segments:
  buyers: {rule: "orders >= 1"}
  repeat: {rule: "orders >= 2"}
"""


def write(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "segmint.yaml"
    path.write_text(text)
    return path


def order(user: str, at: datetime, n: int) -> dict[str, Any]:
    return {"type": "track", "userId": user, "event": "Order Completed",
            "timestamp": at.isoformat(), "messageId": f"{user}-{n}"}  # fmt: skip


def test_archived_segments_are_set_aside(tmp_path: Path) -> None:
    path = write(tmp_path, BASE.replace('"orders >= 2"}', '"orders >= 2", archived: true}'))
    defn = load_workspace_def(path)
    assert set(defn.segments) == {"buyers"}
    assert set(defn.archived_segments) == {"repeat"}
    assert set(CompiledSegments(defn).segments) == {"buyers"}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            "campaigns:\n  c: {segment: repeat, template: t, from: a@b.c}\n",
            "campaign 'c' targets segment 'repeat', which is archived",
        ),
        (
            '  child: {rule: "orders >= 3", parent: repeat}\n',
            "parent segment 'repeat' of segment 'child' is archived",
        ),
    ],
)
def test_using_an_archived_segment_is_an_error(tmp_path: Path, extra: str, message: str) -> None:
    text = BASE.replace('"orders >= 2"}', '"orders >= 2", archived: true}')
    text = text + extra if extra.startswith("campaigns") else text + extra
    with pytest.raises(ConfigErrors, match=message) as info:
        load_workspace_def(write(tmp_path, text))
    assert info.value.errors[0].location is not None


def test_reading_an_archived_segment_says_it_is_archived(tmp_path: Path) -> None:
    text = BASE.replace('"orders >= 2"}', '"orders >= 2", archived: true}')
    write(tmp_path, text + "  reader: {rule: \"in_segment('repeat')\"}\n")
    with pytest.raises(ConfigErrors) as info:
        Workspace.open(tmp_path)
    assert info.value.errors[0].hint is not None
    assert "'repeat' is archived" in info.value.errors[0].hint


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ("lifespan: 30d", "counts from 'since'"),
        ("lifespan: 2026-12-01, since: 2026-11-01", "'since' is the start of a duration"),
        ("lifespan: someday", "neither an instant"),
        ("lifespan: 30d, since: whenever", "not an instant"),
    ],
)
def test_bad_lifespans_are_located(tmp_path: Path, fields: str, message: str) -> None:
    text = BASE.replace(
        'buyers: {rule: "orders >= 1"}', f'buyers: {{rule: "orders >= 1", {fields}}}'
    )
    with pytest.raises(ConfigErrors, match=message) as info:
        load_workspace_def(write(tmp_path, text))
    assert info.value.errors[0].location is not None
    assert info.value.errors[0].location.line == 6


def test_lifespan_bounds_the_evaluated_rule(tmp_path: Path) -> None:
    text = BASE.replace(
        'buyers: {rule: "orders >= 1"}',
        'buyers: {rule: "orders >= 1", lifespan: 10d, since: 2026-03-01}',
    )
    seg = load_workspace_def(write(tmp_path, text)).segments["buyers"]
    assert seg.ends_at == datetime(2026, 3, 11, tzinfo=UTC)
    assert seg.evaluated_rule == "(orders >= 1) and now() < timestamp '2026-03-11T00:00:00Z'"
    assert seg.rule == "orders >= 1"  # what the person wrote is unchanged


def test_archiving_exits_members_and_keeps_history(tmp_path: Path) -> None:
    folder = tmp_path / "ws"
    write(folder, BASE)
    ws = Workspace.open(folder)
    Intake(ws, FixedClock(T0)).submit([order("u", T0, 1), order("u", T0, 2)], source="t")
    Membership(ws).refresh(T0)
    assert all_members(ws.store) == {next(iter(all_members(ws.store))): {"buyers", "repeat"}}
    write(folder, BASE.replace('"orders >= 2"}', '"orders >= 2", archived: true}'))
    archived = Workspace(path=folder, definition=Workspace.open(folder).definition, _store=ws.store)
    later = T0 + timedelta(days=1)
    Membership(archived).refresh(later)
    assert {s for segs in all_members(ws.store).values() for s in segs} == {"buyers"}
    changes = read_changes(ws.store, segment="repeat")
    assert [(c.change, c.cause["source"]) for c in changes] == [
        ("enter", "refresh"),
        ("exit", "definition_removed"),
    ]
    info = Membership(archived).segment("repeat")
    assert info["archived"] is True and info["size"] == 0 and len(info["recent_changes"]) == 2
    listed = {r["name"]: r["archived"] for r in Membership(archived).segments()}
    assert listed == {"buyers": False, "repeat": True}
    # set back to false: evaluated again, the member re-enters
    write(folder, BASE)
    restored = Workspace(path=folder, definition=Workspace.open(folder).definition, _store=ws.store)
    Membership(restored).refresh(later + timedelta(days=1))
    assert {s for segs in all_members(ws.store).values() for s in segs} == {"buyers", "repeat"}
    ws.close()


def test_a_starting_engine_exits_archived_members(tmp_path: Path) -> None:
    folder = tmp_path / "ws"
    write(folder, BASE)
    ws = Workspace.open(folder)
    Intake(ws, FixedClock(T0)).submit([order("u", T0, 1), order("u", T0, 2)], source="t")
    refresh(ws.store, CompiledSegments(ws.definition), T0)
    write(folder, BASE.replace('"orders >= 2"}', '"orders >= 2", archived: true}'))
    compiled = CompiledSegments(Workspace.open(folder).definition)
    later = T0 + timedelta(hours=1)
    engine = RealtimeEngine(ws.store, compiled, FixedClock(later))
    engine.catch_up(later)
    engine.close()
    assert reconcile(ws.store, compiled, later) == []
    assert {s for segs in all_members(ws.store).values() for s in segs} == {"buyers"}
    ws.close()


LIFESPAN = """
name: life
traits:
  orders: {count: events, event: Order Completed}
segments:
  promo: {rule: "orders >= 1", lifespan: "2026-03-05T00:00:00Z"}
  flash: {rule: "orders >= 1", lifespan: 36h, since: "2026-03-01T00:00:00Z"}
  plain: {rule: "orders >= 1", archived: ARCHIVED}
"""
STEP = st.tuples(
    st.sampled_from(["refresh", "realtime"]),
    st.integers(0, 3 * 86400).map(lambda s: timedelta(seconds=s)),
    st.lists(st.sampled_from(["u0", "u1"]), max_size=2),
    st.booleans(),  # plain archived in this step
)
_ids = iter(range(10**9))


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(steps=st.lists(STEP, min_size=2, max_size=6))
def test_lifespans_and_archiving_keep_batch_and_real_time_exact(steps, tmp_path, store):
    folder = tmp_path / "life"
    for table in ("events", "profiles", "identities", "profile_merges", "trait_values",
                  "trait_state", "memberships", "membership_changes", "schedule"):  # fmt: skip
        store.execute(f"DELETE FROM {table}")
    store.execute("DELETE FROM meta WHERE key LIKE 'trait_state.%' OR key LIKE 'membership.%'")
    now = T0
    for mode, gap, users, archived in steps:
        write(folder, LIFESPAN.replace("ARCHIVED", "true" if archived else "false"))
        ws = Workspace(path=folder, definition=load_workspace_def(folder / "segmint.yaml"),
                       _store=store)  # fmt: skip
        compiled = CompiledSegments(ws.definition)
        now += gap
        deploy_step(ws, compiled, now, [order(u, now, next(_ids)) for u in users], mode)
        assert reconcile(store, compiled, now) == []
        held = {s for segs in all_members(store).values() for s in segs}
        ends = {
            "promo": datetime(2026, 3, 5, tzinfo=UTC),
            "flash": datetime(2026, 3, 2, 12, tzinfo=UTC),
        }
        for name, end in ends.items():
            if now >= end:
                assert name not in held
        if archived:
            assert "plain" not in held
