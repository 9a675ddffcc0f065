"""Traits against the store: events in, state out; one profile's view.

The incremental engine works on :class:`~segmint.events.Event` records; this module moves
them between the store and the engine (state itself is kept by :mod:`.state`):

- :data:`EVENT_COLUMNS` and :func:`row_to_event`: the one conversion of an ``events`` row;
- :func:`fold_events` folds profiles' stored events into fresh state (the real-time engine
  uses it for a profile without usable stored state);
- :func:`rebuild` replays every stored event into fresh per-profile state, writes
  ``trait_state`` and ``trait_values`` (``segmint rebuild``), profile range by range so
  memory stays bounded;
- :func:`profile_traits` gathers one profile's trait values at ``as_of`` for
  ``segmint profile show`` (other stages add their own keys to the returned mapping).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import nullcontext
from datetime import datetime
from typing import Any

import orjson

from segmint.clock import ensure_utc
from segmint.events import Event
from segmint.store import Store, from_store_time, write_meta
from segmint.traits.catalog import TraitCatalog
from segmint.traits.incremental import TraitEngine, TraitState
from segmint.traits.position import CommitPosition, write_position
from segmint.traits.state import (
    SEQ_KEY,
    UNSAVED_KEY,
    EventBound,
    drop_all_states,
    save_traits,
    select_profiles,
)

EVENT_COLUMNS = (
    'message_id, type, event, profile_id, "timestamp", properties, traits, '
    "user_id, anonymous_id, received_at, seq"
)
"""The ``events`` columns :func:`row_to_event` reads, in its order (``seq`` last)."""
Progress = Callable[[int, int], None]
"""Called with (profiles done, profiles in all) as a rebuild advances."""


def _json(raw: Any) -> dict[str, Any]:
    if raw is None:
        return {}
    value = orjson.loads(raw) if isinstance(raw, str | bytes) else raw
    return dict(value) if isinstance(value, dict) else {}


def _instant(value: datetime) -> datetime:
    return ensure_utc(from_store_time(value) or value)


def row_to_event(row: Sequence[Any]) -> Event:
    """Turn an ``events`` row (columns :data:`EVENT_COLUMNS`) into an Event."""
    mid, kind, name, pid, ts, props, traits, user, anon, received, seq = row
    return Event(
        mid, kind, name, pid, _instant(ts), _json(props), _json(traits), user, anon,
        _instant(received) if received is not None else None, seq,
    )  # fmt: skip


def profile_events(store: Store, profile_id: str) -> list[Event]:
    """Every stored event of one profile."""
    sql = f"SELECT {EVENT_COLUMNS} FROM events WHERE profile_id = ?"
    return [row_to_event(r) for r in store.fetchall(sql, [profile_id])]


def fold_events(
    store: Store,
    engine: TraitEngine,
    ids: Sequence[str],
    exclude: Collection[str] = (),
    until: int | EventBound | None = None,
) -> dict[str, TraitState]:
    """Fold each profile's stored events into a new trait state.

    Args:
        store: The store.
        engine: The incremental engine.
        ids: The profiles.
        exclude: Message ids of events the caller will apply itself.
        until: Fold only events with ``seq`` up to this one, or within this bound (the
            caller applies the others itself, as the real-time engine does).
    """
    states = {pid: engine.new_state() for pid in ids}
    sql = f"SELECT {EVENT_COLUMNS} FROM events"
    for row in select_profiles(store, sql, ids, order='"timestamp", seq', until=until):
        if row[0] not in exclude:
            engine.apply(states[row[3]], row_to_event(row))
    return states


def _ranges(store: Store, size: int) -> Iterator[tuple[str, str, int]]:
    ids = [r[0] for r in store.fetchall(
        "SELECT DISTINCT profile_id FROM events WHERE profile_id IS NOT NULL ORDER BY 1"
    )]  # fmt: skip
    for start in range(0, len(ids), size):
        chunk = ids[start : start + size]
        yield chunk[0], chunk[-1], len(ids)


def rebuild(
    store: Store, catalog: TraitCatalog, as_of: datetime, *, progress: Progress | None = None,
    chunk: int = 2000,
) -> int:  # fmt: skip
    """Replay all events into fresh state; write ``trait_state`` and ``trait_values``.

    Every read sees the same events, and what is saved says which, so that the next
    real-time catch-up applies exactly the others (events other processes commit
    meanwhile are neither folded twice nor skipped):

    - DuckDB commits in ``seq`` order: the events up to the newest ``seq`` when the
      rebuild starts are folded, and that ``seq`` is saved.
    - PostgreSQL does not (see :mod:`.position`): the rebuild reads and writes in one
      ``REPEATABLE READ`` transaction and saves its snapshot's commit position. An event
      whose transaction drew a lower ``seq`` and commits after the snapshot is applied
      by the next catch-up, not lost.

    Returns:
        The number of profiles rebuilt.
    """
    postgres = store.dialect == "postgres"
    with store.transaction() if postgres else nullcontext():
        position = _snapshot_position(store) if postgres else None
        seq = int(store.fetchall("SELECT coalesce(max(seq), 0) FROM events")[0][0])
        done = _replay(store, TraitEngine(catalog), as_of, progress, chunk, seq)
        with store.transaction():
            write_meta(store, SEQ_KEY, seq)
            write_meta(store, UNSAVED_KEY, "0")
            write_position(store, position)
    return done


def _replay(
    store: Store,
    engine: TraitEngine,
    as_of: datetime,
    progress: Progress | None,
    chunk: int,
    seq: int,
) -> int:
    """Fold the events up to ``seq`` into fresh state, profile range by range; save it."""
    done = 0
    drop_all_states(store)
    for low, high, total in _ranges(store, chunk):
        sql = (
            f"SELECT {EVENT_COLUMNS} FROM events "
            "WHERE profile_id >= ? AND profile_id <= ? AND seq <= ?"
        )
        states: dict[str, TraitState] = {}
        for row in store.fetchall(sql, [low, high, seq]):
            event = row_to_event(row)
            engine.apply(states.setdefault(event.profile_id, engine.new_state()), event)
        rows = ((p, s, engine.values(s, as_of)) for p, s in states.items())
        save_traits(store, engine, rows, as_of)
        done += len(states)
        if progress is not None:
            progress(done, total)
    return done


def _snapshot_position(store: Store) -> CommitPosition:
    """PostgreSQL: make the open transaction one snapshot; the events it sees, as a position.

    Call first in the transaction. Every event of a transaction below the snapshot's xmin
    is in it; of the others, those it sees (their ``seq`` listed).
    """
    store.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
    low = int(store.fetchall("SELECT pg_snapshot_xmin(pg_current_snapshot())::text")[0][0])
    seen = store.fetchall("SELECT seq FROM events WHERE xid >= ?::xid8", [str(low)])
    return CommitPosition(low, tuple(sorted(int(row[0]) for row in seen)))


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
