"""The vectorised membership pass: it decides exactly what the rules' closures decide."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segmint.clock import FixedClock
from segmint.events import Event
from segmint.intake.pipeline import Intake
from segmint.membership.batch import reconcile
from segmint.membership.compiled import CompiledSegments
from segmint.membership.realtime import RealtimeEngine
from segmint.membership.vector import batch_decider

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DERIVED = (
    "events", "profiles", "identities", "identity_conflicts", "profile_merges", "trait_values",
    "trait_state", "memberships", "membership_changes", "schedule",
)  # fmt: skip
KINDS = st.sampled_from(["Order Completed", "Email Opened", "Product Viewed"])
TOTALS = st.sampled_from([None, 0, 150, 400, 650, 1000, 1800])
SECONDS = st.integers(-90 * 86400, 0)
PROFILE = st.tuples(
    st.lists(st.tuples(KINDS, TOTALS, SECONDS), max_size=6),
    st.integers(0, 120 * 86400),  # how long after T0 the profile is decided
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(profiles=st.lists(PROFILE, min_size=1, max_size=12))
def test_one_pass_decides_what_the_closures_decide(profiles, make_workspace, tmp_path):
    ws = make_workspace(tmp_path)
    try:
        compiled = CompiledSegments(ws.definition)
        decider = batch_decider(compiled)
        assert decider is not None
        engine = compiled.traits
        rows, expected = [], {}
        for n, (events, later) in enumerate(profiles):
            state = engine.new_state()
            for i, (name, total, ago) in enumerate(events):
                props = {} if total is None else {"total": total}
                at = T0 + timedelta(seconds=ago)
                engine.apply(state, Event(f"m{n}-{i}", "track", name, f"p{n}", at, props))
            as_of = T0 + timedelta(seconds=later)  # each profile at its own instant
            values = engine.values(state, as_of)
            rows.append((f"p{n}", values, as_of))
            every = {u.index for u in compiled.plan.units}
            expected[f"p{n}"] = compiled.members(values, as_of, frozenset(), every)
        assert decider.decide(rows) == expected
        # the prepared statement reads each pass's own batch, whatever came before
        assert decider.decide(rows[1:]) == {r[0]: expected[r[0]] for r in rows[1:]}
        assert decider.decide(rows[:1]) == {rows[0][0]: expected[rows[0][0]]}
    finally:
        ws.close()


@pytest.fixture
def vector_ws(tmp_path, make_workspace, store):
    ws = make_workspace(tmp_path, store=store)
    yield ws
    ws.close()


GAPS = st.one_of(
    st.sampled_from([timedelta(0), timedelta(days=30), timedelta(days=7)]),
    st.integers(0, 45 * 86400).map(lambda s: timedelta(seconds=s)),
)
STEP = st.tuples(
    GAPS,
    st.lists(
        st.tuples(st.sampled_from(("u0", "u1", "u2")), KINDS, TOTALS, st.integers(0, 86400)),
        max_size=4,
    ),
)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=st.lists(STEP, min_size=1, max_size=6))
def test_engine_deciding_in_one_pass_agrees_with_batch(steps, vector_ws, track):
    """The reconciliation property with every step decided by the vectorised pass."""
    ws = vector_ws
    for table in DERIVED:
        ws.store.execute(f"DELETE FROM {table}")
    clock = FixedClock(T0)
    intake = Intake(ws, clock)
    compiled = CompiledSegments(ws.definition)
    engine = RealtimeEngine(ws.store, compiled, clock, batch_minimum=0)
    intake.add_listener(engine)
    now = T0
    for gap, events in steps:
        now += gap
        clock.set(now)
        engine.advance(now)
        messages = [
            track(user, name, now - timedelta(seconds=late), **({} if t is None else {"total": t}))
            for user, name, t, late in events
        ]
        if messages:
            intake.submit(messages, source="test")
        assert reconcile(ws.store, compiled, now) == []
    now += timedelta(days=95)
    clock.set(now)
    engine.advance(now)
    assert reconcile(ws.store, compiled, now) == []


def test_more_segments_than_one_mask_holds():
    """Seventy segments span two result masks; a NULL comparison is no membership."""
    from segmint.config.model import WorkspaceDef

    segments = {f"s{i:02d}": {"rule": f"orders >= {i}"} for i in range(70)}
    segments["spender"] = {"rule": "spend >= 0"}
    compiled = CompiledSegments(WorkspaceDef.model_validate({
        "name": "wide", "segments": segments,
        "traits": {"orders": {"count": "events"}, "spend": {"sum": "properties.total"}},
    }))  # fmt: skip
    decider = batch_decider(compiled)
    assert decider is not None
    engine = compiled.traits
    rows = []
    for n in (0, 1, 61, 62, 63, 69, 75):
        state = engine.new_state()
        for i in range(n):
            engine.apply(state, Event(f"m{n}-{i}", "track", "Order", f"p{n}", T0, {}))
        rows.append((f"p{n}", engine.values(state, T0), T0))
    found = decider.decide(rows)
    for n in (0, 1, 61, 62, 63, 69, 75):
        assert found[f"p{n}"] == {f"s{i:02d}" for i in range(min(n, 69) + 1)}
