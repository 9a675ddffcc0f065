from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from segmint.clock import FixedClock
from segmint.intake.pipeline import Intake
from segmint.membership.batch import Difference, reconcile, refresh
from segmint.membership.changes import all_members, read_changes
from segmint.membership.compiled import CompiledSegments

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def shop(tmp_path, store, make_workspace):
    ws = make_workspace(tmp_path, store=store)
    yield ws, Intake(ws, FixedClock(T0)), CompiledSegments(ws.definition)


def pid(ws, user: str) -> str:
    rows = ws.store.fetchall(
        "SELECT profile_id FROM identities WHERE kind = 'user_id' AND value = ?", [user]
    )
    return rows[0][0]


def test_refresh_computes_every_segment_with_structure(shop, track):
    ws, intake, compiled = shop
    intake.submit(
        [
            track("vip", "Order Completed", T0 - timedelta(days=1), total=1500),
            track("rep", "Order Completed", T0 - timedelta(days=100), total=10),
            track("rep", "Order Completed", T0 - timedelta(days=90), total=10),
            track("new", "Product Viewed", T0 - timedelta(days=1)),
            *[track("vip", "Email Opened", T0 - timedelta(days=d)) for d in (1, 2, 3)],
        ],
        source="test",
    )
    report = refresh(ws.store, compiled, T0)
    assert report.profiles == 3 and report.exited == 0
    got = all_members(ws.store)
    # vip beats nothing else in lifecycle; in_segment and parent follow
    assert got[pid(ws, "vip")] == {"vip", "recent_buyer", "big_recent", "engaged", "vip_engaged"}
    # repeat (priority 50) beats lapsed (priority 10): exclusive group
    assert got[pid(ws, "rep")] == {"repeat"}
    # nothing in the group matches: the default; performed() lowered to an implicit trait
    assert got[pid(ws, "new")] == {"prospect", "browsers"}
    assert report.entered == sum(len(v) for v in got.values())
    vip_enter = read_changes(ws.store, segment="vip")[0]
    assert vip_enter.occurred_at == T0 and vip_enter.cause["source"] == "refresh"
    assert vip_enter.cause["traits"] == ["lifetime_value"]


def test_refresh_records_only_the_differences_with_changed_traits(shop, track):
    ws, intake, compiled = shop
    intake.submit([track("u1", "Order Completed", T0, total=600)], source="test")
    refresh(ws.store, compiled, T0)
    before = len(read_changes(ws.store))
    assert refresh(ws.store, compiled, T0).entered == 0
    assert len(read_changes(ws.store)) == before
    later = T0 + timedelta(days=31)
    intake.submit([track("u1", "Order Completed", later, total=600)], source="test")
    report = refresh(ws.store, compiled, later)
    assert (report.entered, report.exited) == (1, 1)  # repeat replaces prospect... and vip
    new = read_changes(ws.store, after_id=before)
    assert {(c.segment, c.change) for c in new} == {("vip", "enter"), ("prospect", "exit")}
    assert all(c.occurred_at == later for c in new)
    vip = next(c for c in new if c.segment == "vip")
    assert vip.cause["traits"] == ["lifetime_value"]


def test_large_differences_are_written_set_based(shop, track):
    ws, intake, compiled = shop
    orders = [track(f"u{i}", "Order Completed", T0, total=100 * i) for i in range(12)]
    intake.submit(orders, source="test")
    report = refresh(ws.store, compiled, T0, precise_limit=0)
    changes = read_changes(ws.store)
    assert len(changes) == report.entered > 12
    assert all(c.cause["bulk"] is True and c.cause["source"] == "refresh" for c in changes)
    sizes = {}
    for members in all_members(ws.store).values():
        for seg in members:
            sizes[seg] = sizes.get(seg, 0) + 1
    assert sizes["vip"] == 2 and sizes["recent_buyer"] == 12


def test_reconcile_finds_every_difference(shop, track):
    ws, intake, compiled = shop
    intake.submit([track("u1", "Order Completed", T0, total=2000)], source="test")
    refresh(ws.store, compiled, T0)
    assert reconcile(ws.store, compiled, T0) == []
    p = pid(ws, "u1")
    ws.store.execute("DELETE FROM memberships WHERE segment = 'vip'")
    ws.store.execute(
        "INSERT INTO memberships VALUES ('engaged', ?, ?)", [p, T0.replace(tzinfo=None)]
    )
    assert reconcile(ws.store, compiled, T0) == [
        Difference("engaged", p, live=True, batch=False),
        Difference("vip", p, live=False, batch=True),
    ]
    # time matters: 31 days later the recency segments are out in the batch view
    later = {d.segment for d in reconcile(ws.store, compiled, T0 + timedelta(days=31))}
    assert {"recent_buyer", "big_recent"} <= later
