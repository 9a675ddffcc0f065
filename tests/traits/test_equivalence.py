"""The proof: incremental values equal the batch SQL result, on DuckDB and on PostgreSQL.

hypothesis generates trait definitions (every aggregate, filters, windows, declared types)
and event streams (several profiles, late and out-of-order arrival, timestamp ties, NULL
and missing properties, numbers sent as strings, booleans, objects). The events are stored
and the batch query runs at random ``as_of`` instants at or after the last event; the
incremental engine folds the same events in a shuffled order (and through a serialisation
round trip) and must give the same value for every trait of every profile. Floats agree
within ``FLOAT_TOLERANCE`` (rel 1e-9): summation order differs between the two paths.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segmint.events import Event
from segmint.traits import TraitEngine, build_catalog
from segmint.traits.batch import read_values, refresh
from segmint.traits.state import dumps, loads

BASE = "2024-03-01T00:00:00Z"
NUMBERS = st.one_of(
    st.integers(-1000, 1000),
    st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
    st.sampled_from(["12", "1.5", "-3", "abc", "", "true", "1e3", ".5", "7.", "+4", " 5"]),
)
SCALARS = st.one_of(
    st.none(),
    NUMBERS,
    st.booleans(),
    st.sampled_from(["x", "y", "Z", "ä", "x y", "TRUE", "False"]),
    st.just({"a": 1}),
    st.just([1, "x"]),
    st.sampled_from(["2024-03-01T10:00:00Z", "2024-02-28T01:02:03.456789", "yesterday"]),
)
PROPERTY_NAMES = ("p", "q", "b", "r", "o")
VALUES = st.one_of(SCALARS, st.fixed_dictionaries({"k": SCALARS}), st.lists(SCALARS, max_size=2))


@st.composite
def properties(draw: st.DrawFn) -> dict[str, Any]:
    names = draw(st.lists(st.sampled_from(PROPERTY_NAMES), unique=True, max_size=5))
    return {n: draw(VALUES) for n in names}


@st.composite
def streams(draw: st.DrawFn, kit: Any) -> list[Event]:
    count = draw(st.integers(0, 25))
    base = kit.at(BASE)
    ids = draw(st.permutations(range(count)))
    events = []
    for i in range(count):
        seconds = draw(st.one_of(st.sampled_from([0, 3600, 86400]), st.integers(0, 3 * 86400)))
        micros = draw(st.sampled_from([0, 1, 999_999]))
        kind = draw(st.sampled_from(["track", "track", "track", "identify"]))
        ts = base + timedelta(seconds=seconds, microseconds=micros)
        props = draw(properties())
        name = draw(st.sampled_from(["A", "B", "C"])) if kind == "track" else None
        events.append(
            Event(f"m{ids[i]:03d}", kind, name, draw(st.sampled_from(["u1", "u2", "u3"])), ts,
                  properties=props if kind == "track" else {},
                  traits=props if kind == "identify" else {})
        )  # fmt: skip
    return events


TARGETS: dict[str, list[tuple[str, str | None]]] = {
    "count": [("events", None)],
    "exists": [("events", None)],
    "sum": [("properties.p", None), ("properties.o.k", None)],
    "avg": [("properties.p", None)],
    "min": [("timestamp", None), ("properties.p", None), ("properties.r", "timestamp")],
    "max": [("timestamp", None), ("properties.p", "number"), ("properties.r", "timestamp")],
    "first": [("timestamp", None), ("properties.p", "number"), ("properties.q", "string"),
              ("properties.b", "boolean"), ("properties.r", "timestamp")],
    "last": [("timestamp", None), ("properties.q", None), ("properties.p", "number"),
             ("properties.b", "boolean"), ("properties.o.k", "timestamp")],
    "distinct_count": [("properties.q", None), ("properties.p", None), ("properties.o.k", None)],
    "most_frequent": [("properties.q", None), ("properties.p", None), ("properties.o.k", None)],
}  # fmt: skip
FILTERS = [None, "p > 5", "q = 'x'", "p is null", "b", "q in ('x', 'y') or p < 0", "not b"]


@st.composite
def definitions(draw: st.DrawFn) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {
        # identify events carry the same keys as track properties: p, q, b, r, o
        "q": {"from": "identify", "type": "string"},
        "p": {"from": "identify", "type": "number", "default": 0},
        "b": {"from": "identify", "type": "boolean"},
        "r": {"from": "identify", "type": "timestamp"},
        "o": {"from": "identify", "type": "list"},
        "twice": {"expr": "event_count * 2"},
        "idle_days": {"expr": "days_since(last_seen_at)"},
    }
    for i in range(draw(st.integers(1, 8))):
        func = draw(st.sampled_from(sorted(TARGETS)))
        target, kind = draw(st.sampled_from(TARGETS[func]))
        body: dict[str, Any] = {func: target}
        if kind is not None:
            body["type"] = kind
        event = draw(st.sampled_from(["A", "B", None]))
        if event is not None:
            body["event"] = event
        where = draw(st.sampled_from(FILTERS))
        if where is not None:
            body["where"] = where
        within = draw(st.sampled_from([None, "1h", "2d"]))
        if within is not None:
            body["within"] = within
        out[f"t{i}"] = body
    return out


def check_equal(store: Any, kit: Any, defs: dict[str, Any], events: list[Event],
                order: list[int], offsets: list[int]) -> None:  # fmt: skip
    catalog = build_catalog(kit.traits(defs))
    engine = TraitEngine(catalog)
    kit.store_events(store, events)
    states: dict[str, Any] = {}
    for i in order:  # arrival order: shuffled, so many events are late
        event = events[i]
        engine.apply(states.setdefault(event.profile_id, engine.new_state()), event)
    states = {pid: loads(engine, dumps(engine, s)) for pid, s in states.items()}
    last = max((e.timestamp for e in events), default=kit.at(BASE))
    for offset in offsets:
        as_of = last + timedelta(seconds=offset)
        refresh(store, catalog, as_of)
        batch = read_values(store, catalog)
        assert sorted(batch) == sorted(states)
        for pid, state in states.items():
            diff = kit.differences(batch[pid], engine.values(state, as_of))
            assert not diff, (pid, as_of, diff)


OFFSETS = st.lists(
    st.one_of(st.sampled_from([0, 1, 3599, 3600, 86400, 2 * 86400]), st.integers(0, 4 * 86400)),
    min_size=1,
    max_size=2,
)


@pytest.mark.parametrize(
    "backend", ["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)]
)
@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data(), defs=definitions(), offsets=OFFSETS)
def test_incremental_equals_batch(
    request: pytest.FixtureRequest, kit: Any, backend: str, data: st.DataObject,
    defs: dict[str, Any], offsets: list[int],
) -> None:  # fmt: skip
    store = request.getfixturevalue("duck_store" if backend == "duckdb" else "pg_store")
    events = data.draw(streams(kit))
    in_time = sorted(range(len(events)), key=lambda i: events[i].timestamp)
    order = data.draw(st.one_of(st.just(in_time), st.permutations(range(len(events)))))
    check_equal(store, kit, defs, events, list(order), offsets)
