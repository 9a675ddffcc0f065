"""The batch refresh fills ``schedule``, so the real-time engine fires what time alone changes.

A row may be early (the engine re-evaluates and finds the exact instant) but never late or
missing: after ``refresh(T)``, advancing a fresh engine to any later ``T2`` must leave
memberships exactly as a batch recompute at ``T2`` has them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segmint.clock import FixedClock
from segmint.intake.pipeline import Intake
from segmint.membership.batch import reconcile, refresh
from segmint.membership.changes import all_members, read_changes
from segmint.membership.compiled import CompiledSegments
from segmint.membership.realtime import RealtimeEngine
from segmint.membership.schedule import Schedule
from segmint.rules import next_transition
from segmint.rules.timesql import MARGIN_US
from segmint.store import from_store_time
from segmint.traits import fold_events

T = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
US = timedelta(microseconds=1)
MS = MARGIN_US * US
DAY = timedelta(days=1)

BOUGHT = """
name: bought
traits:
  last_purchase_at: {last: timestamp, event: Order Completed}
segments:
  bought_30d: {rule: "last_purchase_at >= now() - interval '30 days'"}
"""
CARTS = """
name: carts
segments:
  abandoners: {rule: "performed('Cart Abandoned', within => '3 days')"}
"""
BIG = """
name: big
traits:
  big_7d: {count: events, event: Order Completed, where: "total > 100", within: 7d}
segments:
  big: {rule: "big_7d >= 1"}
"""
SQUARED = """
name: squared
traits:
  last_purchase_at: {last: timestamp, event: Order Completed}
segments:
  odd: {rule: "days_since(last_purchase_at) * days_since(last_purchase_at) > 100"}
"""
# every kind of time leaf and window the schedule must foresee
RICH = """
name: rich
traits:
  plan: {from: identify, type: string}
  last_purchase_at: {last: timestamp, event: Order Completed}
  days_since_purchase: {expr: "days_since(last_purchase_at)", type: number}
  carts_3d: {count: events, event: Cart Abandoned, within: 3d}
  big_orders_7d: {count: events, event: Order Completed, where: "total > 100", within: 7d}
  spend_7d: {sum: properties.total, event: Order Completed, within: 7d}
  opens_10d: {count: events, event: Email Opened, within: 10d}
segments:
  bought_30d: {rule: "last_purchase_at >= now() - interval '30 days'"}
  carts: {rule: "carts_3d >= 2"}
  big: {rule: "big_orders_7d >= 1"}
  spender: {rule: "spend_7d >= 300"}
  fortnight: {rule: "days_since(last_purchase_at) between 14 and 21"}
  marked: {rule: "days_since(last_purchase_at) in (7, 10)"}
  halves: {rule: "days_since(last_purchase_at) * 2 - 1 < 19"}
  seen: {rule: "within(last_seen_at, '5 days')"}
  browsers: {rule: "performed('Product Viewed', at_least => 2, within => '4 days')"}
  openers: {rule: "opens_10d >= 1", parent: bought_30d}
  pro_recent: {rule: "plan = 'pro' and last_seen_at > now() - interval '2 days'"}
  vip: {rule: "spend_7d >= 500", group: life, priority: 30}
  lapsed: {rule: "days_since_purchase > 60", group: life, priority: 20}
  stale: {rule: "not performed('Order Completed', within => '10 days')", group: life, priority: 10}
  other: {default: true, group: life}
  both: {rule: "in_segment('carts') and in_segment('seen')"}
  viewed: {rule: "last_performed('Product Viewed') > now() - interval '6 days'"}
"""
# windows only: no time leaf schedules the profile (and hides a missed expiry)
WINDOWS = """
name: windows
traits:
  carts_3d: {count: events, event: Cart Abandoned, within: 3d}
  big_orders_7d: {count: events, event: Order Completed, where: "total > 100", within: 7d}
  spend_7d: {sum: properties.total, event: Order Completed, within: 7d}
  opens_10d: {count: events, event: Email Opened, within: 10d}
segments:
  carts: {rule: "carts_3d >= 2"}
  big: {rule: "big_orders_7d >= 1"}
  browsers: {rule: "performed('Product Viewed', at_least => 2, within => '4 days')"}
  openers: {rule: "opens_10d >= 1", parent: browsers}
  vip: {rule: "spend_7d >= 500", group: life, priority: 30}
  stale: {rule: "not performed('Order Completed', within => '10 days')", group: life, priority: 10}
  other: {default: true, group: life}
"""
DERIVED = (
    "events", "profiles", "identities", "identity_conflicts", "profile_merges", "trait_values",
    "trait_state", "memberships", "membership_changes", "schedule",
)  # fmt: skip


@pytest.fixture
def shop(tmp_path, store, make_workspace):
    """A factory: a workspace from YAML on the backend, its intake at T and compiled segments."""
    opened = []

    def make(text: str):
        ws = make_workspace(tmp_path / f"w{len(opened)}", text, store=store)
        opened.append(ws)
        return ws, Intake(ws, FixedClock(T)), CompiledSegments(ws.definition)

    return make


def _message(user: str, event: str, at: datetime, **props) -> dict:
    return {
        "type": "track", "userId": user, "event": event, "properties": props,
        "timestamp": at.isoformat(), "messageId": f"{user}-{event}-{at.isoformat()}-{props}",
    }  # fmt: skip


def _pid(ws, user: str) -> str:
    rows = ws.store.fetchall(
        "SELECT profile_id FROM identities WHERE kind = 'user_id' AND value = ?", [user]
    )
    return rows[0][0]


def _due(ws, user: str) -> datetime | None:
    return Schedule(ws.store).get(_pid(ws, user))


def test_recency_row_is_at_the_purchase_plus_thirty_days(shop):
    ws, intake, compiled = shop(BOUGHT)
    bought = T - 10 * DAY + timedelta(seconds=7, microseconds=123)
    intake.submit([_message("u1", "Order Completed", bought)], source="test")
    refresh(ws.store, compiled, T)
    due = _due(ws, "u1")
    assert due is not None
    assert bought + 30 * DAY - MS <= due <= bought + 30 * DAY


def test_a_crossing_at_as_of_itself_is_scheduled_just_after_it(shop):
    ws, intake, compiled = shop(BOUGHT)
    intake.submit([_message("u1", "Order Completed", T - 30 * DAY)], source="test")
    refresh(ws.store, compiled, T)  # still a member: >= holds at the boundary itself
    assert T < _due(ws, "u1") <= T + US  # the rule turns false at T + 1 µs


def test_the_engine_fires_the_exit_from_the_refresh_schedule(shop):
    ws, intake, compiled = shop(BOUGHT)
    bought = T - 10 * DAY
    intake.submit([_message("u1", "Order Completed", bought)], source="test")
    refresh(ws.store, compiled, T)
    engine = RealtimeEngine(ws.store, compiled, FixedClock(T))
    assert engine.advance(T + 20 * DAY) == []  # >= still holds at purchase + 30 days
    [exit_] = engine.advance(T + 40 * DAY)
    assert (exit_.segment, exit_.change) == ("bought_30d", "exit")
    assert exit_.occurred_at == bought + 30 * DAY + US
    assert exit_.cause["source"] == "time"


def test_windowed_counts_expire_on_time(shop):
    ws, intake, compiled = shop(CARTS)
    carts = [T - 2 * DAY, T - DAY]
    intake.submit([_message("u1", "Cart Abandoned", at) for at in carts], source="test")
    refresh(ws.store, compiled, T)
    pid = _pid(ws, "u1")
    assert _due(ws, "u1") == carts[0] + 3 * DAY  # exact: the oldest event leaves the window
    engine = RealtimeEngine(ws.store, compiled, FixedClock(T))
    assert engine.advance(carts[1] + 3 * DAY - US) == []  # one cart is still inside
    [exit_] = engine.advance(T + 10 * DAY)
    assert (exit_.segment, exit_.change, exit_.occurred_at) == (
        "abandoners", "exit", carts[1] + 3 * DAY,
    )  # fmt: skip
    assert pid not in all_members(ws.store)


def test_windows_follow_their_events_and_filters(shop):
    ws, intake, compiled = shop(BIG)
    intake.submit(
        [
            _message("u1", "Order Completed", T - 100 * DAY, total=500),  # outside the window
            _message("u1", "Order Completed", T - 6 * DAY, total=50),  # filtered out
            _message("u1", "Page Viewed", T - 6 * DAY),  # another event
            _message("u1", "Order Completed", T - 5 * DAY, total=150),
        ],
        source="test",
    )
    refresh(ws.store, compiled, T)
    assert _due(ws, "u1") == T + 2 * DAY


def test_a_later_refresh_moves_changed_rows_and_drops_passed_ones(shop):
    ws, intake, compiled = shop(BOUGHT)
    intake.submit(
        [
            _message("u1", "Order Completed", T - 10 * DAY),
            _message("u2", "Order Completed", T - 5 * DAY),
        ],
        source="test",
    )
    refresh(ws.store, compiled, T)
    first = _due(ws, "u1")
    intake.submit([_message("u2", "Order Completed", T + DAY)], source="test")
    refresh(ws.store, compiled, T + DAY)
    assert _due(ws, "u1") == first
    assert T + 31 * DAY - MS <= _due(ws, "u2") <= T + 31 * DAY
    refresh(ws.store, compiled, T + 25 * DAY)  # u1 left bought_30d at T + 20 days
    assert _due(ws, "u1") is None and _due(ws, "u2") is not None


def test_profiles_with_nothing_time_dependent_have_no_row(shop):
    ws, intake, compiled = shop(BOUGHT + '  big: {rule: "last_purchase_at is not null"}\n')
    intake.submit(
        [
            _message("u1", "Page Viewed", T - DAY),  # never bought: no crossing
            _message("u2", "Order Completed", T - 40 * DAY),  # crossed before as_of
            _message("u3", "Order Completed", T - DAY),
        ],
        source="test",
    )
    ws.store.execute("INSERT INTO schedule (profile_id, due_at) VALUES ('gone', ?)", [T])
    refresh(ws.store, compiled, T)
    rows = ws.store.fetchall("SELECT profile_id FROM schedule")
    assert [r[0] for r in rows] == [_pid(ws, "u3")]  # the whole table was replaced


def test_a_workspace_without_time_has_an_empty_schedule(shop):
    ws, intake, compiled = shop('name: x\nsegments:\n  many: {rule: "event_count > 1"}\n')
    intake.submit([_message("u1", "Page Viewed", T - DAY)], source="test")
    refresh(ws.store, compiled, T)
    assert Schedule(ws.store).count() == 0


def test_a_rule_not_linear_in_time_is_rechecked_after_an_hour(shop):
    ws, intake, compiled = shop(SQUARED)
    intake.submit([_message("u1", "Order Completed", T - DAY)], source="test")
    refresh(ws.store, compiled, T)
    assert _due(ws, "u1") == T + timedelta(hours=1)


def _engine_due(ws, compiled, pid: str, at: datetime) -> datetime | None:
    """The next instant the real-time engine itself would schedule for ``pid`` at ``at``."""
    state = fold_events(ws.store, compiled.traits, [pid])[pid]
    values = compiled.traits.values(state, at)
    found = [next_transition(s.timed, values, at, schema=compiled.schema)
             for s in compiled.timed_segments]  # fmt: skip
    found.append(compiled.traits.next_expiry(state, at))
    return min((f for f in found if f is not None), default=None)


def _assert_never_later_than_the_engine(ws, compiled) -> None:
    ours = dict(ws.store.fetchall("SELECT profile_id, due_at FROM schedule"))
    for (pid,) in ws.store.fetchall("SELECT profile_id FROM profile_traits"):
        theirs = _engine_due(ws, compiled, pid, T)
        if theirs is not None:
            assert pid in ours, f"{pid}: no row, the engine would fire at {theirs}"
            assert T < from_store_time(ours[pid]) <= theirs


def test_the_refresh_schedule_is_never_after_the_engines_own(shop):
    ws, intake, compiled = shop(RICH)
    events = [
        _message("u1", "Order Completed", T - 12 * DAY, total=400),
        _message("u1", "Product Viewed", T - 3 * DAY),
        _message("u1", "Product Viewed", T - DAY),
        _message("u2", "Cart Abandoned", T - timedelta(hours=30)),
        _message("u2", "Cart Abandoned", T - timedelta(hours=2)),
        _message("u3", "Order Completed", T - 20 * DAY + timedelta(seconds=1), total=150),
    ]
    intake.submit(events, source="test")
    refresh(ws.store, compiled, T)
    assert Schedule(ws.store).count() == 3
    _assert_never_later_than_the_engine(ws, compiled)


# -- the property: refresh, then real time, agrees with batch at any later instant ----------

AGE = st.one_of(
    st.integers(0, 70).map(lambda d: d * DAY),
    st.integers(0, 70 * 86_400).map(lambda s: timedelta(seconds=s)),
)
EVENT = st.one_of(
    st.tuples(st.just("Order Completed"), st.sampled_from([0, 50, 150, 400])),
    st.tuples(st.sampled_from(["Cart Abandoned", "Email Opened", "Product Viewed"]), st.just(0)),
)
USERS = ("u0", "u1", "u2")
EDGES = [3, 4, 5, 7, 10, 14, 21, 30, 60]  # the workspace's windows and thresholds, in days
JITTER = [-US, timedelta(0), US, 2 * US, MS]


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    events=st.lists(st.tuples(st.sampled_from(USERS), EVENT, AGE), min_size=1, max_size=8),
    plans=st.lists(st.sampled_from(USERS), max_size=2),
    later=st.data(),
)
def test_refresh_then_real_time_agrees_with_batch_later(any_shop, events, plans, later):
    ws, intake, compiled = any_shop
    for table in DERIVED:  # one store for all examples: start each from nothing
        ws.store.execute(f"DELETE FROM {table}")
    messages = [
        _message(user, name, T - age, **({"total": total} if total else {}))
        for user, (name, total), age in events
    ]
    messages += [
        {"type": "identify", "userId": u, "traits": {"plan": "pro"}, "messageId": f"id-{u}",
         "timestamp": (T - DAY).isoformat()}
        for u in set(plans)
    ]  # fmt: skip
    intake.submit(messages, source="test")
    refresh(ws.store, compiled, T)
    assert reconcile(ws.store, compiled, T) == []
    _assert_never_later_than_the_engine(ws, compiled)
    # land on and next to the instants where rules flip: an event's age against an edge
    _, _, age = later.draw(st.sampled_from(events))
    edge = later.draw(st.sampled_from(EDGES)) * DAY - age + later.draw(st.sampled_from(JITTER))
    gap = later.draw(st.one_of(st.just(edge), AGE.map(lambda a: a + US)))
    t2 = T + max(gap, US)
    engine = RealtimeEngine(ws.store, compiled, FixedClock(T))
    if later.draw(st.booleans()):  # one instant per step, as the server's timer does
        while (due := engine.next_due()) is not None and due < t2:
            engine.advance(due)
    engine.advance(t2)  # or one jump over everything due
    assert reconcile(ws.store, compiled, t2) == []
    assert all(c.occurred_at <= t2 for c in read_changes(ws.store))


@pytest.fixture(params=["rich", "windows"])
def any_shop(request, shop):
    return shop({"rich": RICH, "windows": WINDOWS}[request.param])


def test_one_jump_over_an_enter_and_its_exit(shop):
    ws, intake, compiled = shop(RICH)
    intake.submit([_message("u0", "Order Completed", T)], source="test")
    refresh(ws.store, compiled, T)
    engine = RealtimeEngine(ws.store, compiled, FixedClock(T))
    engine.advance(T + 8 * DAY)  # marked: days_since = 7 exactly at T + 7 days, only then
    assert reconcile(ws.store, compiled, T + 8 * DAY) == []
