"""The SQL counterpart of next_transition: never later than the exact instant, barely earlier."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlglot import exp

from segmint.rules import TraitSchema, next_transition, next_transition_query, parse, time_leaves
from segmint.rules.timesql import MARGIN_US
from segmint.rules.timing import RECHECK

AS_OF = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SCHEMA = TraitSchema({"last_at": "timestamp", "n": "number"})
RULES = [
    "last_at >= now() - interval '30 days'",
    "days_since(last_at) > n",
    "within(last_at, '7 days')",
    "days_since(last_at) between n and n + 10",
]
ONE_CROSSING = RULES[:2]
INSTANTS = st.integers(-90 * 86400, 5 * 86400).map(lambda s: AS_OF + timedelta(seconds=s))
ROWS = st.lists(
    st.tuples(st.one_of(st.none(), INSTANTS), st.one_of(st.none(), st.integers(-5, 60))),
    min_size=1,
    max_size=8,
)


def dues(rule: str, rows: list[tuple[datetime | None, int | None]]) -> dict[str, datetime]:
    con = duckdb.connect()
    con.execute("CREATE TABLE t (profile_id TEXT, last_at TIMESTAMP, n DOUBLE)")
    con.executemany(
        "INSERT INTO t VALUES (?, ?, ?)",
        [(str(i), at.replace(tzinfo=None) if at else None, n) for i, (at, n) in enumerate(rows)],
    )
    leaves = time_leaves(parse(rule))
    query = next_transition_query(
        leaves, exp.to_table("t"), schema=SCHEMA, dialect="duckdb", as_of=AS_OF
    )
    assert query is not None
    found = con.execute(query.sql(dialect="duckdb")).fetchall()
    return {pid: due.replace(tzinfo=UTC) for pid, due in found}


@pytest.mark.parametrize("rule", RULES)
@settings(max_examples=25, deadline=None)
@given(rows=ROWS)
def test_sql_is_early_by_at_most_the_margin(rule: str, rows: list) -> None:
    got = dues(rule, rows)
    expr = parse(rule)
    for i, (at, n) in enumerate(rows):
        exact = next_transition(expr, {"last_at": at, "n": n}, AS_OF, schema=SCHEMA)
        due = got.get(str(i))
        if exact is None:
            continue  # SQL may still look again early: never a missed transition
        assert due is not None, (rule, at, n)
        assert AS_OF < due <= exact
        if rule in ONE_CROSSING:  # the crossing is the flip: early by the margin at most
            assert exact - due <= timedelta(microseconds=2 * MARGIN_US + 2)


def test_a_leaf_not_linear_in_time_is_looked_at_again() -> None:
    got = dues("days_since(last_at) * days_since(last_at) > 4", [(AS_OF, 1)])
    assert got == {"0": AS_OF + RECHECK}


def test_no_leaf_no_query() -> None:
    assert (
        next_transition_query([], exp.to_table("t"), schema=SCHEMA, dialect="duckdb", as_of=AS_OF)
        is None
    )
