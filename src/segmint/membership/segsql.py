"""Segment membership as SQL: the one statement refresh runs and ``segments sql`` prints.

:func:`membership_query` selects ``(profile_id, segment)`` for every member of the requested
segments (all by default) from a table of trait values, exactly as segmint decides them:
the rules compile with :func:`segmint.rules.compile_sql` against the trait columns, and the
structure (parents, exclusive groups, defaults, ``in_segment``) is expressed in SQL too.
Each unit becomes boolean columns ``"__segment_<name>"``, in layers, so a unit's columns can
read the columns of the units it depends on::

    WITH l0 AS (SELECT t0.* FROM traits AS t0),
         l1 AS (SELECT l0.*, <units of level 0> FROM l0), …
    SELECT profile_id, 'a' AS segment FROM l<last> WHERE "__segment_a" UNION ALL …

Within a group ranked ``s1, s2, …``: ``s_i`` holds ``c_i AND NOT (c_1 OR … OR c_{i-1})``
where ``c_i`` is the rule (NULL as FALSE) within the parent; the default holds
``parent AND NOT (c_1 OR … OR c_n)``. Only the units the requested segments need (their
own, their group, their parents and the segments they read, transitively) are computed.

The batch refresh and ``reconcile`` run :func:`membership_query` (over ``profile_traits``
and over the traits query respectively); ``segmint segments sql NAME`` prints it for one
segment (:func:`segment_sql`), ``segmint memberships sql`` for all (:func:`memberships_sql`).
Nothing else builds segment SQL.

Warehouse-native: given an :class:`segmint.traits.source.EventSource`, the statement is
self-contained: the traits the segments read are computed in CTEs from a raw events table
(:func:`segmint.traits.sqlgen.trait_query`) instead of read from ``profile_traits``, a table
only segmint has. Given a :class:`segmint.rules.SqlNow` for ``as_of``, ``now()`` is the
database's current instant, so the SQL stays reusable (dbt models, scheduled queries).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlglot import exp

from segmint.common import did_you_mean
from segmint.config.model import WorkspaceDef
from segmint.membership.compiled import CompiledSegments
from segmint.membership.structure import SegmentSpec, Unit
from segmint.rules import (
    DIALECTS,
    EventAggregate,
    Instant,
    RuleNameError,
    compile_sql,
    lower_events,
)
from segmint.traits.errors import UnsupportedTraitError
from segmint.traits.source import EventSource
from segmint.traits.sqlgen import trait_query

TRAITS_TABLE = "profile_traits"
"""The table of trait values refresh materialises (one row per profile, a column each)."""


def quoted(name: str) -> exp.Column:
    """A quoted column reference (trait columns keep their exact names)."""
    return exp.column(name, quoted=True)


def segment_col(name: str) -> exp.Column:
    """The boolean column holding membership of segment ``name``."""
    return quoted(f"__segment_{name}")


def membership_query(
    compiled: CompiledSegments,
    *,
    dialect: str,
    as_of: Instant,
    segments: Iterable[str] | None = None,
    source: exp.Expr | None = None,
) -> exp.Query:
    """``SELECT profile_id, segment``: the members of ``segments`` as segmint decides them.

    Args:
        compiled: The compiled segments.
        dialect: The SQL dialect the rules compile for.
        as_of: The instant ``now()`` stands for (:class:`segmint.rules.SqlNow`: the
            database's current instant).
        segments: The segments to select (default: every segment, in evaluation order).
        source: A table or query with ``profile_id`` and a column per trait (default: the
            ``profile_traits`` table; see :func:`events_source`).

    Raises:
        UnknownSegmentError: For a segment the workspace does not define.
    """
    names, ctes = _layered(compiled, dialect, as_of, segments, source)
    last = ctes[-1][0]
    selects: list[exp.Select] = [
        exp.select(
            exp.column("profile_id"), exp.alias_(exp.Literal.string(name), "segment")
        ).from_(last).where(segment_col(name))
        for name in names
    ]  # fmt: skip
    if not selects:  # no segment: no member (typed, so a table created from it has columns)
        text = exp.DataType.build("text")
        none = exp.alias_(exp.cast(exp.null(), text), "segment")
        selects = [exp.select(exp.column("profile_id"), none).from_(last).where(exp.false())]
    query: exp.Query = selects[0]
    for select in selects[1:]:  # fresh nodes: no copy (copying the growing union is quadratic)
        query = exp.union(query, select, distinct=False, copy=False)
    for name, cte in ctes:
        query = query.with_(name, as_=cte)
    return query


def segment_columns_query(
    compiled: CompiledSegments,
    *,
    dialect: str,
    as_of: Instant,
    segments: Iterable[str] | None = None,
    source: exp.Expr | None = None,
) -> tuple[exp.Select, tuple[str, ...]]:
    """One row per profile: ``profile_id`` and a boolean ``"__segment_<name>"`` per segment.

    The same layers :func:`membership_query` selects its pairs from, for engines that read
    the booleans in one pass (Spark explodes them). Arguments as :func:`membership_query`.

    Returns:
        The query, and the segment names in the order of their columns.
    """
    names, ctes = _layered(compiled, dialect, as_of, segments, source)
    query = exp.select(exp.column("profile_id"), *(segment_col(n) for n in names))
    query = query.from_(ctes[-1][0])
    for name, cte in ctes:
        query = query.with_(name, as_=cte)
    return query, names


def _layered(
    compiled: CompiledSegments,
    dialect: str,
    as_of: Instant,
    segments: Iterable[str] | None,
    source: exp.Expr | None,
) -> tuple[tuple[str, ...], list[tuple[str, exp.Select]]]:
    plan = compiled.plan
    names = plan.names if segments is None else tuple(plan.spec(n).name for n in segments)
    origin = exp.to_table(TRAITS_TABLE, quoted=True) if source is None else source
    layers = _Layers(compiled, dialect, as_of)
    ctes = [("l0", exp.select("t0.*").from_(_aliased(origin)))]
    for level, units in enumerate(layers.levels(_needed(compiled, names)), start=1):
        previous = ctes[-1][0]
        columns = [col for unit in units for col in layers.unit_columns(unit)]
        ctes.append((f"l{level}", exp.select(f"{previous}.*", *columns).from_(previous)))
    return tuple(names), ctes


def read_traits(compiled: CompiledSegments, segments: Iterable[str] | None = None) -> list[str]:
    """The traits (implicit ones included) the units deciding ``segments`` read, in order."""
    plan = compiled.plan
    names = plan.names if segments is None else [plan.spec(n).name for n in segments]
    read: set[str] = set()
    for unit in (plan.units[i] for i in _needed(compiled, names)):
        for member in unit.names:
            read |= compiled.segments[member].traits
    return [n for n in compiled.catalog.names if n in read]


def events_source(
    compiled: CompiledSegments,
    *,
    dialect: str,
    as_of: Instant,
    events: EventSource,
    segments: Iterable[str] | None = None,
) -> exp.Select:
    """The traits ``segments`` read, computed from a raw events table (a ``source``).

    Raises:
        UnsupportedTraitError: For a trait the dialect cannot compute, naming the segment.
    """
    wanted = None if segments is None else list(segments)
    try:
        return trait_query(
            compiled.catalog, dialect, as_of, read_traits(compiled, wanted), source=events
        )
    except UnsupportedTraitError as exc:
        users = [
            n for n in (wanted or compiled.plan.names) if exc.trait in read_traits(compiled, [n])
        ]
        where = f"segment '{users[0]}': " if users else ""
        raise UnsupportedTraitError(exc.trait, exc.dialect, where + str(exc)) from exc


def _aliased(source: exp.Expr) -> exp.Expr:
    if isinstance(source, exp.Query):
        return source.subquery("t0")
    return exp.alias_(source, "t0", table=True)


def _needed(compiled: CompiledSegments, names: Iterable[str]) -> set[int]:
    """The units deciding ``names``, and every unit they read, transitively."""
    plan = compiled.plan
    todo = [plan.unit_of[n] for n in names]
    found: set[int] = set()
    while todo:
        index = todo.pop()
        if index not in found:
            found.add(index)
            todo += [plan.unit_of[n] for n in plan.units[index].reads]
    return found


@dataclass(frozen=True)
class SegmentSQL:
    """One segment's membership query, and the implicit traits it reads.

    Attributes:
        query: ``SELECT profile_id, segment`` over ``profile_traits`` (:func:`membership_query`),
            or over the traits computed from raw events when ``self_contained``.
        aggregates: The implicit event traits its rules read (``performed(...)``), columns the
            traits engine materialises in ``profile_traits``.
        self_contained: Whether the traits are computed from an events table in the query.
    """

    query: exp.Query
    aggregates: tuple[EventAggregate, ...]
    self_contained: bool = False

    def sql(self, dialect: str) -> str:
        """The statement rendered for ``dialect``, pretty-printed."""
        return self.query.sql(dialect=dialect, pretty=True)


def segment_sql(
    definition: WorkspaceDef | CompiledSegments,
    name: str,
    *,
    dialect: str,
    as_of: Instant,
    events: EventSource | None = None,
) -> SegmentSQL:
    """The statement a refresh runs for segment ``name`` (what ``segments sql`` prints).

    Args:
        definition: The workspace (or its compiled segments).
        name: The segment; a group's default segment works too.
        dialect: One of :data:`segmint.rules.DIALECTS`.
        as_of: The instant ``now()`` stands for (or a :class:`segmint.rules.SqlNow`).
        events: Read traits from this raw events table (self-contained SQL) instead of
            ``profile_traits``.

    Raises:
        UnknownSegmentError: For a segment the workspace does not define.
        RuleNameError: For a dialect not in :data:`segmint.rules.DIALECTS`.
        UnsupportedTraitError: For a trait the dialect cannot compute from events.
    """
    return _statement(definition, [name], dialect, as_of, events)


def memberships_sql(
    definition: WorkspaceDef | CompiledSegments,
    *,
    dialect: str,
    as_of: Instant,
    events: EventSource | None = None,
) -> SegmentSQL:
    """Every segment at once: one row ``(profile_id, segment)`` per member.

    The same statement refresh runs (``segmint memberships sql``); arguments as
    :func:`segment_sql`.
    """
    return _statement(definition, None, dialect, as_of, events)


def _statement(
    definition: WorkspaceDef | CompiledSegments,
    names: list[str] | None,
    dialect: str,
    as_of: Instant,
    events: EventSource | None,
) -> SegmentSQL:
    if dialect not in DIALECTS:
        hint = did_you_mean(dialect, DIALECTS) or f"one of {', '.join(DIALECTS)}"
        what = f" for segment '{names[0]}'" if names else ""
        raise RuleNameError(f"unknown dialect '{dialect}'{what}", hint=hint)
    compiled = (
        definition if isinstance(definition, CompiledSegments) else CompiledSegments(definition)
    )
    source = None
    if events is not None:
        source = events_source(
            compiled, dialect=dialect, as_of=as_of, events=events, segments=names
        )
    query = membership_query(compiled, dialect=dialect, as_of=as_of, segments=names, source=source)
    plan = compiled.plan
    read = sorted(_needed(compiled, plan.names if names is None else names))
    aggregates: dict[str, EventAggregate] = {}
    for unit in (plan.units[i] for i in read):
        for member in unit.names:
            expr = compiled.segments[member].expr
            if expr is not None:
                aggregates.update((a.name, a) for a in lower_events(expr)[1])
    return SegmentSQL(query, tuple(aggregates.values()), events is not None)


class _Layers:
    def __init__(self, compiled: CompiledSegments, dialect: str, as_of: Instant) -> None:
        self.compiled = compiled
        self.dialect = dialect
        self.as_of = as_of

    def levels(self, needed: set[int]) -> list[list[Unit]]:
        """The ``needed`` units, by level: each level reads only the levels before it."""
        plan = self.compiled.plan
        level: dict[int, int] = {}
        units = [u for u in plan.units if u.index in needed]  # in evaluation order
        for unit in units:
            reads = [level[plan.unit_of[name]] for name in unit.reads]
            level[unit.index] = 1 + max(reads, default=-1)
        grouped: list[list[Unit]] = [[] for _ in range(max(level.values(), default=-1) + 1)]
        for unit in units:
            grouped[level[unit.index]].append(unit)
        return grouped

    def rule(self, spec: SegmentSpec) -> exp.Expr:
        seg = self.compiled.segments[spec.name]
        assert seg.expr is not None
        sql = compile_sql(
            seg.expr, dialect=self.dialect, resolve=quoted, resolve_segment=segment_col,
            schema=self.compiled.schema, as_of=self.as_of,
        )  # fmt: skip
        return exp.Coalesce(this=exp.paren(sql), expressions=[exp.false()])

    def candidate(self, spec: SegmentSpec) -> exp.Expr:
        rule = self.rule(spec)
        if spec.parent is None:
            return rule
        return exp.and_(rule, segment_col(spec.parent))

    def unit_columns(self, unit: Unit) -> list[exp.Expr]:
        taken: list[exp.Expr] = []
        columns: list[exp.Expr] = []
        for spec in unit.ranked:
            cand = self.candidate(spec)
            held = exp.and_(cand, exp.not_(exp.or_(*taken))) if taken else cand
            columns.append(exp.alias_(exp.paren(held), f"__segment_{spec.name}", quoted=True))
            taken.append(exp.paren(cand.copy()))
        if unit.default is not None:
            columns.append(self.default_column(unit.default, taken))
        return columns

    def default_column(self, spec: SegmentSpec, taken: list[exp.Expr]) -> exp.Expr:
        parts: list[exp.Expr] = []
        if spec.parent is not None:
            parts.append(segment_col(spec.parent))
        if taken:
            parts.append(exp.not_(exp.or_(*[t.copy() for t in taken])))
        held = exp.and_(*parts) if parts else exp.true()
        return exp.alias_(exp.paren(held), f"__segment_{spec.name}", quoted=True)
