"""The batch refresh rewrites ``trait_values`` in place; it must end as a full rewrite would.

:func:`segmint.traits.batch.refresh` updates the rows of profiles still there, deletes the
rows of profiles gone and inserts new ones, instead of emptying the table and filling it
again. Whatever the table held before (an earlier refresh over other events and at another
instant, rows the real-time engine wrote, rows of profiles without events), the result
must equal the rewrite of an empty table: the same rows, JSON text and ``as_of``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segmint.events import Event
from segmint.store import Store, utcnow_naive
from segmint.traits import build_catalog
from segmint.traits.batch import refresh

BASE = "2024-03-01T00:00:00Z"
PROFILES = ("u1", "u2", "u3", "u4")
DEFINITIONS = {
    "name": {"from": "identify", "type": "string"},
    "orders": {"count": "events", "event": "A"},
    "total": {"sum": "properties.p", "event": "A"},
    "recent": {"count": "events", "event": "B", "within": "1d"},
    "last_a": {"last": "timestamp", "event": "A"},
    "idle_days": {"expr": "days_since(last_seen_at)"},
}


@st.composite
def streams(draw: st.DrawFn, kit: Any) -> list[Event]:
    base, events = kit.at(BASE), []
    for i in range(draw(st.integers(0, 12))):
        kind = draw(st.sampled_from(["track", "track", "identify"]))
        ts = base + timedelta(seconds=draw(st.integers(0, 3 * 86400)))
        props = {"p": draw(st.one_of(st.integers(-5, 50), st.just("x")))}
        events.append(
            Event(f"m{i:03d}", kind, draw(st.sampled_from(["A", "B"])) if kind == "track" else None,
                  draw(st.sampled_from(PROFILES)), ts,
                  properties=props if kind == "track" else {},
                  traits={"name": f"n{i}"} if kind == "identify" else {})
        )  # fmt: skip
    return events


# rows written outside the refresh: stale values, a profile without events, odd JSON
STRAYS = st.lists(
    st.tuples(
        st.sampled_from([*PROFILES, "ghost"]),
        st.sampled_from(['{"orders": 99}', "{}", '{"name": "old", "idle_days": null}']),
    ),
    unique_by=lambda row: row[0],
    max_size=4,
)


def stored(store: Store) -> list[tuple[Any, ...]]:
    rows = store.fetchall('SELECT profile_id, CAST("values" AS TEXT), as_of FROM trait_values')
    return sorted((pid, orjson.loads(raw), as_of) for pid, raw, as_of in rows)


@pytest.mark.parametrize(
    "backend", ["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)]
)
@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data(), strays=STRAYS, hours=st.lists(st.integers(0, 96), min_size=1, max_size=3))
def test_rewrite_in_place_equals_full_rewrite(
    request: pytest.FixtureRequest, kit: Any, backend: str, data: st.DataObject,
    strays: list[tuple[str, str]], hours: list[int],
) -> None:  # fmt: skip
    store = request.getfixturevalue("duck_store" if backend == "duckdb" else "pg_store")
    catalog = build_catalog(kit.traits(DEFINITIONS))
    store.execute("DELETE FROM trait_values")
    for hour in hours:  # earlier refreshes, over other events, at other instants
        kit.store_events(store, data.draw(streams(kit)))
        refresh(store, catalog, kit.at(BASE) + timedelta(hours=hour))
    for pid, raw in strays:
        store.execute("DELETE FROM trait_values WHERE profile_id = ?", [pid])
        store.execute(
            'INSERT INTO trait_values (profile_id, "values", as_of) VALUES (?, ?, ?)',
            [pid, raw, utcnow_naive(kit.at(BASE))],
        )
    kit.store_events(store, data.draw(streams(kit)))
    as_of = kit.at(BASE) + timedelta(hours=data.draw(st.integers(0, 96)))
    refresh(store, catalog, as_of)
    in_place = stored(store)
    store.execute("DELETE FROM trait_values")
    refresh(store, catalog, as_of)
    assert in_place == stored(store)
    with_events = {
        r[0]
        for r in store.fetchall(
            "SELECT DISTINCT profile_id FROM events WHERE timestamp <= ?", [utcnow_naive(as_of)]
        )
    }
    assert {row[0] for row in in_place} == with_events
