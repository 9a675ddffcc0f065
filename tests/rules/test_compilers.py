"""Compiler seams: getters and resolvers, dialects, quoting, as_of."""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb
import pytest
import sqlglot
from sqlglot import exp

from segmint.rules import (
    DIALECTS,
    RuleError,
    TraitSchema,
    compile_python,
    compile_sql,
    memberships_resolver,
    parse,
)

AS_OF = datetime(2024, 5, 1, tzinfo=UTC)
EVERYTHING = (
    "n1 + n2 * 2 / 3 - 1 > 0 and s1 in ('a', 'b') and 'x' in l1 and n1 between 1 and 2"
    " and s1 is not null and s1 ilike 'a%' and not icontains(s1, 'b') and ends_with(s1, 'z')"
    " and within(t1, '3 days') and days_since(t1) > 1.5 and t1 > now() - interval '2 hours'"
    " and performed('E', at_least => 2, within => '7 days', where => 'total > 5')"
    " and last_performed('E') < timestamp '2024-01-01T00:00:00Z' and in_segment('vip')"
    " and (b1 or d1 = 3)"
)
SCHEMA = TraitSchema(
    {
        "n1": "number", "n2": "number", "s1": "string", "l1": "list", "t1": "timestamp",
        "b1": "boolean", "d1": "dynamic",
    }
)  # fmt: skip


@pytest.mark.parametrize("dialect", DIALECTS)
def test_every_dialect_renders_sql_that_parses(dialect: str) -> None:
    sql = compile_sql(parse(EVERYTHING), dialect=dialect, schema=SCHEMA, as_of=AS_OF).sql(dialect)
    assert sqlglot.parse_one(f"SELECT 1 WHERE {sql}", read=dialect) is not None


def test_literals_are_quoted_by_sqlglot() -> None:
    text = "s1 = 'x''; DROP TABLE t; --'"
    sql = compile_sql(parse(text)).sql("duckdb")
    con = duckdb.connect()
    con.execute("CREATE TABLE t (s1 TEXT)")
    con.execute("INSERT INTO t VALUES ('x''; DROP TABLE t; --')")
    assert con.execute(f"SELECT {sql} FROM t").fetchall() == [(True,)]
    assert con.execute("SELECT count(*) FROM t").fetchall() == [(1,)]


def test_python_constants_are_bound_not_pasted() -> None:
    fn = compile_python(parse("s1 = 'x'' + __import__(''os'').getcwd() + ''' and \"we'ird\" > 1"))
    assert fn({"s1": "x' + __import__('os').getcwd() + '", "we'ird": 2}, AS_OF) is True


def test_time_needs_as_of_in_sql() -> None:
    with pytest.raises(RuleError, match="needs as_of"):
        compile_sql(parse("t1 > now()"))


def test_where_filter_over_event_properties_with_getter_and_resolver() -> None:
    where = parse("total > 50 and currency = 'EUR'")
    schema = TraitSchema.event_properties()
    fn = compile_python(where, schema=schema, getter=lambda n: lambda e: e["properties"].get(n))
    assert fn({"properties": {"total": "60", "currency": "EUR"}}, AS_OF) is True
    assert fn({"properties": {"total": "many", "currency": "EUR"}}, AS_OF) is None
    as_dict = compile_python(where, schema=schema)
    assert as_dict({"total": 75.5, "currency": "EUR"}, AS_OF) is True

    def resolve(name: str) -> exp.Expression:
        path = exp.JSONPath(expressions=[exp.JSONPathRoot(), exp.JSONPathKey(this=name)])
        return exp.JSONExtractScalar(this=exp.column("properties"), expression=path)

    sql = compile_sql(where, schema=schema, resolve=resolve).sql("duckdb")
    con = duckdb.connect()
    rows = con.execute(
        f'SELECT {sql} FROM (VALUES (\'{{"total": 60, "currency": "EUR"}}\'::JSON), '
        '(\'{"total": "many"}\'::JSON)) AS v(properties)'
    ).fetchall()
    assert rows == [(True,), (None,)]


def test_memberships_resolver_reads_the_memberships_table() -> None:
    condition = compile_sql(
        parse("in_segment('vip')"),
        resolve_segment=memberships_resolver(exp.column("profile_id", "p")),
    )
    con = duckdb.connect()
    con.execute("CREATE TABLE memberships (segment TEXT, profile_id TEXT)")
    con.execute("INSERT INTO memberships VALUES ('vip', 'a'), ('other', 'b')")
    sql = f"SELECT p.profile_id, {condition.sql('duckdb')} FROM (VALUES ('a'), ('b')) p(profile_id)"
    assert sorted(con.execute(sql).fetchall()) == [("a", True), ("b", False)]


def test_python_membership_key() -> None:
    fn = compile_python(parse("in_segment('vip') and not in_segment('churned')"))
    assert fn({"__segments__": {"vip"}}, AS_OF) is True
    assert fn({}, AS_OF) is False


def test_a_quotient_by_zero_is_null_inside_a_comparison() -> None:
    # Found by the agreement property test: the comparison tested only the operands of
    # ``n / 0`` for NULL, then compared None with a number.
    from datetime import UTC, datetime

    from segmint.rules import TraitSchema, compile_python, parse

    schema = TraitSchema({"n": "number", "d": "dynamic"})
    at = datetime(2026, 11, 1, tzinfo=UTC)
    for text in ("n / 0 < n", "(d + n = d + n) and (n / 0 < n)", "n / 0 = n or n > 5"):
        assert compile_python(parse(text), schema=schema)({"n": -2, "d": None}, at) is None
    assert compile_python(parse("n / 0 < n or n < 0"), schema=schema)({"n": -2}, at) is True
