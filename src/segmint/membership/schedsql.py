"""The batch refresh's ``schedule``: when time alone may next change each profile, in SQL.

The real-time engine fires a profile at its ``schedule.due_at``, re-evaluates every segment
at that instant and computes the exact next one. A row that is early costs one evaluation
that changes nothing; a row that is late or missing is a transition never fired. So after a
refresh at ``as_of``, :func:`write_schedule` replaces the table with, per profile, an instant
after ``as_of`` no later than the first at which time alone could change a membership:

- **Time leaves.** Every distinct time leaf of the segments' rules (derived traits inlined),
  solved over ``profile_traits`` by the rule language's
  :func:`segmint.rules.next_transition_query` (the SQL counterpart of
  :func:`segmint.rules.next_transition`; early by at most ``MARGIN_US``).
- **Windows.** A windowed aggregate changes when the oldest event inside its window leaves
  it: ``min(timestamp in (as_of - within, as_of]) + within``, per trait, with its event and
  ``where`` filter (events without the aggregated value count too: earlier, never later than
  :meth:`TraitEngine.next_expiry`). Only the events inside the widest window are read.

Both are one query over ``profile_traits`` and ``events`` (:func:`schedule_query`); no Python
runs per profile. A leaf that cannot be solved makes the row early, never late. The rows go
in with ``INSERT … SELECT`` in profile order (straight from the query into an empty table).

Computing the window minima in the trait pass instead (as further columns of
``profile_traits``) was measured and rejected: seven more ``MIN`` aggregates in that one
``GROUP BY`` over every event cost as much as this second pass over the widest window's
events (0.5 s each at 300k profiles / 3M events).
"""

from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime, timedelta

from sqlglot import exp

from segmint.membership.compiled import CompiledSegments
from segmint.membership.segsql import TRAITS_TABLE, quoted, segment_col
from segmint.rules import TIMESTAMP_TARGET, add_micros, least, next_transition_query
from segmint.store import Store
from segmint.traits.catalog import TraitCatalog
from segmint.traits.model import TraitSpec
from segmint.traits.sqlgen import trait_query


def write_schedule(store: Store, compiled: CompiledSegments, as_of: datetime) -> None:
    """Replace ``schedule`` with every profile's next possible time transition after ``as_of``.

    Reads ``profile_traits`` as :func:`segmint.traits.batch.refresh` left it at ``as_of`` and
    the ``events``; call it inside the refresh transaction. Rows that stay the same are not
    rewritten (each written row costs its primary key index more than computing it). Rows
    are inserted in profile order: DuckDB fills the primary key index at commit, and for
    keys in order that costs 0.9 s instead of 1.6 s at 1M profiles (sort included).
    """
    query = schedule_query(compiled, store.dialect, as_of)
    if query is None:
        store.execute("DELETE FROM schedule")
        return
    sql = query.sql(dialect=store.dialect)
    if not store.fetchall("SELECT 1 FROM schedule LIMIT 1"):  # a first refresh: no diff
        store.execute(f"INSERT INTO schedule (profile_id, due_at) SELECT * FROM ({sql}) n {_ORDER}")
        return
    staged = f"_segmint_schedule_{uuid.uuid4().hex[:10]}"
    store.execute(f"CREATE TEMP TABLE {staged} AS {sql}")
    try:
        store.execute(_STALE.format(staged=staged))
        store.execute(_NEW.format(staged=staged))
    finally:
        store.execute(f"DROP TABLE {staged}")


_STALE = (
    "DELETE FROM schedule WHERE NOT EXISTS (SELECT 1 FROM {staged} n "
    "WHERE n.profile_id = schedule.profile_id AND n.due_at = schedule.due_at)"
)
_ORDER = "ORDER BY n.profile_id"
_NEW = (
    "INSERT INTO schedule (profile_id, due_at) SELECT n.profile_id, n.due_at FROM {staged} n "
    "WHERE NOT EXISTS (SELECT 1 FROM schedule s WHERE s.profile_id = n.profile_id) " + _ORDER
)


def schedule_query(compiled: CompiledSegments, dialect: str, as_of: datetime) -> exp.Select | None:
    """``SELECT profile_id, due_at`` for every profile time alone may change (None: nobody)."""
    parts = [
        q for q in (_leaf_dues(compiled, dialect, as_of), _window_dues(compiled, dialect, as_of))
        if q is not None
    ]  # fmt: skip
    if not parts:
        return None
    source = parts[0] if len(parts) == 1 else exp.union(*parts, distinct=False)
    due = exp.alias_(exp.Min(this=exp.column("due")), "due_at")
    return (
        exp.select(exp.column("profile_id"), due)
        .from_(source.subquery("d"))
        .group_by(exp.column("profile_id"))
    )


def _leaf_dues(compiled: CompiledSegments, dialect: str, as_of: datetime) -> exp.Select | None:
    leaves = [timer.leaf for timer in compiled.timers]  # every distinct time leaf
    return next_transition_query(
        leaves, exp.to_table(TRAITS_TABLE, quoted=True), schema=compiled.schema,
        dialect=dialect, as_of=as_of, resolve=quoted, resolve_segment=segment_col,
    )  # fmt: skip


# -- windows --------------------------------------------------------------------------------


def _window_dues(compiled: CompiledSegments, dialect: str, as_of: datetime) -> exp.Select | None:
    oldest = _oldest_specs(compiled.catalog)
    if not oldest:
        return None
    # only events inside the widest window can be the oldest inside one
    widest = max(spec.within for spec in oldest if spec.within is not None)
    query = trait_query(TraitCatalog(tuple(oldest)), dialect, as_of, since=as_of - widest)
    dues: list[exp.Expr] = []
    for spec in oldest:
        assert spec.within is not None  # noqa: S101 (only windowed specs are here)
        within = exp.Literal.number(spec.within // timedelta(microseconds=1))
        dues.append(add_micros(quoted(spec.name), within))
    due = least(dues)
    return (
        exp.select(exp.column("profile_id"), exp.alias_(due, "due"))
        .from_(query.subquery("w"))
        .where(exp.Not(this=exp.Is(this=due.copy(), expression=exp.null())))
    )


def _oldest_specs(catalog: TraitCatalog) -> list[TraitSpec]:
    """Per distinct (events, filter, window): the oldest matching event inside the window."""
    found: dict[tuple[object, ...], TraitSpec] = {}
    for spec in catalog.aggregates:
        if spec.within is None:
            continue
        key = (spec.scope, spec.event, spec.where, spec.within)
        if key not in found:
            found[key] = dataclasses.replace(
                spec, name=f"__oldest_{len(found)}", kind="computed", type="timestamp",
                func="min", target=TIMESTAMP_TARGET, value_kind=None, default=None,
            )  # fmt: skip
    return list(found.values())
