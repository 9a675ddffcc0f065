"""The real-time engine's per-profile state, and loading and saving it in bulk.

A :class:`Live` profile holds its incremental trait state, the trait values and
memberships last decided, the next instant time alone may change them, and a cache of each
time-dependent rule's next transition. It is loaded from ``trait_state``, ``memberships``
and ``schedule``; a profile without usable trait state is rebuilt from its events in the
store. (Its trait values before a change are computed from the state, not read back from
``trait_values``: see :class:`~segmint.membership.realtime.RealtimeEngine`.)
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from segmint.clock import ensure_utc
from segmint.common import batched
from segmint.membership.compiled import CompiledSegments
from segmint.store import Store, from_store_time, utcnow_naive
from segmint.store.bulk import delete_keys, upsert_rows
from segmint.traits import (
    EventBound,
    TraitState,
    drop_states,
    fold_events,
    load_states,
    save_traits,
    select_profiles,
    usable_states,
)

LOCK_CHUNK = 5000
"""Profiles locked per statement before their state is saved (PostgreSQL)."""


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
        expiry: The next instant a windowed trait of ``state`` changes (None: never), as
            computed at ``expiry_from``; only right until an event is applied
            (``expiry_from`` is then None) and while ``expiry`` is later than the instant
            asked about, so the engine computes it again only then.
        expiry_from: The instant ``expiry`` was computed at, or None when not known.
    """

    state: TraitState
    values: dict[str, Any] = field(default_factory=dict)
    members: frozenset[str] = frozenset()
    due: datetime | None = None
    transitions: dict[int, datetime | None] = field(default_factory=dict)
    fresh: bool = True
    stored_due: datetime | None = None
    expiry: datetime | None = None
    expiry_from: datetime | None = None


def load_many(
    store: Store,
    compiled: CompiledSegments,
    ids: Sequence[str],
    exclude: Iterable[str] = (),
    rebuild: Iterable[str] = (),
    until: int | EventBound | None = None,
) -> dict[str, Live]:
    """Load profiles from the store, rebuilding from events those without usable state.

    Args:
        store: The store.
        compiled: The compiled segments (and trait engine).
        ids: The profiles to load.
        exclude: Message ids of events the caller will apply itself (skipped on rebuild).
        rebuild: Profiles to rebuild from their events even if they have stored state.
        until: On rebuild, fold only the events with ``seq`` up to this one, or within
            this bound (the events the engine applied or is applying).
    """
    engine = compiled.traits
    forced = set(rebuild)
    if len(ids) == 1:  # one event's profile: one statement
        blobs, members, due = _stored_one(store, ids[0])
        states = usable_states(engine, {} if ids[0] in forced else blobs)
    else:  # a table at a time (a union of the three runs about twice as long for many)
        states = load_states(store, engine, [pid for pid in ids if pid not in forced])
        members = {pid: set() for pid in ids}
        for pid, seg in select_profiles(store, "SELECT profile_id, segment FROM memberships", ids):
            members[pid].add(seg)
        due = {
            pid: _aware(at)
            for pid, at in select_profiles(store, "SELECT profile_id, due_at FROM schedule", ids)
        }
    missing = [pid for pid in ids if pid not in states]
    states.update(fold_events(store, engine, missing, set(exclude), until))
    return {
        pid: Live(states[pid], {}, frozenset(members[pid]), due.get(pid), stored_due=due.get(pid))
        for pid in ids
    }


_STORED = (
    "SELECT 0, state, CAST(NULL AS VARCHAR), CAST(NULL AS TIMESTAMP) "
    "FROM trait_state WHERE profile_id = ? "
    "UNION ALL SELECT 1, NULL, segment, NULL FROM memberships WHERE profile_id = ? "
    "UNION ALL SELECT 2, NULL, NULL, due_at FROM schedule WHERE profile_id = ?"
)


def _stored_one(
    store: Store, pid: str
) -> tuple[dict[str, bytes], dict[str, set[str]], dict[str, datetime]]:
    """One profile's trait state, memberships and schedule entry, read in one statement.

    An event of a profile not in memory pays one query (on DuckDB ~0.85 ms against
    ~1.3 ms for three; each branch uses its profile index).
    """
    blobs: dict[str, bytes] = {}
    members: dict[str, set[str]] = {pid: set()}
    due: dict[str, datetime] = {}
    for kind, blob, segment, at in store.fetchall(_STORED, [pid, pid, pid]):
        if kind == 0:
            blobs[pid] = bytes(blob)
        elif kind == 1:
            members[pid].add(segment)
        else:
            due[pid] = _aware(at)
    return blobs, members, due


def save_states(
    store: Store,
    compiled: CompiledSegments,
    lives: Mapping[str, Live],
    as_of: datetime,
    *,
    locked: bool = False,
    unerased: bool = False,
) -> set[str]:
    """Write the trait state and values of ``lives`` through :func:`segmint.traits.save_traits`.

    A profile with no stored event left is not written: another process erased the person
    (``segmint privacy erase``) while the engine held their state unsaved, or deleted every
    event of theirs. Call inside a transaction; ``locked``: it already holds the profiles'
    locks (:func:`lock_profiles`), which are then not taken again. ``unerased``: the
    caller knows no erasure or event deletion touched the store since it last checked
    every profile it holds (DuckDB's :func:`erasure_mark` did not move): nothing is read
    (the read scans the events table, ~26 ms a save at 1M events).

    Returns:
        The profiles not written (the engine forgets them).
    """
    ids = list(lives)
    if unerased:
        kept = set(ids)
    else:
        kept = _having_events(store, ids) if locked else with_events(store, ids)
    rows = ((pid, live.state, live.values) for pid, live in lives.items() if pid in kept)
    save_traits(store, compiled.traits, rows, as_of)
    return set(lives) - kept


def with_events(store: Store, ids: Sequence[str]) -> set[str]:
    """Those of ``ids`` with stored events, read inside the caller's transaction.

    On PostgreSQL the profiles' rows are locked (shared) first; an erasure locks them
    (:func:`segmint.privacy.erase.erase`) before it deletes anything, so it commits before
    this read, or waits for the caller's commit and deletes what the caller wrote.
    """
    lock_profiles(store, ids)
    return _having_events(store, ids)


def lock_profiles(store: Store, ids: Iterable[str]) -> set[str]:
    """PostgreSQL: lock the profiles' rows (shared, in id order) until the transaction ends.

    A transaction that writes a profile's memberships, changes, schedule or trait state
    takes the locks first, so it never waits for an erasure while holding rows the erasure
    deletes, and an erasure waits for its commit (then deletes what it wrote). The lock is
    ``FOR KEY SHARE``: it holds off the erasure's ``FOR UPDATE`` and ``DELETE``, not
    intake's update of a profile merged away (``merged_into``).

    Returns:
        The profiles whose row was locked: those of ``ids`` in ``profiles`` once any
        erasure holding them committed. Empty on DuckDB, whose writers commit one at a
        time and which locks nothing.
    """
    locked: set[str] = set()
    if store.dialect != "postgres":
        return locked
    for chunk in batched(sorted(set(ids)), LOCK_CHUNK):
        locked.update(
            str(row[0])
            for row in store.fetchall(
                "SELECT profile_id FROM profiles WHERE profile_id = ANY(?) "
                "ORDER BY profile_id FOR KEY SHARE",
                [list(chunk)],
            )
        )
    return locked


def erased(store: Store, ids: Collection[str], rows: Collection[str] | None = None) -> set[str]:
    """Those of ``ids`` gone from the store: no row in ``profiles`` and no stored event.

    What ``segmint privacy erase`` leaves of a person, run by another process (or request)
    while the real-time engine held them in memory. A profile with events but no row (a
    bulk load of events alone) is not taken for erased.

    Args:
        store: The store (read inside the caller's transaction).
        ids: The profiles.
        rows: Those of ``ids`` known to have a row (:func:`lock_profiles` read them);
            read here when omitted.
    """
    if rows is None:
        sql = "SELECT profile_id FROM profiles"
        rows = {str(row[0]) for row in select_profiles(store, sql, list(ids))}
    rowless = [pid for pid in ids if pid not in rows]
    return set(rowless) - _having_events(store, rowless) if rowless else set()


def erasure_mark(store: Store) -> int:
    """A number that moves whenever an erasure may have been written to ``store``.

    On a DuckDB file held by this process, its in-memory hint
    (:meth:`~segmint.store.duckdb.DuckDBStore.erasure_hint`: no query); otherwise how
    many erasures the store has recorded (each writes one receipt; none is deleted).
    """
    hint = getattr(store, "erasure_hint", None)
    if hint is not None:
        return int(hint())
    return int(store.fetchall("SELECT count(*) FROM erasure_receipts")[0][0])


def _having_events(store: Store, ids: Sequence[str]) -> set[str]:
    sql = "SELECT DISTINCT profile_id FROM events"
    return {str(row[0]) for row in select_profiles(store, sql, ids)}


FEW_MOVES = 4
"""Up to this many moved schedule entries (one event's flush) are updated in place on DuckDB."""


def save_schedule(
    store: Store, lives: Mapping[str, Live], as_of: datetime, *, urgent: bool = False
) -> None:
    """Write the schedule entries of ``lives`` that must change, at the engine's ``as_of``.

    A stored entry is a lower bound: the table may say a profile is due earlier than it is
    (as a batch refresh's rows may), never later. A profile popped at an early entry is
    looked at again and rescheduled without a decision (see ``RealtimeEngine._due_step``).
    So an entry is written when it is new or earlier than stored; when the stored one has
    passed or the profile is due no more, the stored entry is still a lower bound and is
    written later (with ``urgent``, the engine's event path: not now, but with the trait
    state every second); a due instant that moved later while the stored one is still
    ahead is not written (most events move it later: one statement fewer per event's
    write).
    """
    moved = [(p, live) for p, live in lives.items() if _must_write(live, as_of, urgent)]
    if store.dialect == "duckdb" and len(moved) <= FEW_MOVES:
        # One statement per entry instead of a delete and an insert (about half the time of
        # an event's write, and no index entry to remove and add again at commit)
        for pid, live in moved:
            _move_due(store, pid, live.due)
            live.stored_due = live.due
        return
    due = [(p, utcnow_naive(live.due)) for p, live in moved if live.due is not None]
    upsert_rows(store, "schedule", ("profile_id", "due_at"), ("profile_id",), due)
    gone = [(p,) for p, live in moved if live.due is None]
    delete_keys(store, "schedule", ("profile_id",), gone)
    for _, live in moved:
        live.stored_due = live.due


def _must_write(live: Live, as_of: datetime, urgent: bool = False) -> bool:
    """Whether the stored entry of ``live`` must change (see :func:`save_schedule`)."""
    due, stored = live.due, live.stored_due
    if due == stored:
        return False
    if stored is None:
        return True
    if due is None:
        return not urgent
    return due < stored or (stored <= as_of and not urgent)


def _move_due(store: Store, pid: str, due: datetime | None) -> None:
    """Set (or, with None, delete) one profile's schedule entry, whatever is stored."""
    if due is None:
        store.execute("DELETE FROM schedule WHERE profile_id = ?", [pid])
        return
    at = utcnow_naive(due)
    updated = store.fetchall("UPDATE schedule SET due_at = ? WHERE profile_id = ?", [at, pid])
    if not updated or not updated[0][0]:  # no row (or one another process deleted)
        store.execute("INSERT INTO schedule (profile_id, due_at) VALUES (?, ?)", [pid, at])


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
    drop_states(store, {f[0] for f in failures})


def forget_many(store: Store, ids: Sequence[str]) -> None:
    """Delete the derived state of profiles merged away (their memberships exit separately)."""
    drop_states(store, ids, values=True)
    delete_keys(store, "schedule", ("profile_id",), [(pid,) for pid in ids])


def _aware(value: datetime) -> datetime:
    return ensure_utc(from_store_time(value) or value)
