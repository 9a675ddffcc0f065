"""When time alone may flip a rule, in SQL: the counterpart of :mod:`segmint.rules.timing`.

:func:`next_transition_query` selects, per row of a traits table, an instant after
``as_of`` no later than the first at which any of the given time leaves
(:func:`segmint.rules.timing.time_leaves`) could change its truth value, as
:func:`segmint.rules.next_transition` computes it for one row in Python. A row that is
early costs its reader one evaluation that changes nothing; a late one would be a missed
transition, so the query errs early:

- Each leaf compares sides that are linear in the instant ``t``. Both sides are compiled at
  ``t0 = as_of`` and at ``t1 = as_of + 1 day`` (epoch seconds for timestamps, else numbers);
  their difference ``d(t) = d0 + (d1 - d0)·(t - t0) / 1 day`` is zero at
  ``t0 + 1 day · d0 / (d0 - d1)``. That crossing is made early by :data:`MARGIN_US`
  (floating point; the exact flip is at most 2 µs after the crossing), kept after ``as_of``
  and capped at :data:`HORIZON_US`.
- A leaf with a side not linear in ``t`` (``days_since(x) * days_since(x)``) is looked at
  again after :data:`segmint.rules.timing.RECHECK`, as the Python side does.

:func:`add_micros` and :func:`least` are the instant arithmetic the query is built from, for
callers that add their own candidate instants (windowed traits expiring, say).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import cast

from sqlglot import exp

from segmint.rules import ast as A
from segmint.rules.checker import infer, meeting_type
from segmint.rules.schema import RuleType, TraitSchema
from segmint.rules.sqlcompile import (
    Resolve,
    SQLCompiler,
    column,
    double,
    paren,
    segment_column,
    timestamp_literal,
)
from segmint.rules.timing import RECHECK

MARGIN_US = 1_000
"""How much earlier than the computed crossing an instant is given (covers rounding)."""
HORIZON_US = 100 * 366 * 86_400_000_000
"""The latest instant given (µs after ``as_of``): keeps far crossings inside TIMESTAMP."""
STEP = timedelta(days=1)
"""The distance between the two instants each side is evaluated at."""
_STEP_US = STEP // timedelta(microseconds=1)
# Sides moving together (|d0 - d1| below this fraction of |d0|: rounding, not a slope) would
# cross more than a million years away: no crossing.
_PARALLEL = 1e-9

Pair = tuple[A.Expr, A.Expr, str]
"""Two sides of a leaf whose difference crosses zero when the leaf may flip, and their type."""


class _NonLinear(Exception):
    """A leaf with a side not linear in time (rechecked after ``RECHECK``)."""


def next_transition_query(
    leaves: Sequence[A.Expr],
    source: exp.Expr,
    *,
    schema: TraitSchema,
    dialect: str,
    as_of: datetime,
    resolve: Resolve = column,
    resolve_segment: Resolve = segment_column,
    key: str = "profile_id",
) -> exp.Select | None:
    """``SELECT <key>, due``: per row of ``source``, when time alone may first flip a leaf.

    Args:
        leaves: Time leaves, from :func:`segmint.rules.time_leaves` (events lowered).
        source: The traits table (a column per trait, and ``key``).
        schema: The trait types the rules were checked with.
        dialect: The SQL dialect.
        as_of: The instant the rules were last evaluated at; every ``due`` is after it.
        resolve: Maps a trait name to its column in ``source``.
        resolve_segment: Maps a segment name to its column (``in_segment`` never moves with
            time, but a leaf may mention it).
        key: The column identifying a row.

    Returns:
        The query (rows no leaf can flip are left out), or None when there is no leaf.
    """
    if not leaves:
        return None
    at = [SQLCompiler(schema, dialect, resolve, resolve_segment, t) for t in (as_of, as_of + STEP)]
    columns: list[exp.Expr] = []
    offsets: list[exp.Expr] = []
    for leaf in leaves:
        try:
            pairs = list(_pairs(leaf, schema))
        except _NonLinear:
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
    inner = exp.select(exp.column(key), *columns).from_(source)
    ranked = exp.select(exp.column(key), exp.alias_(least(offsets), "due_us")).from_(
        inner.subquery("l0")
    )
    due = add_micros(timestamp_literal(as_of), exp.column("due_us"))
    return (
        exp.select(exp.column(key), exp.alias_(due, "due"))
        .from_(ranked.subquery("l1"))
        .where(exp.Not(this=exp.Is(this=exp.column("due_us"), expression=exp.null())))
    )


def add_micros(instant: exp.Expr, micros: exp.Expr) -> exp.Expr:
    """``instant + micros µs`` (exact, whatever the unit of the duration)."""
    count = exp.cast(micros, exp.DataType.Type.BIGINT)
    return exp.TimestampAdd(this=instant, expression=count, unit=exp.var("MICROSECOND"))


def least(values: Sequence[exp.Expr]) -> exp.Expr:
    """The smallest non-NULL value (NULL when all are NULL), on DuckDB and PostgreSQL."""
    if len(values) == 1:
        return values[0]
    return exp.Least(this=values[0], expressions=list(values[1:]), ignore_nulls=True)


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
        raise _NonLinear
    meet = infer(sides[0][0], schema)
    for _, other in sides:
        meet = meeting_type(meet, infer(other, schema))
    yield from _typed(sides, str(meet), schema)


def _typed(
    sides: Iterable[tuple[A.Expr, A.Expr]], meet: str, schema: TraitSchema
) -> Iterator[Pair]:
    """The pairs to solve; raises _NonLinear when a side is not linear in time."""
    checked = list(sides)
    if not all(_linear(node) for pair in checked for node in pair):
        raise _NonLinear
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
    """Whether ``node`` is linear in time for every row (as ``timing``'s forms require)."""
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


def _number(value: float) -> exp.Expr:
    return double(exp.Literal.number(repr(value)))
