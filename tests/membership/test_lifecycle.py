"""Segments added, removed, renamed or changed between runs: batch, real time, CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from segmint.clock import FixedClock
from segmint.intake.pipeline import Intake
from segmint.membership.batch import Difference, reconcile, refresh
from segmint.membership.changes import all_members, read_changes
from segmint.membership.compiled import CompiledSegments, stored_definitions
from segmint.membership.realtime import RealtimeEngine
from segmint.membership.service import Membership

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
EXTRA = '  tmp_seg: {rule: "orders >= 1"}\n'


@pytest.fixture
def shop(tmp_path, store, make_workspace, shop_yaml, track):
    """The shop workspace with three customers, refreshed once with ``tmp_seg`` defined."""
    ws = make_workspace(tmp_path, shop_yaml + EXTRA, store=store)
    Intake(ws, FixedClock(T0)).submit(
        [
            track("a", "Order Completed", T0 - DAY, total=1500),
            track("b", "Order Completed", T0 - 40 * DAY, total=20),
            track("c", "Product Viewed", T0 - DAY),
        ],
        source="test",
    )
    refresh(ws.store, CompiledSegments(ws.definition), T0)
    return ws


def with_segment(text: str, line: str) -> str:
    """``text`` with ``line`` added first under ``segments:``."""
    return text.replace("\nsegments:\n", "\nsegments:\n" + line, 1)


def members(ws, segment: str) -> set[str]:
    return {p for p, segs in all_members(ws.store).items() if segment in segs}


def reopen(tmp_path, make_workspace, ws, text: str):
    return make_workspace(tmp_path, text, store=ws.store)


@pytest.mark.parametrize("limit", [10_000, 0], ids=["precise", "bulk"])
def test_refresh_exits_the_members_of_a_removed_segment(
    shop, tmp_path, make_workspace, shop_yaml, limit
):
    held = members(shop, "tmp_seg")
    assert len(held) == 2
    ws = reopen(tmp_path, make_workspace, shop, shop_yaml)
    compiled = CompiledSegments(ws.definition)
    assert reconcile(ws.store, compiled, T0 + DAY) == [
        Difference("tmp_seg", p, live=True, batch=False, removed=True) for p in sorted(held)
    ]
    report = refresh(ws.store, compiled, T0 + DAY, precise_limit=limit)
    assert report.exited >= 2
    exits = read_changes(ws.store, segment="tmp_seg")[-2:]
    assert {c.profile_id for c in exits} == held
    for change in exits:
        assert change.change == "exit" and change.occurred_at == T0 + DAY
        assert change.cause["source"] == "definition_removed"
        assert change.cause["rule"] == "orders >= 1"
    assert members(ws, "tmp_seg") == set()
    assert reconcile(ws.store, compiled, T0 + DAY) == []
    assert "tmp_seg" not in stored_definitions(ws.store)["segments"]


def test_a_rename_is_a_removal_and_an_addition(shop, tmp_path, make_workspace, shop_yaml):
    held = members(shop, "tmp_seg")
    ws = reopen(tmp_path, make_workspace, shop, shop_yaml + EXTRA.replace("tmp_seg", "buyers"))
    compiled = CompiledSegments(ws.definition)
    refresh(ws.store, compiled, T0 + DAY)
    assert members(ws, "tmp_seg") == set() and members(ws, "buyers") == held
    assert {c.cause["source"] for c in read_changes(ws.store, segment="buyers")} == {"refresh"}
    assert reconcile(ws.store, compiled, T0 + DAY) == []


def engine_on(ws, at: datetime) -> RealtimeEngine:
    """A real-time engine started as ``serve`` starts one: caught up at ``at``."""
    engine = Membership(ws).realtime(FixedClock(at))
    engine.catch_up(at)
    return engine


def test_real_time_start_exits_the_members_of_a_removed_segment(
    shop, tmp_path, make_workspace, shop_yaml
):
    held = members(shop, "tmp_seg")
    ws = reopen(tmp_path, make_workspace, shop, shop_yaml)
    membership = Membership(ws)
    published: list[object] = []
    membership.hub.subscribe(published.extend)
    engine = membership.realtime(FixedClock(T0 + DAY))
    engine.catch_up(T0 + DAY)
    exits = [c for c in published if c.segment == "tmp_seg"]  # type: ignore[attr-defined]
    assert {c.profile_id for c in exits} == held
    assert all(c.cause["source"] == "definition_removed" for c in exits)
    assert members(ws, "tmp_seg") == set()
    assert reconcile(ws.store, engine.compiled, T0 + DAY) == []
    # a second start has nothing left to do
    published.clear()
    engine_on(ws, T0 + DAY)
    assert published == []


def test_real_time_recomputes_added_and_changed_segments(shop, tmp_path, make_workspace, shop_yaml):
    changed = shop_yaml.replace(
        'lapsed: {rule: "days_since_purchase > 60", group: lifecycle, priority: 10}',
        'lapsed: {rule: "days_since_purchase > 30", group: lifecycle, priority: 200}',
    ).replace('engaged: {rule: "opens_30d >= 3"}', 'engaged: {rule: "orders >= 1"}')
    assert changed != shop_yaml
    ws = reopen(tmp_path, make_workspace, shop, changed + '  viewers: {rule: "orders = 0"}\n')
    engine = engine_on(ws, T0 + DAY)
    assert reconcile(ws.store, engine.compiled, T0 + DAY) == []
    assert len(members(ws, "viewers")) == 1 and len(members(ws, "engaged")) == 2
    assert len(members(ws, "lapsed")) == 1  # b: 41 days, now above vip-less priority 200
    # the schedule was rewritten for the new rules: time moves them exactly
    engine.advance(T0 + 70 * DAY)
    assert reconcile(ws.store, engine.compiled, T0 + 70 * DAY) == []


def test_removed_time_dependent_segment_leaves_no_schedule(tmp_path, store, make_workspace, track):
    text = (
        "name: t\ntraits:\n  last_purchase_at: {last: timestamp, event: Order Completed}\n"
        "segments:\n  recent: {rule: \"last_purchase_at >= now() - interval '30 days'\"}\n"
    )
    ws = make_workspace(tmp_path, text, store=store)
    Intake(ws, FixedClock(T0)).submit([track("a", "Order Completed", T0)], source="test")
    refresh(ws.store, CompiledSegments(ws.definition), T0)
    assert ws.store.fetchall("SELECT count(*) FROM schedule")[0][0] == 1
    bare = reopen(tmp_path, make_workspace, ws, text.split("segments:")[0] + "segments: {}\n")
    engine = engine_on(bare, T0 + DAY)
    assert ws.store.fetchall("SELECT count(*) FROM schedule")[0][0] == 0
    assert engine.next_due() is None
    assert members(ws, "recent") == set()


def test_an_engine_evaluating_a_profile_drops_removed_segments(
    shop, tmp_path, make_workspace, shop_yaml, track
):
    held = members(shop, "tmp_seg")
    ws = reopen(tmp_path, make_workspace, shop, shop_yaml)
    clock = FixedClock(T0 + DAY)
    engine = RealtimeEngine(ws.store, CompiledSegments(ws.definition), clock)  # no catch_up
    intake = Intake(ws, clock)
    intake.add_listener(engine)
    intake.submit([track("a", "Email Opened", T0 + DAY)], source="test")
    (exit_,) = [c for c in read_changes(ws.store, segment="tmp_seg") if c.change == "exit"]
    assert exit_.profile_id in held
    assert exit_.cause == {"source": "definition_removed", "rule": "orders >= 1", "traits": []}


def test_in_segment_of_a_removed_segment_is_a_config_error(cli, workspace: object) -> None:
    path: Path = workspace.path  # type: ignore[attr-defined]
    yaml = path / "segmint.yaml"
    yaml.write_text(with_segment(yaml.read_text(), "  fans: {rule: \"in_segment('gone')\"}\n"))
    result = cli("-w", str(path), "refresh", "--as-of", "2026-03-01T00:00:00Z")
    assert result.returncode == 1
    assert "unknown segment 'gone' in segment 'fans'" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_remove_a_segment_then_refresh_rebuild_reconcile_show(cli, workspace: object) -> None:
    path: Path = workspace.path  # type: ignore[attr-defined]
    w = ("-w", str(path))
    yaml = path / "segmint.yaml"
    original = yaml.read_text()
    for name in ("crm_contacts", "shop_orders"):
        assert (
            cli(*w, "ingest", str(path / "data" / f"{name}.csv"), "--mapping", name).returncode == 0
        )
    yaml.write_text(with_segment(original, EXTRA))
    first = cli(*w, "refresh", "--as-of", "2026-11-01T00:00:00Z")
    assert first.returncode == 0, first.stderr
    yaml.write_text(original)
    # before anything exits them, reconcile names the members of the removed segment
    before = cli(*w, "reconcile", "--as-of", "2026-11-02T00:00:00Z")
    assert before.returncode == 1
    assert "tmp_seg (removed)" in before.stdout and "no longer defined" in before.stdout
    for command in (("show", "tmp_seg"), ("overlap", "--segment", "tmp_seg"), ("sql", "tmp_seg")):
        shown = cli(*w, "segments", *command)
        assert shown.returncode == 1 and "is no longer defined in segmint.yaml" in shown.stderr
        assert "members exit at the next refresh" in shown.stderr
    rebuilt = cli(*w, "rebuild", "--as-of", "2026-11-02T00:00:00Z")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "members of segments no longer defined exited (tmp_seg)" in rebuilt.stdout
    after = cli(*w, "reconcile", "--as-of", "2026-11-02T00:00:00Z", "--format", "json")
    assert after.returncode == 0 and json.loads(after.stdout)["differences"] == []
    again = cli(*w, "refresh", "--as-of", "2026-11-03T00:00:00Z")
    assert again.returncode == 0, again.stderr
    assert "Traceback" not in again.stderr
    listed = cli(*w, "segments", "list", "--format", "json")
    assert "tmp_seg" not in {s["name"] for s in json.loads(listed.stdout)}
    shown = cli(*w, "segments", "show", "tmp_seg")
    assert shown.returncode == 1 and "it has no members" in shown.stderr
    typo = cli(*w, "segments", "show", "vipp")
    assert typo.returncode == 1 and "did you mean 'vip'?" in typo.stderr


def test_cli_refresh_after_removal_records_definition_removed(cli, workspace: object) -> None:
    path: Path = workspace.path  # type: ignore[attr-defined]
    w = ("-w", str(path))
    yaml = path / "segmint.yaml"
    original = yaml.read_text()
    assert (
        cli(
            *w, "ingest", str(path / "data" / "shop_orders.csv"), "--mapping", "shop_orders"
        ).returncode
        == 0
    )
    yaml.write_text(with_segment(original, EXTRA))
    assert cli(*w, "refresh", "--as-of", "2026-11-01T00:00:00Z").returncode == 0
    yaml.write_text(original)
    result = cli(*w, "refresh", "--as-of", "2026-11-02T00:00:00Z")
    assert result.returncode == 0, result.stderr
    exits = [c for c in read_changes(workspace.store, segment="tmp_seg") if c.change == "exit"]  # type: ignore[attr-defined]
    assert exits and all(c.cause["source"] == "definition_removed" for c in exits)
    assert not members(workspace, "tmp_seg")
