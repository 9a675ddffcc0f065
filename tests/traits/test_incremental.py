"""The incremental engine on worked examples: windows, expiry, late events, state bytes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segmint.config.model import TraitDef
from segmint.events import Event
from segmint.traits import StaleStateError, TraitEngine, build_catalog
from segmint.traits.state import dumps, loads

DEFS = {
    "orders": {"count": "events", "event": "Order Completed"},
    "spend": {"sum": "properties.total", "event": "Order Completed"},
    "opens_1d": {"count": "events", "event": "Email Opened", "within": "1d"},
    "last_sku": {"last": "properties.sku", "event": "Order Completed"},
    "first_sku": {"first": "properties.sku", "event": "Order Completed"},
    "top_sku": {"most_frequent": "properties.sku", "event": "Order Completed"},
    "skus": {"distinct_count": "properties.sku"},
    "big": {"exists": "events", "event": "Order Completed", "where": "total >= 100"},
    "plan": {"from": "identify", "type": "string", "default": "free"},
    "spend_x2": {"expr": "spend * 2"},
}


@pytest.fixture
def engine(kit: Any) -> TraitEngine:
    return TraitEngine(build_catalog(kit.traits(DEFS)))


def track(mid: str, name: str, when: Any, **props: Any) -> Event:
    return Event(mid, "track", name, "u1", when, properties=props)


def test_values_of_a_small_history(kit: Any, engine: TraitEngine) -> None:
    t = kit.at("2024-05-01T12:00:00Z")
    state = engine.new_state()
    engine.apply_all(state, [
        track("a", "Order Completed", t, total="40.5", sku="s1"),
        track("b", "Order Completed", t + timedelta(hours=1), total=100, sku=7),
        track("c", "Order Completed", t + timedelta(hours=2), total=None, sku="s1"),
        Event("d", "identify", None, "u1", t, traits={"plan": None}),
    ])  # fmt: skip
    values = engine.values(state, t + timedelta(days=1))
    assert values["orders"] == 3
    assert values["spend"] == pytest.approx(140.5)
    assert values["spend_x2"] == pytest.approx(281.0)
    assert (values["first_sku"], values["last_sku"], values["top_sku"]) == ("s1", "s1", "s1")
    assert values["skus"] == 2  # "s1" and the integer 7 read as text "7"
    assert values["big"] is True
    assert values["plan"] == "free"  # identify sent null: the default applies
    assert values["event_count"] == 4


def test_window_expires_without_new_events(kit: Any, engine: TraitEngine) -> None:
    t = kit.at("2024-05-01T00:00:00Z")
    state = engine.apply_all(engine.new_state(), [
        track("a", "Email Opened", t), track("b", "Email Opened", t + timedelta(hours=6)),
    ])  # fmt: skip
    as_of = t + timedelta(hours=7)
    assert engine.values(state, as_of)["opens_1d"] == 2
    expiry = engine.next_expiry(state, as_of)
    assert expiry == t + timedelta(days=1)
    assert engine.values(state, expiry - timedelta(microseconds=1))["opens_1d"] == 2
    assert engine.values(state, expiry)["opens_1d"] == 1
    assert engine.next_expiry(state, expiry) == t + timedelta(days=1, hours=6)
    assert engine.values(state, t + timedelta(days=2))["opens_1d"] == 0
    assert engine.next_expiry(state, t + timedelta(days=2)) is None


def test_late_events_give_the_in_order_result(kit: Any, engine: TraitEngine) -> None:
    t = kit.at("2024-05-01T00:00:00Z")
    events = [
        track(f"m{i}", name, t + timedelta(hours=5 * i), total=i * 10, sku=f"s{i % 3}")
        for i, name in enumerate(["Order Completed", "Email Opened"] * 6)
    ]
    in_order = engine.apply_all(engine.new_state(), events)
    shuffled = engine.apply_all(engine.new_state(), events[::-1])
    as_of = t + timedelta(days=3)
    assert engine.values(in_order, as_of) == engine.values(shuffled, as_of)


def test_ties_on_timestamp_break_on_message_id(kit: Any, engine: TraitEngine) -> None:
    t = kit.at("2024-05-01T00:00:00Z")
    events = [track("m2", "Order Completed", t, sku="late"),
              track("m1", "Order Completed", t, sku="early")]  # fmt: skip
    values = engine.values(engine.apply_all(engine.new_state(), events), t)
    assert (values["first_sku"], values["last_sku"]) == ("early", "late")
    assert values["top_sku"] == "early"  # a tie in counts goes to the smallest value


def test_state_round_trips_and_stays_small(kit: Any, engine: TraitEngine) -> None:
    t = kit.at("2024-05-01T00:00:00Z")
    state = engine.apply_all(engine.new_state(), [
        track(f"m{i}", "Order Completed", t + timedelta(minutes=i), total=i, sku=f"s{i % 4}")
        for i in range(200)
    ])  # fmt: skip
    data = dumps(engine, state)
    assert len(data) < 2048
    as_of = t + timedelta(days=1)
    assert engine.values(loads(engine, data), as_of) == engine.values(state, as_of)


def test_state_of_other_definitions_is_refused(kit: Any, engine: TraitEngine) -> None:
    data = dumps(engine, engine.new_state())
    other = TraitEngine(build_catalog(kit.traits({"orders": {"count": "events"}})))
    with pytest.raises(StaleStateError, match="segmint rebuild"):
        loads(other, data)


def test_time_dependent_derived_traits_are_named(kit: Any) -> None:
    catalog = build_catalog(kit.traits({
        "last_order": {"last": "timestamp", "event": "Order Completed"},
        "idle": {"expr": "days_since(last_order)"},
        "idle_weeks": {"expr": "idle / 7"},
        "orders": {"count": "events"},
        "double": {"expr": "orders * 2"},
    }))  # fmt: skip
    assert catalog.time_dependent == {"idle", "idle_weeks"}


WINDOWED = {
    "n_1h": {"count": "events", "within": "1h"},
    "any_1d": {"exists": "events", "event": "A", "within": "1d"},
    "sum_1d": {"sum": "properties.v", "within": "1d"},
    "last_1h": {"last": "properties.v", "type": "number", "within": "1h"},
    "a_1d": {"count": "events", "event": "A", "within": "1d"},
}


@settings(max_examples=60, deadline=None)
@given(
    offsets=st.lists(st.integers(0, 3 * 86400), max_size=15),
    names=st.lists(st.sampled_from(["A", "B"]), min_size=15, max_size=15),
    probe=st.integers(0, 4 * 86400),
)
def test_next_expiry_is_when_windowed_values_change(
    offsets: list[int], names: list[str], probe: int
) -> None:
    """No windowed value changes before ``next_expiry``; with counts only, one changes then."""
    base = datetime(2024, 1, 1, tzinfo=UTC)
    events = [Event(f"m{i}", "track", names[i], "u", base + timedelta(seconds=s),
                    properties={"v": i}) for i, s in enumerate(offsets)]  # fmt: skip
    as_of = base + timedelta(seconds=max([probe, *offsets]))
    for names_kept in (list(WINDOWED), ["n_1h", "a_1d"]):
        defs = {n: TraitDef.model_validate(WINDOWED[n]) for n in names_kept}
        engine = TraitEngine(build_catalog(defs))
        state = engine.apply_all(engine.new_state(), events)
        before = engine.values(state, as_of)
        due = engine.next_expiry(state, as_of)
        if due is None:
            assert engine.values(state, as_of + timedelta(days=30)) == before
            continue
        assert due > as_of
        assert engine.values(state, due - timedelta(microseconds=1)) == before
        if names_kept == ["n_1h", "a_1d"]:  # counts: the expiry is exact
            assert engine.values(state, due) != before


LATER = {
    **WINDOWED,
    "ts_1d": {"max": "timestamp", "event": "A", "within": "1d"},
    "b_1d": {"count": "events", "event": "B", "within": "1d", "default": 5},
    "orders": {"count": "events", "event": "A"},
    "last_a": {"last": "timestamp", "event": "A"},
    "idle": {"expr": "days_since(last_a)"},
    "mix": {"expr": "orders + n_1h"},
}


@settings(max_examples=60, deadline=None)
@given(
    offsets=st.lists(st.integers(0, 3 * 86400), max_size=15),
    names=st.lists(st.sampled_from(["A", "B"]), min_size=15, max_size=15),
    first=st.integers(0, 2 * 86400),
    later=st.integers(0, 2 * 86400),
)
def test_values_later_are_the_values_read_again(
    offsets: list[int], names: list[str], first: int, later: int
) -> None:
    """Reading again only what time moves gives the values read from scratch."""
    base = datetime(2024, 1, 1, tzinfo=UTC)
    events = [Event(f"m{i}", "track", names[i], "u", base + timedelta(seconds=s),
                    properties={"v": i}) for i, s in enumerate(offsets)]  # fmt: skip
    defs = {n: TraitDef.model_validate(d) for n, d in LATER.items()}
    engine = TraitEngine(build_catalog(defs))
    state = engine.apply_all(engine.new_state(), events)
    at = base + timedelta(seconds=max([first, *offsets]))
    before = engine.values(state, at)
    for moved in (at, at + timedelta(seconds=later)):
        again = engine.values_later(state, before, moved)
        fresh = engine.values(state, moved)
        assert again == fresh
        assert list(again) == list(fresh)
