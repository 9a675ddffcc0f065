"""BigQuery and Snowflake: no server here, so the generated SQL is pinned by
a golden file, then transpiled back to DuckDB by sqlglot and run on the same events: it must
select exactly the members DuckDB's own SQL (and refresh) select.

Known limits of the portable SQL (``segmint.traits.sqldialect``): a ``string`` property that
holds a JSON float reads as its text there (DuckDB and PostgreSQL read it as NULL), and
message ids break timestamp ties in the warehouse's collation. The generated data below stays
inside what the dialects agree on: it never holds floats where text is read.

sqlglot reads Snowflake's ``TO_CHAR(ts, format)`` back as a node it cannot write for DuckDB
(it drops the format); :func:`to_duckdb` puts the equivalent ``STRFTIME`` in its place.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
import sqlglot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.scale.conftest import AS_OF

from segmint.config.loader import load_workspace_def
from segmint.membership.compiled import CompiledSegments
from segmint.membership.segsql import memberships_sql
from segmint.traits.source import EventSource

GOLDEN = Path(__file__).parent / "golden"
PORTABLE = ("bigquery", "snowflake")
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

SHOP = """
name: shop
traits:
  email: {from: identify, type: string}
  plan: {from: identify, type: string, default: free}
  orders: {count: events, event: Order Completed}
  lifetime_value: {sum: properties.total, event: Order Completed}
  biggest: {max: properties.total, event: Order Completed}
  last_purchase_at: {last: timestamp, event: Order Completed}
  first_channel: {first: properties.channel, event: Order Completed, type: string}
  favorite_category: {most_frequent: properties.category, event: Product Viewed}
  categories: {distinct_count: properties.category, event: Product Viewed}
  opens_30d: {count: events, event: Email Opened, within: 30d}
  gifts: {count: events, event: Order Completed, where: "gift"}
  days_since_purchase: {expr: "days_since(last_purchase_at)", type: number}
segments:
  recent_buyer: {rule: "last_purchase_at >= now() - interval '30 days'"}
  engaged: {rule: "opens_30d >= 3"}
  vip: {rule: "lifetime_value >= 1000", group: lifecycle, priority: 100}
  repeat: {rule: "orders >= 2", group: lifecycle, priority: 50}
  lapsed: {rule: "days_since_purchase > 60", group: lifecycle, priority: 10}
  prospect: {default: true, group: lifecycle}
  big_recent: {rule: "biggest >= 500", parent: recent_buyer}
  vip_engaged: {rule: "in_segment('vip') and in_segment('engaged')"}
  shoes: {rule: "favorite_category = 'shoes' or categories >= 3"}
  paid: {rule: "plan != 'free' and email like '%@%'"}
  web_first: {rule: "first_channel in ('web', '1') and gifts >= 1"}
  browsers:
    rule: "performed('Product Viewed', within => '7 days') and not performed('Order Completed')"
"""


SNOWFLAKE_STAMP = "yyyy-mm-DD hh24:mi:ss.ff6"  # what sqlglot writes for %Y-%m-%d %H:%M:%S.%f


def to_duckdb(text: str, dialect: str) -> str:
    """The statement read as ``dialect`` and written for DuckDB."""

    def stamp(node: sqlglot.exp.Expr) -> sqlglot.exp.Expr:
        fmt = node.args.get("format") if isinstance(node, sqlglot.exp.ToChar) else None
        if fmt is not None and fmt.name == SNOWFLAKE_STAMP:
            fixed = sqlglot.exp.Literal.string("%Y-%m-%d %H:%M:%S.%f")
            return sqlglot.exp.TimeToStr(this=node.this, format=fixed)
        return node

    return sqlglot.parse_one(text, read=dialect).transform(stamp).sql(dialect="duckdb")


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> CompiledSegments:
    path = tmp_path_factory.mktemp("shop") / "segmint.yaml"
    path.write_text(SHOP)
    return CompiledSegments(load_workspace_def(path))


@pytest.mark.parametrize("dialect", ["bigquery", "snowflake"])
def test_golden_text(shop: CompiledSegments, dialect: str) -> None:
    text = memberships_sql(shop, dialect=dialect, as_of=T0, events=EventSource()).sql(dialect)
    path = GOLDEN / f"shop_memberships.{dialect}.sql"
    if os.environ.get("SEGMINT_UPDATE_GOLDEN") == "1":
        path.write_text(text + "\n")
    assert text + "\n" == path.read_text(), f"regenerate with SEGMINT_UPDATE_GOLDEN=1: {path}"


@pytest.mark.parametrize("dialect", PORTABLE)
def test_demo_transpiled_back_gives_refresh_members(duck_demo: Any, dialect: str) -> None:
    ws, members = duck_demo
    compiled = CompiledSegments(ws.definition)
    text = memberships_sql(compiled, dialect=dialect, as_of=AS_OF, events=EventSource())
    assert set(ws.store.fetchall(to_duckdb(text.sql(dialect), dialect))) == members
    assert {s for _, s in members} >= {"new_customer", "vip", "lapsing", "engaged_readers"}


EVENTS_DDL = (
    "CREATE TABLE events (message_id TEXT, profile_id TEXT, timestamp TIMESTAMP, type TEXT, "
    "event TEXT, properties JSON, traits JSON)"
)
PEOPLE = [f"p{i}" for i in range(6)]
scalar = st.one_of(
    st.sampled_from(["shoes", "hats", "web", "app", "1", "True"]),
    st.integers(-5, 2000),
    st.booleans(),
    st.none(),
)
track = st.fixed_dictionaries(
    {
        "type": st.just("track"),
        "person": st.sampled_from(PEOPLE),
        "event": st.sampled_from(["Order Completed", "Product Viewed", "Email Opened"]),
        "minutes": st.integers(-60 * 24 * 100, 60 * 24 * 2),
        "micros": st.sampled_from([0, 0, 1, 500_000]),
        "properties": st.fixed_dictionaries(
            {},
            optional={
                "total": st.one_of(st.integers(0, 1500), st.floats(0, 1500, width=32), scalar),
                "category": scalar,
                "channel": scalar,
                "gift": st.one_of(st.booleans(), st.sampled_from(["true", "no"])),
            },
        ),
    }
)
identify = st.fixed_dictionaries(
    {
        "type": st.just("identify"),
        "person": st.sampled_from(PEOPLE),
        "event": st.none(),
        "minutes": st.integers(-60 * 24 * 100, 0),
        "micros": st.sampled_from([0, 0, 1, 500_000]),
        "properties": st.fixed_dictionaries(
            {},
            optional={
                "email": st.sampled_from(["a@x.io", "nope", "b@y.org"]),
                "plan": st.sampled_from(["free", "pro", "team"]),
            },
        ),
    }
)


@pytest.fixture(scope="module")
def statements(shop: CompiledSegments) -> dict[str, str]:
    """DuckDB's own statement, and each portable dialect's read back into DuckDB."""
    native = memberships_sql(shop, dialect="duckdb", as_of=T0, events=EventSource())
    out = {"duckdb": native.sql("duckdb")}
    for dialect in PORTABLE:
        text = memberships_sql(shop, dialect=dialect, as_of=T0, events=EventSource())
        out[dialect] = to_duckdb(text.sql(dialect), dialect)
    return out


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages=st.lists(st.one_of(track, identify), max_size=40))
def test_generated_events_agree_after_transpiling_back(
    statements: dict[str, str], messages: list[dict[str, Any]]
) -> None:
    con = duckdb.connect()
    try:
        con.execute(EVENTS_DDL)
        rows = []
        for i, m in enumerate(messages):
            at = T0 + timedelta(minutes=m["minutes"], microseconds=m["micros"])
            body = json.dumps(m["properties"])
            props, traits = (body, None) if m["type"] == "track" else (None, body)
            rows.append(
                (
                    f"m{i:03d}",
                    m["person"],
                    at.replace(tzinfo=None),
                    m["type"],
                    m["event"],
                    props,
                    traits,
                )
            )
        if rows:
            con.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
        expect = set(con.execute(statements["duckdb"]).fetchall())
        for dialect in PORTABLE:
            assert set(con.execute(statements[dialect]).fetchall()) == expect, dialect
    finally:
        con.close()
