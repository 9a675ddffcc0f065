"""Real time and batch must agree: random event streams with random gaps of time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segmint.membership.batch import reconcile

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
USERS = ("u0", "u1", "u2")
DERIVED = (
    "events", "profiles", "identities", "identity_conflicts", "profile_merges", "trait_values",
    "trait_state", "memberships", "membership_changes", "schedule",
)  # fmt: skip
# gaps that land on and next to the rules' boundaries (30 days, 7 days, 60 days)
BOUNDARIES = [timedelta(0), timedelta(days=30), timedelta(days=7), timedelta(microseconds=1)]
GAPS = st.one_of(
    st.sampled_from(BOUNDARIES),
    st.integers(0, 45 * 86400).map(lambda s: timedelta(seconds=s)),
)
EVENT = st.one_of(
    st.tuples(st.just("Order Completed"), st.sampled_from([0, 150, 400, 650, 1000, 1800])),
    st.tuples(st.just("Email Opened"), st.just(0)),
    st.tuples(st.just("Product Viewed"), st.just(0)),
)
LATE = st.integers(0, 10 * 86400)  # how late an event arrives, in seconds
STEP = st.tuples(GAPS, st.lists(st.tuples(st.sampled_from(USERS), EVENT, LATE), max_size=3))


@pytest.fixture
def memory_ws(tmp_path, make_workspace, shop_yaml):
    ws = make_workspace(tmp_path, 'store: "duckdb::memory:"\n' + shop_yaml)
    yield ws
    ws.close()


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=st.lists(STEP, min_size=1, max_size=7))
def test_real_time_agrees_with_batch_at_every_checkpoint(steps, memory_ws, make_rig, track):
    ws = memory_ws
    for table in DERIVED:  # one store for all examples: start each from nothing
        ws.store.execute(f"DELETE FROM {table}")
    rig = make_rig(ws)
    now = T0
    for index, (gap, events) in enumerate(steps):
        now += gap
        rig.at(now)
        messages = [
            track(user, name, now - timedelta(seconds=late), total=total)
            for user, (name, total), late in events
        ]
        if messages:
            rig.send(*messages)
        if index in (len(steps) // 2, len(steps) - 1):
            assert reconcile(ws.store, rig.compiled, now) == []
    # and once more after a long quiet time: only scheduled transitions move
    now += timedelta(days=95)
    rig.at(now)
    assert reconcile(ws.store, rig.compiled, now) == []
