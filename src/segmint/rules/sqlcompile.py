"""The SQL compiler: a rule becomes a sqlglot boolean expression over the traits table.

The result is sqlglot; render it with ``.sql(dialect)``. Literals enter SQL only as sqlglot
nodes, never as pasted text. The meaning of every node, NULL included, is
:mod:`segmint.rules.semantics`; SQL's own three-valued logic does most of the work.

DuckDB and PostgreSQL are run by the test suite (golden cases and generated rules). Spark,
BigQuery and Snowflake get the same expressions in their spelling, checked only to parse;
known differences there: ``days_since`` reads whole seconds on Spark and Snowflake, and
string order follows the warehouse collation.
"""

# ruff: noqa: D102 -- visit_<Node> methods mean what the node's own docstring says.

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import cast

from sqlglot import exp

from segmint.rules import ast as A
from segmint.rules.checker import infer, meeting_type
from segmint.rules.errors import RuleError
from segmint.rules.lowering import lower_events
from segmint.rules.pycompile import _implicit_type
from segmint.rules.schema import COERCIBLE, RuleType, TraitSchema
from segmint.rules.semantics import NUMBER_PATTERN

Resolve = Callable[[str], exp.Expression]
DIALECTS = ("duckdb", "postgres", "spark", "bigquery", "snowflake")
_COMPARE: dict[str, type[exp.Expression]] = {
    "=": exp.EQ, "!=": exp.NEQ, "<": exp.LT, "<=": exp.LTE, ">": exp.GT, ">=": exp.GTE,
}  # fmt: skip
_ARITH: dict[str, type[exp.Expression]] = {"+": exp.Add, "-": exp.Sub, "*": exp.Mul}
# Nodes printed as one unit. Not ``exp.Func`` as a whole: AND, OR and comparisons are Funcs.
_ATOMS = (
    exp.Column, exp.Literal, exp.Null, exp.Boolean, exp.Cast, exp.Paren, exp.Case,
    exp.Coalesce, exp.Nullif, exp.Lower, exp.Length, exp.Left, exp.Right, exp.StrPosition,
    exp.TimeToUnix, exp.ArrayContains, exp.Exists, exp.Anonymous,
)  # fmt: skip


def _utc_now() -> exp.Expression:
    at_utc = exp.AtTimeZone(this=exp.CurrentTimestamp(), zone=exp.Literal.string("UTC"))
    return exp.cast(at_utc, exp.DataType.Type.TIMESTAMP)


@dataclass(frozen=True)
class SqlNow:
    """The evaluation instant left to the database, read when the SQL runs.

    Pass it where an ``as_of`` is expected to get SQL that stays reusable
    (``segmint segments sql --now current_timestamp``): ``now()`` becomes the current UTC
    instant as a naive ``TIMESTAMP`` (``CAST(CURRENT_TIMESTAMP AT TIME ZONE 'UTC' AS
    TIMESTAMP)``, spelled for each dialect by sqlglot), and ``now() - interval`` and windows
    become arithmetic on it. ``SqlNow ± timedelta`` keeps the offset, as a datetime would.

    Attributes:
        offset: Added to the instant (windows subtract their length).
        base: The instant's expression (default: the current UTC timestamp); a dbt model
            puts its own placeholder here.
    """

    offset: timedelta = timedelta(0)
    base: exp.Expression = field(default_factory=_utc_now, compare=False)

    def __add__(self, other: timedelta) -> SqlNow:
        return SqlNow(self.offset + other, self.base)

    def __sub__(self, other: timedelta) -> SqlNow:
        return SqlNow(self.offset - other, self.base)

    def expression(self) -> exp.Expression:
        """The instant as a ``TIMESTAMP`` expression (``base ± INTERVAL``)."""
        base = self.base.copy()
        micros = self.offset // timedelta(microseconds=1)
        if micros == 0:
            return base
        step = interval_literal(abs(self.offset))
        op = exp.Add if micros > 0 else exp.Sub
        return exp.Paren(this=op(this=base, expression=step))


Instant = datetime | SqlNow
"""An evaluation instant: a fixed ``datetime``, or :class:`SqlNow` read by the database."""


def column(name: str) -> exp.Expression:
    """The default resolver: a column named after the trait (quoted when needed)."""
    return exp.Column(this=exp.to_identifier(name))


def segment_column(name: str) -> exp.Expression:
    """The default segment resolver: a boolean column ``__segment_<name>``."""
    return column(f"__segment_{name}")


def memberships_resolver(profile_id: exp.Expression, table: str = "memberships") -> Resolve:
    """A segment resolver reading current members from the ``memberships`` table.

    Args:
        profile_id: The outer query's profile id column, e.g. ``exp.column("profile_id", "t")``.
        table: The memberships table.
    """

    def resolve(name: str) -> exp.Expression:
        where = exp.and_(
            exp.EQ(this=exp.column("segment", "m"), expression=exp.Literal.string(name)),
            exp.EQ(this=exp.column("profile_id", "m"), expression=profile_id.copy()),
        )
        query = exp.select(exp.Literal.number(1)).from_(exp.to_table(table).as_("m")).where(where)
        return exp.Exists(this=query)

    return resolve


def compile_sql(
    expr: A.Expr,
    *,
    dialect: str = "duckdb",
    resolve: Resolve = column,
    resolve_segment: Resolve = segment_column,
    schema: TraitSchema | None = None,
    as_of: Instant | None = None,
) -> exp.Expression:
    """Compile a rule into a sqlglot expression.

    Args:
        expr: The rule (event conditions are lowered to implicit traits, resolved through
            ``resolve`` by their :attr:`EventAggregate.name`).
        dialect: The target dialect; it only changes how ``days_since`` reads epochs.
        resolve: Maps a trait name to a column expression. For ``where`` filters over JSON
            properties it must return *text* (``properties->>'total'``).
        resolve_segment: Maps a segment name to a boolean expression (default: a column
            ``__segment_<name>``; see :func:`memberships_resolver`).
        schema: Trait types; ``dynamic`` names are coerced as the semantics say.
        as_of: The evaluation instant ``now()`` stands for; required when the rule uses
            ``now()``, ``within`` or ``days_since``. A :class:`SqlNow` leaves it to the
            database.

    Returns:
        A boolean sqlglot expression (or the value of a non-boolean expression).
    """
    lowered, aggregates = lower_events(expr)
    implicit = {agg.name: _implicit_type(agg.func) for agg in aggregates}
    base = schema or TraitSchema()
    full = TraitSchema({**base.types, **implicit}, base.segments, base.default, base.profile)
    # A dynamic value standing alone is a condition (to boolean), as it is under and/or/not.
    return SQLCompiler(full, dialect, resolve, resolve_segment, as_of).typed(lowered, "boolean")


def timestamp_literal(value: Instant) -> exp.Expression:
    """A naive-UTC ``CAST('…' AS TIMESTAMP)`` literal for an instant (or a :class:`SqlNow`)."""
    if isinstance(value, SqlNow):
        return value.expression()
    naive = value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
    return exp.cast(exp.Literal.string(naive.isoformat(sep=" ")), exp.DataType.Type.TIMESTAMP)


def interval_literal(duration: timedelta) -> exp.Expression:
    """``INTERVAL 'n' UNIT`` in the largest unit that divides the duration."""
    micros = duration // timedelta(microseconds=1)
    if micros % 1_000_000:
        return exp.Interval(this=exp.Literal.string(str(micros)), unit=exp.var("MICROSECOND"))
    seconds = micros // 1_000_000
    for unit, size in (("DAY", 86400), ("HOUR", 3600), ("MINUTE", 60), ("SECOND", 1)):
        if seconds % size == 0:
            return exp.Interval(this=exp.Literal.string(str(seconds // size)), unit=exp.var(unit))
    raise AssertionError("unreachable")  # pragma: no cover


def paren(node: exp.Expression) -> exp.Expression:
    """Parenthesise a compound expression (sqlglot prints trees as built)."""
    return node if isinstance(node, _ATOMS) else exp.Paren(this=node)


def double(node: exp.Expression) -> exp.Expression:
    """``CAST(node AS DOUBLE)``."""
    return exp.cast(node, exp.DataType.Type.DOUBLE)


class SQLCompiler:
    """One visit method per node type; each returns the node's sqlglot expression."""

    def __init__(
        self,
        schema: TraitSchema,
        dialect: str,
        resolve: Resolve,
        resolve_segment: Resolve,
        as_of: Instant | None,
    ) -> None:
        self.schema = schema
        self.dialect = dialect
        self.resolve = resolve
        self.resolve_segment = resolve_segment
        self.as_of = as_of

    def visit(self, node: A.Expr) -> exp.Expression:
        """Compile ``node`` (children first)."""
        result: exp.Expression = getattr(self, f"visit_{type(node).__name__}")(node)
        return result

    def typed(self, node: A.Expr, target: RuleType | None) -> exp.Expression:
        """Compile ``node``, coercing it to ``target`` if it is dynamic (text)."""
        sql = self.visit(node)
        if target not in COERCIBLE or infer(node, self.schema) != "dynamic":
            return sql
        if target == "number":
            test = exp.RegexpLike(this=sql.copy(), expression=exp.Literal.string(NUMBER_PATTERN))
            return exp.Case(ifs=[exp.If(this=test, true=double(sql))])
        if target == "boolean":
            lowered = exp.Lower(this=sql)
            return exp.Case(
                ifs=[
                    exp.If(
                        this=exp.EQ(this=lowered, expression=exp.Literal.string("true")),
                        true=exp.true(),
                    ),
                    exp.If(
                        this=exp.EQ(this=lowered.copy(), expression=exp.Literal.string("false")),
                        true=exp.false(),
                    ),
                ]
            )
        return sql

    def now(self, node: A.Expr) -> Instant:
        """``as_of``, or an error naming the node that needs it."""
        if self.as_of is None:
            raise RuleError(f"'{node}' needs as_of to compile to SQL", node.span)
        return self.as_of

    def visit_Literal(self, node: A.Literal) -> exp.Expression:
        value = node.value
        if value is None:
            return exp.null()
        if isinstance(value, bool):
            return exp.true() if value else exp.false()
        if isinstance(value, str):
            return exp.Literal.string(value)
        if isinstance(value, datetime):
            return timestamp_literal(value)
        return exp.Literal.number(repr(value))

    def visit_TraitRef(self, node: A.TraitRef) -> exp.Expression:
        return self.resolve(node.name)

    def visit_Now(self, node: A.Now) -> exp.Expression:
        return timestamp_literal(self.now(node))

    def visit_Interval(self, node: A.Interval) -> exp.Expression:
        return interval_literal(node.duration)

    def visit_Arithmetic(self, node: A.Arithmetic) -> exp.Expression:
        if isinstance(node.left, A.Now) and isinstance(node.right, A.Interval):
            # now() ± interval is a constant: print the instant, which reads better.
            now, step = self.now(node.left), node.right.duration
            return timestamp_literal(now - step if node.op == "-" else now + step)
        numeric = infer(node, self.schema) == "number"
        left = self.typed(node.left, "number" if numeric else None)
        right = self.typed(node.right, "number" if numeric else None)
        if numeric:
            left, right = double(left), double(right)
        if node.op == "/":
            divisor = exp.Nullif(this=right, expression=exp.Literal.number(0))
            return exp.Div(this=left, expression=divisor)
        return _ARITH[node.op](this=paren(left), expression=paren(right))

    def visit_And(self, node: A.And) -> exp.Expression:
        return cast(
            exp.Expression, exp.and_(*(paren(self.typed(o, "boolean")) for o in node.operands))
        )

    def visit_Or(self, node: A.Or) -> exp.Expression:
        return cast(
            exp.Expression, exp.or_(*(paren(self.typed(o, "boolean")) for o in node.operands))
        )

    def visit_Not(self, node: A.Not) -> exp.Expression:
        return exp.Not(this=paren(self.typed(node.operand, "boolean")))

    def visit_Compare(self, node: A.Compare) -> exp.Expression:
        meet = meeting_type(infer(node.left, self.schema), infer(node.right, self.schema))
        left, right = self.typed(node.left, meet), self.typed(node.right, meet)
        return _COMPARE[node.op](this=paren(left), expression=paren(right))

    def visit_InList(self, node: A.InList) -> exp.Expression:
        meet = infer(node.operand, self.schema)
        for item in node.items:
            meet = meeting_type(meet, infer(item, self.schema))
        items = [self.typed(i, meet) for i in node.items]
        result = exp.In(this=paren(self.typed(node.operand, meet)), expressions=items)
        return exp.Not(this=exp.Paren(this=result)) if node.negated else result

    def visit_ListContains(self, node: A.ListContains) -> exp.Expression:
        item, container = self.typed(node.item, "string"), self.visit(node.container)
        unknown = exp.or_(
            exp.Is(this=container.copy(), expression=exp.null()),
            exp.Is(this=item.copy(), expression=exp.null()),
        )
        test = exp.ArrayContains(this=container, expression=item)
        result = exp.Case(ifs=[exp.If(this=unknown, true=exp.null())], default=test)
        return exp.Not(this=result) if node.negated else result

    def visit_Between(self, node: A.Between) -> exp.Expression:
        meet = meeting_type(infer(node.operand, self.schema), infer(node.low, self.schema))
        meet = meeting_type(meet, infer(node.high, self.schema))
        result = exp.Between(
            this=paren(self.typed(node.operand, meet)),
            low=paren(self.typed(node.low, meet)),
            high=paren(self.typed(node.high, meet)),
        )
        return exp.Not(this=exp.Paren(this=result)) if node.negated else result

    def visit_IsNull(self, node: A.IsNull) -> exp.Expression:
        result = exp.Is(this=paren(self.visit(node.operand)), expression=exp.null())
        return exp.Not(this=exp.Paren(this=result)) if node.negated else result

    def visit_Like(self, node: A.Like) -> exp.Expression:
        kind = exp.ILike if node.case_insensitive else exp.Like
        test = kind(
            this=paren(self.typed(node.operand, "string")),
            expression=paren(self.typed(node.pattern, "string")),
        )
        # Backslash escapes: say so, except on BigQuery, where it is the only (implicit) escape.
        result: exp.Expression = test
        if self.dialect != "bigquery":
            result = exp.Escape(this=test, expression=exp.Literal.string("\\"))
        return exp.Not(this=exp.Paren(this=result)) if node.negated else result

    def visit_StringMatch(self, node: A.StringMatch) -> exp.Expression:
        text, needle = self.typed(node.operand, "string"), self.typed(node.needle, "string")
        if node.case_insensitive:
            text, needle = exp.Lower(this=text), exp.Lower(this=needle)
        if node.func == "contains":
            position = exp.StrPosition(this=text, substr=needle)
            return exp.GT(this=position, expression=exp.Literal.number(0))
        part = exp.Left if node.func == "starts_with" else exp.Right
        cut = part(this=text, expression=exp.Length(this=needle.copy()))
        return exp.EQ(this=cut, expression=needle)

    def visit_Within(self, node: A.Within) -> exp.Expression:
        now = self.now(node)
        # The window excludes its lower edge, like every event window (traits' `within:`
        # and performed(within => ...)): now() - d < ts <= now().
        operand = paren(self.visit(node.operand))
        return exp.And(
            this=exp.GT(this=operand, expression=timestamp_literal(now - node.duration)),
            expression=exp.LTE(this=operand.copy(), expression=timestamp_literal(now)),
        )

    def visit_DaysSince(self, node: A.DaysSince) -> exp.Expression:
        now = self.now(node)
        if isinstance(now, SqlNow):
            start = self._epoch_of(now.expression())
        else:
            start = double(exp.Literal.number(repr(now.timestamp())))
        seconds = exp.Sub(this=start, expression=self._epoch(node.operand))
        return exp.Div(this=exp.Paren(this=seconds), expression=double(exp.Literal.number(86400)))

    def _epoch(self, node: A.Expr) -> exp.Expression:
        return self._epoch_of(self.visit(node))

    def _epoch_of(self, value: exp.Expression) -> exp.Expression:
        if self.dialect == "bigquery":
            micros = exp.func("UNIX_MICROS", exp.func("TIMESTAMP", value))
            return exp.Div(this=micros, expression=exp.Literal.number(1_000_000))
        return double(exp.TimeToUnix(this=value))

    def visit_InSegment(self, node: A.InSegment) -> exp.Expression:
        return exp.Coalesce(this=self.resolve_segment(node.segment), expressions=[exp.false()])
