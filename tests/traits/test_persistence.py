"""State and values in the store, on both backends: rebuild, restart, live updates.

The live part goes through the functions the real-time engine uses (``load_states``,
``fold_events``, ``save_traits``), not a copy of them.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from segmint.events import Event
from segmint.profiles import load_profile
from segmint.store import Store
from segmint.traits import (
    TraitEngine,
    build_catalog,
    drop_states,
    fold_events,
    load_state,
    load_states,
    rebuild,
    save_traits,
)
from segmint.traits.batch import read_values, refresh

DEFS = {
    "orders": {"count": "events", "event": "Order Completed"},
    "spend_7d": {"sum": "properties.total", "event": "Order Completed", "within": "7d"},
    "last_order_at": {"last": "timestamp", "event": "Order Completed"},
    "city": {"from": "identify", "type": "string", "default": "?"},
}


def history(kit: Any) -> list[Event]:
    t = kit.at("2024-04-01T00:00:00Z")
    return [
        Event(f"o{i}", "track", "Order Completed", f"u{i % 3}", t + timedelta(days=i),
              properties={"total": 10 * i})
        for i in range(9)
    ] + [Event("i1", "identify", None, "u1", t, traits={"city": "Oslo"})]  # fmt: skip


def test_rebuild_then_live_updates_match_batch(store: Store, kit: Any) -> None:
    catalog = build_catalog(kit.traits(DEFS))
    engine = TraitEngine(catalog)
    events = history(kit)
    kit.store_events(store, events)
    as_of = kit.at("2024-04-10T00:00:00Z")
    seen: list[tuple[int, int]] = []
    assert rebuild(store, catalog, as_of, progress=lambda d, t: seen.append((d, t)), chunk=2) == 3
    assert seen[-1] == (3, 3)

    # a restart: a new engine reads the stored state back
    restarted = TraitEngine(build_catalog(kit.traits(DEFS)))
    state = load_state(store, restarted, "u1")
    assert state is not None
    refresh(store, catalog, as_of)
    assert kit.differences(read_values(store, catalog)["u1"], restarted.values(state, as_of)) == {}

    # live: two new events (one late) update state and values like a batch refresh would
    late = Event("late", "track", "Order Completed", "u1", kit.at("2024-04-08T12:00:00Z"),
                 properties={"total": "5.5"})  # fmt: skip
    new = Event("new", "track", "Order Completed", "u2", kit.at("2024-04-11T00:00:00Z"),
                properties={"total": 1})  # fmt: skip
    later = kit.at("2024-04-12T00:00:00Z")
    states = load_states(store, engine, ["u1", "u2"])
    for event in (late, new):
        engine.apply(states[event.profile_id], event)
    live = {pid: engine.values(state, later) for pid, state in states.items()}
    assert save_traits(store, engine, ((p, s, live[p]) for p, s in states.items()), later) == 2
    kit.store_events(store, [*events, late, new])
    refresh(store, catalog, later)
    batch = read_values(store, catalog)
    for pid in ("u1", "u2"):
        assert kit.differences(batch[pid], live[pid]) == {}
    profile = load_profile(store, "u1", catalog.types())
    assert profile is not None
    assert profile.traits["city"] == "Oslo"
    assert profile.traits["spend_7d"] == batch["u1"]["spend_7d"]


def test_saved_state_reads_back_and_a_dropped_one_is_folded_from_events(
    store: Store, kit: Any
) -> None:
    catalog = build_catalog(kit.traits(DEFS))
    engine = TraitEngine(catalog)
    events = history(kit)
    kit.store_events(store, events)
    as_of = kit.at("2024-04-10T00:00:00Z")
    folded = fold_events(store, engine, ["u0", "u1", "u2", "nobody"])
    assert folded["nobody"].empty
    expected = {pid: engine.values(s, as_of) for pid, s in folded.items()}
    save_traits(store, engine, ((p, s, expected[p]) for p, s in folded.items()), as_of)
    save_traits(store, engine, ((p, s, expected[p]) for p, s in folded.items()), as_of)  # upsert
    assert store.fetchall("SELECT count(*) FROM trait_values")[0][0] == 4
    again = load_states(store, TraitEngine(catalog), ["u0", "u1", "u2"])
    assert {p: engine.values(s, as_of) for p, s in again.items()} == {
        p: v for p, v in expected.items() if p != "nobody"
    }
    drop_states(store, ["u1"])
    assert set(load_states(store, engine, ["u0", "u1"])) == {"u0"}
    assert load_profile(store, "u1") is not None  # values stay unless asked
    drop_states(store, ["u1"], values=True)
    assert store.fetchall("SELECT count(*) FROM trait_values WHERE profile_id = 'u1'") == [(0,)]
    # a late event folds in like an in-order one: the same values as from scratch
    late = fold_events(store, engine, ["u1"], exclude={"o4"})["u1"]
    engine.apply(late, events[4])
    assert engine.values(late, as_of) == expected["u1"]
