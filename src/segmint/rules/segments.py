"""Segment rules of a workspace as SQL: the statement ``segmint segments sql`` prints."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlglot import exp

from segmint.common import did_you_mean
from segmint.config.model import WorkspaceDef
from segmint.rules.errors import RuleError, RuleNameError
from segmint.rules.lowering import EventAggregate, lower_events
from segmint.rules.parser import parse
from segmint.rules.sqlcompile import DIALECTS, compile_sql, memberships_resolver
from segmint.rules.workspace import workspace_schema

TRAITS_TABLE = "profile_traits"


@dataclass(frozen=True)
class SegmentSQL:
    """One segment's membership query and the implicit traits it reads.

    Attributes:
        query: ``SELECT profile_id FROM profile_traits WHERE <rule>``.
        aggregates: Implicit event traits (columns the traits engine materialises).
    """

    query: exp.Select
    aggregates: tuple[EventAggregate, ...]

    def sql(self, dialect: str) -> str:
        """The statement rendered for ``dialect``, pretty-printed."""
        return self.query.sql(dialect=dialect, pretty=True)


def segment_sql(
    defn: WorkspaceDef,
    name: str,
    *,
    dialect: str,
    as_of: datetime,
    table: str = TRAITS_TABLE,
) -> SegmentSQL:
    """Compile segment ``name`` of a workspace to its membership query.

    Args:
        defn: The workspace.
        name: The segment.
        dialect: One of :data:`segmint.rules.sqlcompile.DIALECTS`.
        as_of: The instant ``now()`` stands for.
        table: The traits table (one row per profile, a column per trait).

    Raises:
        RuleError: For an unknown segment, a default segment (no rule) or an unknown dialect.
    """
    if dialect not in DIALECTS:
        raise RuleNameError(f"unknown dialect '{dialect}'", hint=f"one of {', '.join(DIALECTS)}")
    segment = defn.segments.get(name)
    if segment is None:
        hint = did_you_mean(name, defn.segments)
        raise RuleNameError(f"unknown segment '{name}'", hint=hint)
    if segment.rule is None:
        raise RuleError(
            f"segment '{name}' is the default of group '{segment.group}': it has no rule",
            hint="its members are the profiles no other segment of the group holds",
        )
    expr = parse(segment.rule)
    _, aggregates = lower_events(expr)
    profile_id = exp.column("profile_id", table)
    condition = compile_sql(
        expr,
        dialect=dialect,
        schema=workspace_schema(defn),
        as_of=as_of,
        resolve=lambda trait: exp.Column(
            this=exp.to_identifier(trait), table=exp.to_identifier(table)
        ),
        resolve_segment=memberships_resolver(profile_id),
    )
    query = exp.select(profile_id.copy()).from_(table).where(condition)
    return SegmentSQL(query, aggregates)
