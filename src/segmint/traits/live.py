"""Traits against the store: reading events, rebuilding state, one profile's view.

The incremental engine works on :class:`~segmint.events.Event` records; this module moves
them between the store and the engine:

- :func:`rebuild` replays every stored event into fresh per-profile state, writes
  ``trait_state`` and ``trait_values`` (``segmint rebuild``), profile range by range so
  memory stays bounded;
- :class:`LiveTraits` is the real-time entry point: apply new events to stored state and
  persist state and values;
- :func:`profile_traits` gathers one profile's trait values at ``as_of`` for
  ``segmint profile show`` (other stages add their own keys to the returned mapping).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from segmint.common import in_lists
from segmint.events import Event
from segmint.store import Store, from_store_time, utcnow_naive, write_meta
from segmint.traits.catalog import TraitCatalog
from segmint.traits.incremental import TraitEngine, TraitState
from segmint.traits.state import SEQ_KEY, UNSAVED_KEY, load_state, save_states

_COLUMNS = "message_id, type, event, profile_id, timestamp, properties, traits"
Progress = Callable[[int, int], None]
"""Called with (profiles done, profiles in all) as a rebuild advances."""


def _json(raw: Any) -> dict[str, Any]:
    if raw is None:
        return {}
    value = orjson.loads(raw) if isinstance(raw, str | bytes) else raw
    return value if isinstance(value, dict) else {}


def to_event(row: tuple[Any, ...]) -> Event:
    """An :class:`Event` from a row of the events columns the engine reads."""
    mid, kind, name, pid, ts, props, traits = row
    stamp = from_store_time(ts)
    assert stamp is not None  # noqa: S101 (timestamp is NOT NULL)
    return Event(mid, kind, name, pid, stamp, properties=_json(props), traits=_json(traits))


def profile_events(store: Store, profile_id: str) -> list[Event]:
    """Every stored event of one profile."""
    sql = f"SELECT {_COLUMNS} FROM events WHERE profile_id = ?"
    return [to_event(r) for r in store.fetchall(sql, [profile_id])]


def _ranges(store: Store, size: int) -> Iterator[tuple[str, str, int]]:
    ids = [r[0] for r in store.fetchall(
        "SELECT DISTINCT profile_id FROM events WHERE profile_id IS NOT NULL ORDER BY 1"
    )]  # fmt: skip
    for start in range(0, len(ids), size):
        chunk = ids[start : start + size]
        yield chunk[0], chunk[-1], len(ids)


def values_json(values: dict[str, Any]) -> str:
    """Trait values as the JSON object stored in ``trait_values`` (ISO ``Z`` timestamps)."""

    def default(value: Any) -> Any:
        if isinstance(value, datetime):
            return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        raise TypeError(type(value).__name__)

    return orjson.dumps(values, default=default, option=orjson.OPT_PASSTHROUGH_DATETIME).decode()


def write_values(store: Store, rows: Iterable[tuple[str, dict[str, Any]]], as_of: datetime) -> None:
    """Upsert trait values of several profiles into ``trait_values``."""
    data = [(pid, values_json(v), utcnow_naive(as_of)) for pid, v in rows]
    if not data:
        return
    with store.transaction():
        for marks, chunk in in_lists(data):
            store.execute(
                f"DELETE FROM trait_values WHERE profile_id IN ({marks})", [r[0] for r in chunk]
            )
        store.executemany(
            'INSERT INTO trait_values (profile_id, "values", as_of) VALUES (?, ?, ?)', data
        )


def rebuild(
    store: Store, catalog: TraitCatalog, as_of: datetime, *, progress: Progress | None = None,
    chunk: int = 2000,
) -> int:  # fmt: skip
    """Replay all events into fresh state; write ``trait_state`` and ``trait_values``.

    Returns:
        The number of profiles rebuilt.
    """
    engine = TraitEngine(catalog)
    done = 0
    seq = store.fetchall("SELECT coalesce(max(seq), 0) FROM events")[0][0]
    store.execute("DELETE FROM trait_state")
    for low, high, total in _ranges(store, chunk):
        sql = f"SELECT {_COLUMNS} FROM events WHERE profile_id >= ? AND profile_id <= ?"
        states: dict[str, TraitState] = {}
        for row in store.fetchall(sql, [low, high]):
            event = to_event(row)
            engine.apply(states.setdefault(event.profile_id, engine.new_state()), event)
        save_states(store, engine, states.items(), as_of)
        write_values(store, ((p, engine.values(s, as_of)) for p, s in states.items()), as_of)
        done += len(states)
        if progress is not None:
            progress(done, total)
    with store.transaction():
        write_meta(store, SEQ_KEY, seq)
        write_meta(store, UNSAVED_KEY, "0")
    return done


@dataclass
class LiveTraits:
    """Real-time traits: apply events to stored state and persist state and values.

    Attributes:
        store: Where state and values live.
        engine: The incremental engine of the workspace's catalog.
    """

    store: Store
    engine: TraitEngine

    def state(self, profile_id: str) -> TraitState:
        """The stored state of a profile (fresh when none)."""
        return load_state(self.store, self.engine, profile_id) or self.engine.new_state()

    def apply(self, events: Iterable[Event], as_of: datetime) -> dict[str, dict[str, Any]]:
        """Apply events, persist the changed profiles, and return their values at ``as_of``."""
        states: dict[str, TraitState] = {}
        for event in events:
            state = states.get(event.profile_id) or self.state(event.profile_id)
            states[event.profile_id] = state
            self.engine.apply(state, event)
        values = {pid: self.engine.values(s, as_of) for pid, s in states.items()}
        save_states(self.store, self.engine, states.items(), as_of)
        write_values(self.store, values.items(), as_of)
        return values


def profile_traits(
    store: Store, catalog: TraitCatalog, profile_id: str, as_of: datetime
) -> dict[str, Any] | None:
    """One profile's traits at ``as_of``, computed from its events (None if unknown).

    Returns:
        ``{"profile_id", "as_of", "events", "traits": [{name, kind, type, pii, value}]}``.
    """
    events = profile_events(store, profile_id)
    if not events and not store.fetchall(
        "SELECT 1 FROM profiles WHERE profile_id = ?", [profile_id]
    ):
        return None
    engine = TraitEngine(catalog)
    values = engine.values(engine.apply_all(engine.new_state(), events), as_of)
    rows = [
        {"name": s.name, "kind": s.kind, "type": s.type, "pii": s.pii, "value": values[s.name]}
        for s in catalog
        if s.kind != "implicit"
    ]
    return {"profile_id": profile_id, "as_of": as_of, "events": len(events), "traits": rows}
