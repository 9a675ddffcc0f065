"""Dialect-specific pieces of the batch SQL: JSON access, coercions and ordered picks.

Everything is a sqlglot expression. DuckDB and PostgreSQL get exact implementations of the
coercion rule (:mod:`segmint.traits.coerce`) and of the (timestamp, message_id) tie-break;
Spark, BigQuery and Snowflake get the closest portable form (JSON text read with sqlglot's
generic JSON extraction; ``MAX_BY``/``MIN_BY`` picks), which agrees except on the edge
cases the coercion module lists and on exact timestamp ties.
"""

from __future__ import annotations

from functools import lru_cache

import sqlglot
from sqlglot import exp

from segmint.rules.semantics import NUMBER_PATTERN
from segmint.traits.coerce import INTEGER_PATTERN, TIMESTAMP_PATTERN, ValueKind

Path = tuple[str, ...]
EXACT = ("duckdb", "postgres")
"""The dialects whose SQL the test suite runs natively (the others are transpiled back)."""


@lru_cache(maxsize=64)
def _template(sql: str, dialect: str) -> exp.Expr:
    return sqlglot.parse_one(sql, read=dialect)


def fill(sql: str, dialect: str, **parts: exp.Expr) -> exp.Expr:
    """Parse a fixed SQL template once and put expressions in place of ``__name`` columns.

    Templates are constant text written here; values only ever enter as sqlglot nodes.
    """

    def swap(node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.Column) and node.name.startswith("__") and not node.table:
            return parts[node.name[2:]].copy()
        return node

    return _template(sql, dialect).copy().transform(swap)


class SqlDialect:
    """The generic form, used to print SQL for Spark, BigQuery and Snowflake."""

    def __init__(self, name: str) -> None:
        self.name = name

    def text(self, column: str, path: Path) -> exp.Expr:
        """The JSON value at ``path`` as text (NULL when absent or JSON null)."""
        keys = [exp.JSONPathKey(this=k) for k in path]
        json_path = exp.JSONPath(expressions=[exp.JSONPathRoot(), *keys])
        return exp.JSONExtractScalar(this=exp.column(column), expression=json_path)

    def matches(self, text: exp.Expr, pattern: str) -> exp.Expr:
        """``text`` matches the anchored regular expression ``pattern``."""
        return exp.RegexpLike(this=text, expression=exp.Literal.string(pattern))

    def coerce(self, column: str, path: Path, kind: ValueKind) -> exp.Expr:
        """The value at ``path`` under the coercion rule for ``kind``."""
        text = self.text(column, path)
        if kind == "number":
            return _when(self.matches(text, NUMBER_PATTERN), exp.cast(text.copy(), "DOUBLE"))
        if kind == "boolean":
            return self.boolean(text)
        if kind == "timestamp":
            return _when(self.matches(text, TIMESTAMP_PATTERN), self.timestamp(text.copy()))
        if kind == "list":
            return self.array(column, path)
        return self.text_kind(column, path, text)

    def boolean(self, text: exp.Expr) -> exp.Expr:
        """``true``/``false`` text in any case as a boolean, else NULL."""
        lowered = exp.Lower(this=text)
        return exp.Case(
            ifs=[
                exp.If(this=exp.EQ(this=lowered, expression=exp.Literal.string("true")),
                       true=exp.true()),
                exp.If(this=exp.EQ(this=lowered.copy(), expression=exp.Literal.string("false")),
                       true=exp.false()),
            ]
        )  # fmt: skip

    def timestamp(self, text: exp.Expr) -> exp.Expr:
        """An ISO text (``Z`` or ``+00:00`` allowed) as a naive UTC timestamp."""
        return exp.TryCast(this=_strip_zone(text), to=exp.DataType.build("TIMESTAMP"))

    def text_kind(self, column: str, path: Path, text: exp.Expr) -> exp.Expr:
        """The ``text`` coercion (generic form: the scalar's text)."""
        return text

    def array(self, column: str, path: Path) -> exp.Expr:
        """The JSON array at ``path`` (generic form: the JSON text)."""
        return self.text(column, path)

    def pick(self, value: exp.Expr, cond: exp.Expr | None, last: bool) -> exp.Expr:
        """The value of the matching row with the latest (or earliest) (ts, mid).

        The key is the timestamp as fixed-width text followed by the message id, so text
        order is (ts, mid) order on every warehouse (ids compare in its collation).
        """
        valid = _and(cond, exp.Not(this=exp.Is(this=value.copy(), expression=exp.null())))
        ts: exp.Expr = exp.column("ts")
        if self.name == "bigquery":  # FORMAT_DATETIME, not FORMAT_DATE (which drops the time)
            ts = exp.TsOrDsToDatetime(this=ts)
        stamp = exp.TimeToStr(this=ts, format=exp.Literal.string("%Y-%m-%d %H:%M:%S.%f"))
        keyed = _when(valid, exp.Concat(expressions=[stamp, exp.column("mid")]))
        cls = exp.ArgMax if last else exp.ArgMin
        return cls(this=_when(valid.copy(), value), expression=keyed)

    def ranked(self, counts: exp.Select) -> exp.Select:
        """Rows (profile_id, v, n) ranked ``r`` by n descending, then v (generic form)."""
        order = exp.Order(
            expressions=[
                exp.Ordered(this=exp.column("n"), desc=True),
                exp.Ordered(this=exp.column("v")),
            ]
        )
        rank = exp.Window(
            this=exp.RowNumber(), partition_by=[exp.column("profile_id")], order=order
        )
        return exp.select("*", exp.alias_(rank, "r")).from_(counts.subquery("c0"))

    def mode(self) -> exp.Expr:
        """Over ranked rows (v, n, r): the v with the largest n, the smallest v on a tie."""
        first = exp.EQ(this=exp.column("r"), expression=exp.Literal.number(1))
        return exp.Max(this=_when(first, exp.column("v")))

    def json_object(self, pairs: list[tuple[str, exp.Expr]]) -> exp.Expr:
        """A JSON object of the given keys and values."""
        args: list[exp.Expr] = []
        for key, value in pairs:
            args += [exp.Literal.string(key), value]
        return exp.Anonymous(this="json_object", expressions=args)

    def iso(self, value: exp.Expr) -> exp.Expr:
        """A timestamp as ISO 8601 text with a ``Z``."""
        return exp.TimeToStr(this=value, format=exp.Literal.string("%Y-%m-%dT%H:%M:%S.%fZ"))


class DuckDBDialect(SqlDialect):
    """DuckDB: ``json_type`` for exact coercion, ``arg_max`` with a (ts, mid) key."""

    def __init__(self) -> None:
        super().__init__("duckdb")

    def _path(self, path: Path) -> exp.Expr:
        return exp.Literal.string("$." + ".".join(_quote_key(k) for k in path))

    def text(self, column: str, path: Path) -> exp.Expr:
        """``json_extract_string(col, '$.a.b')``."""
        return exp.Anonymous(
            this="json_extract_string", expressions=[exp.column(column), self._path(path)]
        )

    def _type(self, column: str, path: Path) -> exp.Expr:
        return exp.Anonymous(this="json_type", expressions=[exp.column(column), self._path(path)])

    def matches(self, text: exp.Expr, pattern: str) -> exp.Expr:
        """``regexp_full_match`` (patterns here are anchored anyway)."""
        return exp.Anonymous(
            this="regexp_full_match", expressions=[text, exp.Literal.string(pattern)]
        )

    def text_kind(self, column: str, path: Path, text: exp.Expr) -> exp.Expr:
        """Strings and booleans as their text; integers of at most 18 digits."""
        kind = self._type(column, path)
        plain = exp.In(
            this=kind, expressions=[exp.Literal.string("VARCHAR"), exp.Literal.string("BOOLEAN")]
        )
        integer = exp.and_(
            exp.In(
                this=kind.copy(),
                expressions=[exp.Literal.string("BIGINT"), exp.Literal.string("UBIGINT")],
            ),
            self.matches(text.copy(), INTEGER_PATTERN),
        )
        return _when(exp.or_(plain, integer), text)

    def array(self, column: str, path: Path) -> exp.Expr:
        """The JSON array, or NULL."""
        found = exp.Anonymous(
            this="json_extract", expressions=[exp.column(column), self._path(path)]
        )
        is_array = exp.EQ(this=self._type(column, path), expression=exp.Literal.string("ARRAY"))
        return _when(is_array, found)

    def pick(self, value: exp.Expr, cond: exp.Expr | None, last: bool) -> exp.Expr:
        """``arg_max(v, (ts, mid)) FILTER (WHERE cond AND v IS NOT NULL)``."""
        sql = "ARG_MAX(__v, (ts, mid))" if last else "ARG_MIN(__v, (ts, mid))"
        return _filtered(fill(sql, "duckdb", v=value), cond, value)

    def ranked(self, counts: exp.Select) -> exp.Select:
        """The counts as they are (:meth:`mode` breaks ties itself)."""
        return counts

    def mode(self) -> exp.Expr:
        """``arg_min(v, (-n, v))``: the most frequent, then the smallest."""
        return fill("ARG_MIN(v, (-n, v))", "duckdb")

    def iso(self, value: exp.Expr) -> exp.Expr:
        """``strftime(ts, '%Y-%m-%dT%H:%M:%S.%fZ')``."""
        return exp.Anonymous(
            this="strftime", expressions=[value, exp.Literal.string("%Y-%m-%dT%H:%M:%S.%fZ")]
        )


class PostgresDialect(SqlDialect):
    """PostgreSQL: ``jsonb_typeof`` for exact coercion, ordered ``array_agg`` picks."""

    def __init__(self) -> None:
        super().__init__("postgres")

    def _args(self, column: str, path: Path) -> list[exp.Expr]:
        return [exp.column(column), *(exp.Literal.string(k) for k in path)]

    def text(self, column: str, path: Path) -> exp.Expr:
        """``jsonb_extract_path_text(col, 'a', 'b')``."""
        return exp.Anonymous(this="jsonb_extract_path_text", expressions=self._args(column, path))

    def _type(self, column: str, path: Path) -> exp.Expr:
        inner = exp.Anonymous(this="jsonb_extract_path", expressions=self._args(column, path))
        return exp.Anonymous(this="jsonb_typeof", expressions=[inner])

    def matches(self, text: exp.Expr, pattern: str) -> exp.Expr:
        """``text ~ pattern``."""
        return exp.RegexpLike(this=text, expression=exp.Literal.string(pattern))

    def timestamp(self, text: exp.Expr) -> exp.Expr:
        """``CAST(replace(text, 'Z', '') AS TIMESTAMP)`` (the pattern was checked first)."""
        return exp.cast(_strip_zone(text), "TIMESTAMP")

    def text_kind(self, column: str, path: Path, text: exp.Expr) -> exp.Expr:
        """Strings and booleans as their text; integers of at most 18 digits."""
        kind = self._type(column, path)
        plain = exp.In(
            this=kind, expressions=[exp.Literal.string("string"), exp.Literal.string("boolean")]
        )
        integer = exp.and_(
            exp.EQ(this=kind.copy(), expression=exp.Literal.string("number")),
            self.matches(text.copy(), INTEGER_PATTERN),
        )
        return _when(exp.or_(plain, integer), text)

    def array(self, column: str, path: Path) -> exp.Expr:
        """The JSON array, or NULL."""
        found = exp.Anonymous(this="jsonb_extract_path", expressions=self._args(column, path))
        is_array = exp.EQ(this=self._type(column, path), expression=exp.Literal.string("array"))
        return _when(is_array, found)

    def pick(self, value: exp.Expr, cond: exp.Expr | None, last: bool) -> exp.Expr:
        """``(array_agg(v ORDER BY ts, mid COLLATE "C") FILTER (WHERE …))[1]``."""
        order = "DESC" if last else "ASC"
        sql = f'ARRAY_AGG(__v ORDER BY ts {order}, mid COLLATE "C" {order})'
        agg = _filtered(fill(sql, "postgres", v=value), cond, value)
        return fill("(__a)[1]", "postgres", a=agg)

    def ranked(self, counts: exp.Select) -> exp.Select:
        """The counts as they are (:meth:`mode` breaks ties itself)."""
        return counts

    def mode(self) -> exp.Expr:
        """``(array_agg(v ORDER BY n DESC, v COLLATE "C"))[1]``."""
        return fill('(ARRAY_AGG(v ORDER BY n DESC, v COLLATE "C"))[1]', "postgres")

    def json_object(self, pairs: list[tuple[str, exp.Expr]]) -> exp.Expr:
        """``jsonb_build_object(…) || …`` in chunks (a function takes at most 100 arguments)."""
        parts: list[exp.Expr] = []
        for start in range(0, len(pairs), 40):
            args: list[exp.Expr] = []
            for key, value in pairs[start : start + 40]:
                args += [exp.Literal.string(key), value]
            parts.append(exp.Anonymous(this="jsonb_build_object", expressions=args))
        result = parts[0] if parts else exp.Anonymous(this="jsonb_build_object", expressions=[])
        for part in parts[1:]:
            result = exp.DPipe(this=result, expression=part)
        return result

    def iso(self, value: exp.Expr) -> exp.Expr:
        """``to_char(ts, 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')``."""
        fmt = exp.Literal.string('YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
        return exp.Anonymous(this="to_char", expressions=[value, fmt])


def dialect_for(name: str) -> SqlDialect:
    """The SQL pieces for a sqlglot dialect name."""
    if name == "duckdb":
        return DuckDBDialect()
    if name == "postgres":
        return PostgresDialect()
    return SqlDialect(name)


def _when(cond: exp.Expr | None, value: exp.Expr) -> exp.Expr:
    if cond is None:
        return value
    return exp.Case(ifs=[exp.If(this=cond, true=value)])


def _and(left: exp.Expr | None, right: exp.Expr) -> exp.Expr:
    return right if left is None else exp.and_(left, right)


def _filtered(agg: exp.Expr, cond: exp.Expr | None, value: exp.Expr) -> exp.Expr:
    valid = _and(cond, exp.Not(this=exp.Is(this=value.copy(), expression=exp.null())))
    return exp.Filter(this=agg, expression=exp.Where(this=valid))


def _strip_zone(text: exp.Expr) -> exp.Expr:
    without_z = exp.Replace(this=text, expression=exp.Literal.string("Z"),
                            replacement=exp.Literal.string(""))  # fmt: skip
    return exp.Replace(this=without_z, expression=exp.Literal.string("+00:00"),
                       replacement=exp.Literal.string(""))  # fmt: skip


def _quote_key(key: str) -> str:
    if key.isidentifier():
        return key
    return '"' + key.replace('"', '\\"') + '"'
