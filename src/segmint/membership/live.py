"""The real-time engine's per-profile state, and loading and saving it in bulk.

A :class:`Live` profile holds its incremental trait state, the trait values and
memberships last decided, the next instant time alone may change them, and a cache of each
time-dependent rule's next transition. It is loaded from ``trait_state``, ``memberships``
and ``schedule``; a profile without usable trait state is rebuilt from its events in the
store. (Its trait values before a change are computed from the state, not read back from
``trait_values``: see :class:`~segmint.membership.realtime.RealtimeEngine`.)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from segmint.clock import ensure_utc
from segmint.events import Event
from segmint.membership.compiled import CompiledSegments
from segmint.store import Store, from_store_time, utcnow_naive
from segmint.store.bulk import delete_keys, upsert_rows
from segmint.traits import StaleStateError, TraitState
from segmint.traits.live import values_json
from segmint.traits.state import dumps, loads

CHUNK = 5000
EVENT_COLUMNS = (
    'message_id, type, event, profile_id, "timestamp", properties, traits, '
    "user_id, anonymous_id, received_at, seq"
)
"""The ``events`` columns :func:`row_to_event` reads, in its order (``seq`` last)."""


@dataclass
class Live:
    """One profile as the real-time engine holds it.

    Attributes:
        state: The incremental trait state.
        values: The trait values at the last evaluation (empty until the first after loading).
        members: The segments decided at the last evaluation.
        due: When time alone may next change a membership (the schedule entry).
        transitions: Per time leaf (index into ``CompiledSegments.timers``), its next flip.
        fresh: True until the first evaluation after loading (then every unit is decided).
        stored_due: The due instant the ``schedule`` table holds for the profile.
    """

    state: TraitState
    values: dict[str, Any] = field(default_factory=dict)
    members: frozenset[str] = frozenset()
    due: datetime | None = None
    transitions: dict[int, datetime | None] = field(default_factory=dict)
    fresh: bool = True
    stored_due: datetime | None = None


def load_many(
    store: Store,
    compiled: CompiledSegments,
    ids: Sequence[str],
    exclude: Iterable[str] = (),
    rebuild: Iterable[str] = (),
    until: int | None = None,
) -> dict[str, Live]:
    """Load profiles from the store, rebuilding from events those without usable state.

    Args:
        store: The store.
        compiled: The compiled segments (and trait engine).
        ids: The profiles to load.
        exclude: Message ids of events the caller will apply itself (skipped on rebuild).
        rebuild: Profiles to rebuild from their events even if they have stored state.
        until: On rebuild, fold only the events with ``seq`` up to this one.
    """
    engine = compiled.traits
    forced = set(rebuild)
    states: dict[str, TraitState] = {}
    for pid, blob in _select(store, "SELECT profile_id, state FROM trait_state", ids):
        if pid not in forced:
            try:
                states[pid] = loads(engine, bytes(blob))
            except StaleStateError:
                continue
    missing = [pid for pid in ids if pid not in states]
    states.update(rebuild_states(store, compiled, missing, set(exclude), until))
    members: dict[str, set[str]] = {pid: set() for pid in ids}
    for pid, seg in _select(store, "SELECT profile_id, segment FROM memberships", ids):
        members[pid].add(seg)
    due = {
        pid: _aware(at)
        for pid, at in _select(store, "SELECT profile_id, due_at FROM schedule", ids)
    }
    return {
        pid: Live(states[pid], {}, frozenset(members[pid]), due.get(pid), stored_due=due.get(pid))
        for pid in ids
    }


def rebuild_states(
    store: Store,
    compiled: CompiledSegments,
    ids: Sequence[str],
    exclude: set[str],
    until: int | None = None,
) -> dict[str, TraitState]:
    """Fold each profile's stored events into a new trait state.

    Args:
        store: The store.
        compiled: The compiled segments (and trait engine).
        ids: The profiles.
        exclude: Message ids of events the caller will apply itself.
        until: Fold only events with ``seq`` up to this one (the caller applies the later
            ones itself, as the real-time engine does catching up).
    """
    engine = compiled.traits
    states = {pid: engine.new_state() for pid in ids}
    sql = f"SELECT {EVENT_COLUMNS} FROM events"
    for row in _select(store, sql, ids, order='"timestamp", seq', until=until):
        if row[0] not in exclude:
            engine.apply(states[row[3]], row_to_event(row))
    return states


def row_to_event(row: Sequence[Any]) -> Event:
    """Turn an ``events`` row (columns :data:`EVENT_COLUMNS`) into an Event."""
    mid, kind, name, pid, ts, props, traits, user, anon, received, seq = row
    return Event(
        mid, kind, name, pid, ensure_utc(ts), _json(props), _json(traits), user, anon,
        ensure_utc(received) if received is not None else None, seq,
    )  # fmt: skip


def save_states(
    store: Store, compiled: CompiledSegments, lives: Mapping[str, Live], as_of: datetime
) -> None:
    """Upsert the trait state and trait values of ``lives`` (inside a transaction)."""
    if not lives:
        return
    at = utcnow_naive(as_of)
    engine = compiled.traits
    key = ("profile_id",)
    upsert_rows(
        store, "trait_state", ("profile_id", "state", "updated_at"), key,
        [(p, dumps(engine, live.state), at) for p, live in lives.items()],
    )  # fmt: skip
    upsert_rows(
        store, "trait_values", ("profile_id", "values", "as_of"), key,
        [(p, values_json(live.values), at) for p, live in lives.items()],
    )  # fmt: skip


def save_schedule(store: Store, lives: Mapping[str, Live]) -> None:
    """Write the schedule entries of ``lives`` whose due instant changed since stored."""
    moved = [(p, live) for p, live in lives.items() if live.due != live.stored_due]
    due = [(p, utcnow_naive(live.due)) for p, live in moved if live.due is not None]
    upsert_rows(store, "schedule", ("profile_id", "due_at"), ("profile_id",), due)
    gone = [(p,) for p, live in moved if live.due is None]
    delete_keys(store, "schedule", ("profile_id",), gone)
    for _, live in moved:
        live.stored_due = live.due


def record_failures(
    store: Store, failures: Sequence[tuple[str, str | None, str]], at: datetime
) -> None:
    """Record profiles the engine set aside: ``(profile_id, message_id, error)`` rows.

    Their stored trait state is dropped too, so the next event rebuilds it from the events
    instead of trusting a state that a failed step may have left half applied.
    """
    when = utcnow_naive(at)
    store.executemany(
        "INSERT INTO realtime_failures (profile_id, message_id, failed_at, error) "
        "VALUES (?, ?, ?, ?)",
        [(pid, mid, when, error[:1000]) for pid, mid, error in failures],
    )
    delete_keys(store, "trait_state", ("profile_id",), sorted({(f[0],) for f in failures}))


def forget_many(store: Store, ids: Sequence[str]) -> None:
    """Delete the derived state of profiles merged away (their memberships exit separately)."""
    keys = [(pid,) for pid in ids]
    for table in ("trait_state", "trait_values", "schedule"):
        delete_keys(store, table, ("profile_id",), keys)


def _select(
    store: Store, sql: str, ids: Sequence[str], order: str | None = None, until: int | None = None
) -> Iterator[tuple[Any, ...]]:
    # One list parameter, not a placeholder per id: measured three times faster on DuckDB.
    # A single id is an equality, which the primary key or profile index answers.
    for chunk in _chunks(ids):
        single = len(chunk) == 1
        query = f"{sql} WHERE profile_id = ?" if single else f"{sql} WHERE profile_id = ANY(?)"
        params: list[Any] = [chunk[0] if single else chunk]
        if until is not None:
            query += " AND seq <= ?"
            params.append(until)
        if order:
            query += f" ORDER BY {order}"
        yield from store.fetchall(query, params)


def _chunks(ids: Sequence[str]) -> Iterator[list[str]]:
    items = list(ids)
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def _json(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, str | bytes):
        decoded = orjson.loads(value)
        return decoded if isinstance(decoded, dict) else {}
    return dict(value)


def _aware(value: datetime) -> datetime:
    return ensure_utc(from_store_time(value) or value)
