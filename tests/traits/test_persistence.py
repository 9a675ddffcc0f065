"""State and values in the store, on both backends: rebuild, restart, live updates."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from segmint.events import Event
from segmint.profiles import load_profile
from segmint.store import Store
from segmint.traits import TraitEngine, build_catalog
from segmint.traits.batch import read_values, refresh
from segmint.traits.live import LiveTraits, rebuild
from segmint.traits.state import load_state

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
    live = LiveTraits(store, engine).apply([late, new], later)
    kit.store_events(store, [*events, late, new])
    refresh(store, catalog, later)
    batch = read_values(store, catalog)
    for pid in ("u1", "u2"):
        assert kit.differences(batch[pid], live[pid]) == {}
    profile = load_profile(store, "u1", catalog.types())
    assert profile is not None
    assert profile.traits["city"] == "Oslo"
    assert profile.traits["spend_7d"] == batch["u1"]["spend_7d"]
