"""Every segment of a workspace as one SQL query over a table of trait values.

The rules compile with :func:`segmint.rules.compile_sql` against the trait columns. The
structure (parents, exclusive groups, defaults, ``in_segment``) is expressed in SQL too:
each unit becomes boolean columns ``"__segment_<name>"``, in layers, so a unit's columns
can read the columns of the units it depends on::

    WITH l0 AS (SELECT t.*, <units of level 0> FROM traits t),
         l1 AS (SELECT l0.*, <units reading level-0 segments> FROM l0), …
    SELECT * FROM l<last>

Within a group ranked ``s1, s2, …``: ``s_i`` holds ``c_i AND NOT (c_1 OR … OR c_{i-1})``
where ``c_i`` is the rule (NULL as FALSE) within the parent; the default holds
``parent AND NOT (c_1 OR … OR c_n)``.
"""

from __future__ import annotations

from datetime import datetime

from sqlglot import exp

from segmint.membership.compiled import CompiledSegments
from segmint.membership.structure import SegmentSpec, Unit
from segmint.rules import compile_sql


def quoted(name: str) -> exp.Column:
    """A quoted column reference (trait columns keep their exact names)."""
    return exp.column(name, quoted=True)


def segment_col(name: str) -> exp.Column:
    """The boolean column holding membership of segment ``name``."""
    return quoted(f"__segment_{name}")


def segments_query(
    compiled: CompiledSegments, source: exp.Expr, dialect: str, as_of: datetime
) -> exp.Select:
    """The query adding a membership column per segment to each row of ``source``.

    Args:
        compiled: The compiled segments.
        source: A table or subquery with ``profile_id`` and a column per trait.
        dialect: The SQL dialect.
        as_of: The instant ``now()`` stands for.
    """
    builder = _Layers(compiled, dialect, as_of)
    if isinstance(source, exp.Query):
        origin: exp.Expr = source.subquery("t0")
    else:
        origin = exp.alias_(source, "t0", table=True)
    query = exp.select("*").from_(origin)
    ctes: list[tuple[str, exp.Select]] = [("l0", query)]
    for level, units in enumerate(builder.levels(), start=1):
        previous = ctes[-1][0]
        columns = [col for unit in units for col in builder.unit_columns(unit)]
        ctes.append((f"l{level}", exp.select(f"{previous}.*", *columns).from_(previous)))
    final = exp.select("*").from_(ctes[-1][0])
    for name, select in ctes:
        final = final.with_(name, as_=select)
    return final


class _Layers:
    def __init__(self, compiled: CompiledSegments, dialect: str, as_of: datetime) -> None:
        self.compiled = compiled
        self.dialect = dialect
        self.as_of = as_of

    def levels(self) -> list[list[Unit]]:
        plan = self.compiled.plan
        level: dict[int, int] = {}
        for unit in plan.units:
            reads = [level[plan.unit_of[name]] for name in unit.reads]
            level[unit.index] = 1 + max(reads, default=-1)
        grouped: list[list[Unit]] = [[] for _ in range(max(level.values(), default=-1) + 1)]
        for unit in plan.units:
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
