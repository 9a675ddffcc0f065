"""The batch compiler: every trait of a catalog as one SQL query over ``events``.

The query reads ``events`` once::

    WITH ev AS (      -- one pass: the events up to as_of, each needed property coerced once
      SELECT profile_id, timestamp AS ts, message_id AS mid, type, event, x0, x1, f0, …
      FROM events WHERE profile_id IS NOT NULL AND timestamp <= :as_of),
    agg AS (          -- one GROUP BY: conditional aggregation, a column per trait
      SELECT profile_id, COUNT(CASE WHEN cond THEN 1 END) AS a0, … FROM ev GROUP BY 1),
    mf0 AS (…)        -- most_frequent only: a second GROUP BY (profile, value) over ev
    SELECT agg.profile_id, a0 AS "orders", …, <derived expressions> FROM agg LEFT JOIN mf0 …

A property is extracted only for the events that can use it (``CASE WHEN type = 'track' AND
event = 'Order Completed' THEN … END``), and each (property, coercion, events) combination
is extracted once however many traits read it. Derived traits are compiled by the rule
language's SQL compiler with a resolver that inlines the traits they read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import cast

from sqlglot import exp

from segmint.events import SCORE_TYPE
from segmint.rules import Instant, TraitRef, TraitSchema, compile_sql
from segmint.rules.ast import walk
from segmint.rules.sqlcompile import Resolve, timestamp_literal
from segmint.traits.catalog import TraitCatalog
from segmint.traits.derive import filter_expr
from segmint.traits.errors import UnsupportedTraitError
from segmint.traits.model import TraitSpec
from segmint.traits.source import EventSource
from segmint.traits.sqldialect import EXACT, SqlDialect, dialect_for

_FILTER_SCHEMA = TraitSchema.event_properties()


def trait_query(
    catalog: TraitCatalog,
    dialect: str,
    as_of: Instant,
    names: Sequence[str] | None = None,
    *,
    source: EventSource | None = None,
    since: datetime | None = None,
) -> exp.Select:
    """The query computing traits for every profile with events at ``as_of``.

    Args:
        catalog: The traits.
        dialect: A sqlglot dialect name (exact for ``duckdb`` and ``postgres``).
        as_of: The evaluation instant (a :class:`segmint.rules.SqlNow` leaves it to the
            database).
        names: Only these traits (and what they depend on); all when None.
        source: The events table and column mapping (default: segmint's ``events``).
        since: Read only the events after this instant (for traits that all look no
            further back, such as windows within ``as_of - since``; a profile with no
            event after it gets no row).

    Returns:
        A ``SELECT`` with ``profile_id`` and one column per trait, named after it.

    Raises:
        UnsupportedTraitError: For a trait the dialect's SQL cannot compute exactly (a
            list-valued property outside DuckDB and PostgreSQL).
    """
    wanted = list(catalog.names if names is None else names)
    specs = [catalog[n] for n in _closure(catalog, wanted)]
    builder = _Builder(dialect_for(dialect), as_of, catalog.types(), source or EventSource())
    builder.since = since
    return builder.build(specs, wanted)


def trait_sql(
    catalog: TraitCatalog,
    dialect: str,
    as_of: Instant,
    names: Sequence[str] | None = None,
    *,
    source: EventSource | None = None,
) -> str:
    """:func:`trait_query` rendered as SQL text for ``dialect``."""
    query = trait_query(catalog, dialect, as_of, names, source=source)
    return query.sql(dialect=dialect, pretty=True)


def _closure(catalog: TraitCatalog, names: Iterable[str]) -> list[str]:
    """``names`` plus every trait they read, in catalog order."""
    needed: set[str] = set()
    stack = list(names)
    while stack:
        name = stack.pop()
        if name in needed:
            continue
        needed.add(name)
        expr = catalog[name].expr
        if expr is not None:
            stack += [n.name for n in walk(expr) if isinstance(n, TraitRef) and n.name in catalog]
    return [n for n in catalog.names if n in needed]


class _Builder:
    """Accumulates the CTE columns of one query."""

    def __init__(
        self, dialect: SqlDialect, as_of: Instant, types: dict[str, str], source: EventSource
    ) -> None:
        self.d = dialect
        self.as_of = as_of
        self.source = source
        self.types = types
        self.ev_cols: dict[str, exp.Expr] = {}
        self.keys: dict[str, str] = {}
        self.agg_cols: list[exp.Expr] = []
        self.modes: list[tuple[str, exp.Select]] = []
        self.final: dict[str, exp.Expr] = {}
        self.since: datetime | None = None

    def build(self, specs: list[TraitSpec], wanted: list[str]) -> exp.Select:
        for spec in specs:
            self.final[spec.name] = self.derived(spec) if spec.expr else self.aggregate(spec)
        outputs = [exp.alias_(self.final[n].copy(), n, quoted=True) for n in wanted]
        query = exp.select(exp.column("profile_id", "agg"), *outputs).from_("agg")
        for cte, _ in self.modes:
            on = exp.EQ(
                this=exp.column("profile_id", cte), expression=exp.column("profile_id", "agg")
            )
            query = query.join(cte, on=on, join_type="left")
        query = query.with_("ev", as_=self.events()).with_("agg", as_=self.grouped())
        for cte, select in self.modes:
            query = query.with_(cte, as_=select)
        return query

    def events(self) -> exp.Select:
        base = [
            exp.column("profile_id"),
            exp.alias_(exp.column("timestamp", quoted=True), "ts"),
            exp.alias_(exp.column("message_id"), "mid"),
            exp.column("type", quoted=True),
            exp.column("event", quoted=True),
        ]
        cols = [exp.alias_(e, n) for n, e in self.ev_cols.items()]
        where = exp.and_(
            exp.Not(this=exp.Is(this=exp.column("profile_id"), expression=exp.null())),
            exp.LTE(
                this=exp.column("timestamp", quoted=True), expression=timestamp_literal(self.as_of)
            ),
        )
        if self.since is not None:
            after = timestamp_literal(self.since)
            where = exp.and_(
                where, exp.GT(this=exp.column("timestamp", quoted=True), expression=after)
            )
        return exp.select(*base, *cols).from_(self.source.relation(self.d.name)).where(where)

    def grouped(self) -> exp.Select:
        return (
            exp.select(exp.column("profile_id"), *self.agg_cols)
            .from_("ev")
            .group_by(exp.column("profile_id"))
        )

    def scope(self, spec: TraitSpec) -> exp.Expr | None:
        if spec.scope == "all":  # every event but model scores (segmint.events.SCORE_TYPE)
            return exp.NEQ(
                this=exp.column("type", quoted=True), expression=exp.Literal.string(SCORE_TYPE)
            )
        kind = exp.EQ(
            this=exp.column("type", quoted=True), expression=exp.Literal.string(spec.scope)
        )
        if spec.event is None:
            return kind
        name = exp.EQ(
            this=exp.column("event", quoted=True), expression=exp.Literal.string(spec.event)
        )
        return exp.and_(kind, name)

    def ev_column(self, prefix: str, key: str, make: exp.Expr) -> exp.Expr:
        name = self.keys.get(key)
        if name is None:
            name = f"{prefix}{len(self.keys)}"
            self.keys[key] = name
            self.ev_cols[name] = make
        return exp.column(name)

    def condition(self, spec: TraitSpec) -> exp.Expr | None:
        scope = self.scope(spec)
        parts = [] if scope is None else [scope]
        if spec.where is not None:
            read = _resolver(lambda p: self.d.text("properties", (p,)))
            where = filter_expr(spec)
            assert where is not None  # noqa: S101 (spec.where is set)
            test = compile_sql(where, dialect=self.d.name, schema=_FILTER_SCHEMA, resolve=read)
            key = f"f\x1f{spec.where}\x1f{scope}"
            parts.append(self.ev_column("f", key, _case(scope, test)))
        if spec.within is not None:
            cutoff = timestamp_literal(self.as_of - spec.within)
            parts.append(exp.GT(this=exp.column("ts"), expression=cutoff))
        return exp.and_(*parts) if parts else None

    def value(self, spec: TraitSpec) -> exp.Expr:
        if spec.target == "timestamp":
            return exp.column("ts")
        assert spec.value_kind is not None  # noqa: S101 (every property target has one)
        scope = self.scope(spec)
        key = f"x\x1f{spec.target}\x1f{spec.value_kind}\x1f{scope}"
        coerced = self.d.coerce(spec.column, spec.path, spec.value_kind)
        return self.ev_column("x", key, _case(scope, coerced))

    def aggregate(self, spec: TraitSpec) -> exp.Expr:
        if spec.value_kind == "list" and self.d.name not in EXACT:
            raise UnsupportedTraitError(
                spec.name,
                self.d.name,
                f"trait '{spec.name}' ({spec.func} of list {spec.target}) cannot be computed "
                f"in {self.d.name} SQL: list values are computed on duckdb and postgres only",
            )
        if spec.func == "most_frequent":
            return self.mode(spec)
        cond = self.condition(spec)
        name = f"a{len(self.agg_cols)}"
        self.agg_cols.append(exp.alias_(self.fold(spec, cond), name))
        result: exp.Expr = exp.column(name, "agg")
        if spec.default is not None:
            result = exp.Coalesce(this=result, expressions=[exp.convert(spec.default)])
        return result

    def fold(self, spec: TraitSpec, cond: exp.Expr | None) -> exp.Expr:
        func = spec.func
        if func in ("count", "exists"):
            counted = exp.Count(this=_case(cond, exp.Literal.number(1)) if cond else exp.Star())
            return (
                exp.GT(this=counted, expression=exp.Literal.number(0))
                if func == "exists"
                else counted
            )
        value = self.value(spec)
        if func in ("first", "last") and spec.target != "timestamp":
            return self.d.pick(value, cond, last=func == "last")
        if func == "distinct_count":
            return exp.Count(this=exp.Distinct(expressions=[_case(cond, value)]))
        agg = {"sum": exp.Sum, "avg": exp.Avg, "min": exp.Min, "first": exp.Min}.get(func, exp.Max)
        return agg(this=_case(cond, value))

    def mode(self, spec: TraitSpec) -> exp.Expr:
        cond = self.condition(spec)
        value = self.value(spec)
        present = exp.Not(this=exp.Is(this=value.copy(), expression=exp.null()))
        counts = (
            exp.select(
                exp.column("profile_id"),
                exp.alias_(value, "v"),
                exp.alias_(exp.Count(this=exp.Star()), "n"),
            )  # fmt: skip
            .from_("ev")
            .where(exp.and_(cond, present) if cond is not None else present)
            .group_by(exp.column("profile_id"), value.copy())
        )
        cte = f"mf{len(self.modes)}"
        picked = (
            exp.select(exp.column("profile_id"), exp.alias_(self.d.mode(), "v"))
            .from_(self.d.ranked(counts).subquery("c"))
            .group_by(exp.column("profile_id"))
        )
        self.modes.append((cte, picked))
        return exp.column("v", cte)

    def derived(self, spec: TraitSpec) -> exp.Expr:
        assert spec.expr is not None  # noqa: S101 (called for derived specs only)
        schema = TraitSchema(self.types)  # type: ignore[arg-type]
        read = _resolver(lambda n: self.final[n].copy())
        value = compile_sql(
            spec.expr, dialect=self.d.name, schema=schema, as_of=self.as_of, resolve=read
        )
        return exp.Paren(this=value)


def _resolver(fn: Callable[[str], exp.Expr]) -> Resolve:
    # sqlglot 30 builds exp.Expr nodes; the rules package annotates exp.Expression.
    return cast("Resolve", fn)


def _case(cond: exp.Expr | None, value: exp.Expr) -> exp.Expr:
    if cond is None:
        return value
    return exp.Case(ifs=[exp.If(this=cond.copy(), true=value)])
