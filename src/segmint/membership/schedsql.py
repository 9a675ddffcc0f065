"""The batch refresh's ``schedule``: when time alone may next change each profile, in SQL.

The real-time engine fires a profile at its ``schedule.due_at``, re-evaluates every segment
at that instant and computes the exact next one. A row that is early costs one evaluation
that changes nothing; a row that is late or missing is a transition never fired. So after a
refresh at ``as_of``, :func:`write_schedule` replaces the table with, per profile, an instant
after ``as_of`` no later than the first at which time alone could change a membership:

- **Time leaves.** Each leaf of a segment's rule (derived traits inlined) that time alone can
  flip (:func:`segmint.rules.timing.time_leaves`) compares sides that are linear in the
  instant ``t``. Both sides are compiled against ``profile_traits`` at ``t0 = as_of`` and at
  ``t1 = as_of + 1 day`` (epoch seconds for timestamps, else numbers); their difference
  ``d(t) = d0 + (d1 - d0)·(t - t0) / 1 day`` is zero at ``t0 + 1 day · d0 / (d0 - d1)``.
  That crossing is made early by :data:`MARGIN_US` (floating point; the exact flip is at
  most 2 µs after the crossing), kept after ``as_of`` and capped at :data:`HORIZON_US`. A
  leaf that is not linear in ``t`` is looked at again after ``timing.RECHECK``, as
  :func:`segmint.rules.next_transition` does.
- **Windows.** A windowed aggregate changes when the oldest event inside its window leaves
  it: ``min(timestamp in (as_of - within, as_of]) + within``, per trait, with its event and
  ``where`` filter (events without the aggregated value count too: earlier, never later than
  :meth:`TraitEngine.next_expiry`).

Both are one query over ``profile_traits`` and ``events`` (:func:`schedule_query`); no Python
runs per profile. A leaf this module cannot solve makes the row early, never late.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from typing import cast

from sqlglot import exp

from segmint.membership.compiled import CompiledSegments
from segmint.membership.segsql import quoted, segment_col
from segmint.rules import ast as A
from segmint.rules.checker import infer, meeting_type
from segmint.rules.lowering import TIMESTAMP_TARGET
from segmint.rules.schema import RuleType, TraitSchema
from segmint.rules.sqlcompile import (
    Resolve,
    SQLCompiler,
    double,
    paren,
    timestamp_literal,
)
from segmint.rules.timing import RECHECK
from segmint.store import Store
from segmint.traits.catalog import TraitCatalog
from segmint.traits.model import TraitSpec
from segmint.traits.sqlgen import trait_query

MARGIN_US = 1_000
"""How much earlier than the computed crossing a row is written (covers rounding)."""
HORIZON_US = 100 * 366 * 86_400_000_000
"""The latest a row is written (µs after ``as_of``): keeps far crossings inside TIMESTAMP."""
STEP = timedelta(days=1)
"""The distance between the two instants each side is evaluated at."""
_STEP_US = STEP // timedelta(microseconds=1)
# Sides moving together (|d0 - d1| below this fraction of |d0|: rounding, not a slope) would
# cross more than a million years away: no crossing.
_PARALLEL = 1e-9

Pair = tuple[A.Expr, A.Expr, str]
"""Two sides of a leaf whose difference crosses zero when the leaf may flip, and their type."""


class NonLinear(Exception):
    """A leaf with a side not linear in time (rechecked after ``RECHECK``)."""


def write_schedule(store: Store, compiled: CompiledSegments, as_of: datetime) -> None:
    """Replace ``schedule`` with every profile's next possible time transition after ``as_of``.

    Reads ``profile_traits`` as :func:`segmint.traits.batch.refresh` left it at ``as_of`` and
    the ``events``; call it inside the refresh transaction. Rows that stay the same are not
    rewritten (the table's two indexes make each written row cost more than computing it).
    """
    query = schedule_query(compiled, store.dialect, as_of)
    if query is None:
        store.execute("DELETE FROM schedule")
        return
    staged = f"_segmint_schedule_{uuid.uuid4().hex[:10]}"
    store.execute(f"CREATE TEMP TABLE {staged} AS {query.sql(dialect=store.dialect)}")
    try:
        store.execute(_STALE.format(staged=staged))
        store.execute(_NEW.format(staged=staged))
    finally:
        store.execute(f"DROP TABLE {staged}")


_STALE = (
    "DELETE FROM schedule WHERE NOT EXISTS (SELECT 1 FROM {staged} n "
    "WHERE n.profile_id = schedule.profile_id AND n.due_at = schedule.due_at)"
)
_NEW = (
    "INSERT INTO schedule (profile_id, due_at) SELECT n.profile_id, n.due_at FROM {staged} n "
    "WHERE NOT EXISTS (SELECT 1 FROM schedule s WHERE s.profile_id = n.profile_id)"
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


# -- time leaves ----------------------------------------------------------------------------


def _leaf_dues(compiled: CompiledSegments, dialect: str, as_of: datetime) -> exp.Select | None:
    leaves = [timer.leaf for timer in compiled.timers]  # every distinct time leaf
    if not leaves:
        return None
    at = [_compiler(compiled.schema, dialect, t) for t in (as_of, as_of + STEP)]
    columns: list[exp.Expr] = []
    offsets: list[exp.Expr] = []
    for leaf in leaves:
        try:
            pairs = list(_pairs(leaf, compiled.schema))
        except NonLinear:
            offsets.append(_number(RECHECK // timedelta(microseconds=1)))
            continue
        for left, right, kind in pairs:
            k = len(columns) // 2
            for i, compiler in enumerate(at):
                diff = exp.Sub(
                    this=paren(_numeric(compiler, left, kind)),
                    expression=paren(_numeric(compiler, right, kind)),
                )
                columns.append(exp.alias_(diff, f"d{i}_{k}"))
            offsets.append(_offset(exp.column(f"d0_{k}"), exp.column(f"d1_{k}")))
    if not offsets:
        return None
    inner = exp.select(exp.column("profile_id"), *columns).from_(
        exp.to_table("profile_traits", quoted=True)
    )
    soonest = _least(offsets)
    due = _after(timestamp_literal(as_of), exp.column("due_us"))
    ranked = exp.select(exp.column("profile_id"), exp.alias_(soonest, "due_us")).from_(
        inner.subquery("l0")
    )
    return (
        exp.select(exp.column("profile_id"), exp.alias_(due, "due"))
        .from_(ranked.subquery("l1"))
        .where(exp.Not(this=exp.Is(this=exp.column("due_us"), expression=exp.null())))
    )


def _compiler(schema: TraitSchema, dialect: str, at: datetime) -> SQLCompiler:
    resolve = cast(Resolve, quoted)
    return SQLCompiler(schema, dialect, resolve, cast(Resolve, segment_col), at)


def _pairs(leaf: A.Expr, schema: TraitSchema) -> Iterator[Pair]:
    """The (left, right, type) pairs of a leaf whose crossings it may flip at."""
    if isinstance(leaf, A.Within):
        now = A.Now()
        edges = (A.Arithmetic("-", now, A.Interval(leaf.duration)), now)
        yield from _typed(((leaf.operand, edge) for edge in edges), "timestamp", schema)
        return
    if isinstance(leaf, A.Compare):
        sides = [(leaf.left, leaf.right)]
    elif isinstance(leaf, A.Between):
        sides = [(leaf.operand, leaf.low), (leaf.operand, leaf.high)]
    elif isinstance(leaf, A.InList):
        sides = [(leaf.operand, item) for item in leaf.items]
    else:  # pragma: no cover - time_leaves yields only these
        raise NonLinear
    meet = infer(sides[0][0], schema)
    for _, other in sides:
        meet = meeting_type(meet, infer(other, schema))
    yield from _typed(sides, str(meet), schema)


def _typed(
    sides: Iterable[tuple[A.Expr, A.Expr]], meet: str, schema: TraitSchema
) -> Iterator[Pair]:
    """The pairs to solve; raises NonLinear when a side is not linear in time."""
    checked = list(sides)
    if not all(_linear(node) for pair in checked for node in pair):
        raise NonLinear
    for left, right in checked:
        if meet == "number" or (
            meet == "timestamp"
            and infer(left, schema) == "timestamp"
            and infer(right, schema) == "timestamp"
        ):
            yield left, right, meet


def _moves(node: A.Expr) -> bool:
    return any(isinstance(n, A.Now | A.DaysSince | A.Within) for n in A.walk(node))


def _linear(node: A.Expr) -> bool:
    """Whether ``node`` is linear in time for every profile (see ``timing._linear``)."""
    if isinstance(node, A.Now) or not _moves(node):
        return True
    if isinstance(node, A.DaysSince):
        return _linear(node.operand)
    if isinstance(node, A.Arithmetic) and _linear(node.left) and _linear(node.right):
        if node.op in "+-":
            return True
        if node.op == "*":
            return not (_moves(node.left) and _moves(node.right))
        return not _moves(node.right)
    return False


def _numeric(compiler: SQLCompiler, node: A.Expr, kind: str) -> exp.Expression:
    value = compiler.typed(node, cast(RuleType, kind))
    if kind == "timestamp":
        return double(exp.TimeToUnix(this=value))
    return double(value)


def _offset(d0: exp.Expr, d1: exp.Expr) -> exp.Expr:
    """µs after ``as_of`` to look again for the crossing of ``d``, or NULL for none."""
    slope = exp.Sub(this=d0.copy(), expression=d1.copy())
    crossing = exp.Div(
        this=exp.Mul(this=_number(_STEP_US), expression=d0.copy()),
        expression=exp.Nullif(this=exp.paren(slope), expression=_number(0)),
    )
    moving = exp.GT(
        this=exp.Abs(this=slope.copy()),
        expression=exp.Mul(this=_number(_PARALLEL), expression=exp.Abs(this=d0.copy())),
    )
    ahead = exp.GT(this=crossing.copy(), expression=_number(-MARGIN_US))
    early = exp.Sub(this=exp.Floor(this=crossing), expression=_number(MARGIN_US))
    capped = exp.Least(this=early, expressions=[_number(HORIZON_US)], ignore_nulls=True)
    due = exp.Greatest(this=capped, expressions=[_number(1)], ignore_nulls=True)
    return exp.Case(ifs=[exp.If(this=exp.and_(moving, ahead), true=due)])


def _after(instant: exp.Expr, micros: exp.Expr) -> exp.Expr:
    """``instant + micros µs`` (exact, whatever the unit of the duration)."""
    count = exp.cast(micros, exp.DataType.Type.BIGINT)
    return exp.TimestampAdd(this=instant, expression=count, unit=exp.var("MICROSECOND"))


def _number(value: float) -> exp.Expr:
    return double(exp.Literal.number(repr(value)))


def _least(values: list[exp.Expr]) -> exp.Expr:
    """The smallest non-NULL value (NULL when all are NULL), on DuckDB and PostgreSQL."""
    if len(values) == 1:
        return values[0]
    return exp.Least(this=values[0], expressions=values[1:], ignore_nulls=True)


# -- windows --------------------------------------------------------------------------------


def _window_dues(compiled: CompiledSegments, dialect: str, as_of: datetime) -> exp.Select | None:
    oldest = _oldest_specs(compiled.catalog)
    if not oldest:
        return None
    query = trait_query(TraitCatalog(tuple(oldest)), dialect, as_of)
    dues: list[exp.Expr] = []
    for spec in oldest:
        assert spec.within is not None  # noqa: S101 (only windowed specs are here)
        within = exp.Literal.number(spec.within // timedelta(microseconds=1))
        dues.append(_after(quoted(spec.name), within))
    due = _least(dues)
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
