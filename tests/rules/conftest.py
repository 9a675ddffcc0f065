"""Backends that evaluate a rule over profiles (and their events) in SQL and in Python.

The SQL side compiles with :func:`compile_sql` and runs on a real database: the traits
table has one typed column per trait, the events table holds JSON properties, and the
implicit traits of ``performed``/``last_performed`` are resolved to correlated subqueries
over the events (the seam the traits engine fills with materialised columns). The Python
side computes the same implicit traits from the events with :func:`compile_python`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import duckdb
import pytest
from sqlglot import exp

from segmint.rules import (
    SEGMENTS_KEY,
    EventAggregate,
    Expr,
    TraitSchema,
    compile_python,
    compile_sql,
    lower_events,
)
from segmint.rules.sqlcompile import paren, timestamp_literal

# name → (rule type, DuckDB type, PostgreSQL type)
COLUMNS: dict[str, tuple[str, str, str]] = {
    "n1": ("number", "DOUBLE", "DOUBLE PRECISION"),
    "n2": ("number", "DOUBLE", "DOUBLE PRECISION"),
    "s1": ("string", "VARCHAR", 'TEXT COLLATE "C"'),
    "s2": ("string", "VARCHAR", 'TEXT COLLATE "C"'),
    "b1": ("boolean", "BOOLEAN", "BOOLEAN"),
    "t1": ("timestamp", "TIMESTAMP", "TIMESTAMP"),
    "t2": ("timestamp", "TIMESTAMP", "TIMESTAMP"),
    "l1": ("list", "VARCHAR[]", "TEXT[]"),
    "d1": ("dynamic", "VARCHAR", 'TEXT COLLATE "C"'),
}
SEGMENTS = ("vip", "churned")
SCHEMA = TraitSchema({k: v[0] for k, v in COLUMNS.items()}, frozenset(SEGMENTS))  # type: ignore[misc]
PROPERTIES = TraitSchema.event_properties()


@dataclass
class Event:
    event: str
    timestamp: datetime
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass
class Profile:
    traits: dict[str, Any]
    segments: frozenset[str] = frozenset()
    events: list[Event] = field(default_factory=list)


def python_aggregate(agg: EventAggregate, events: list[Event], as_of: datetime) -> Any:
    """The reference value of an implicit trait, computed in Python."""
    test = compile_python(agg.where, schema=PROPERTIES) if agg.where is not None else None
    matching = [
        e
        for e in events
        if e.event == agg.event
        and e.timestamp <= as_of
        and (agg.within is None or e.timestamp > as_of - agg.within)
        and (test is None or test(e.properties, as_of) is True)
    ]
    if agg.func == "count":
        return len(matching)
    return max((e.timestamp for e in matching), default=None)


def evaluate_python(expr: Expr, profiles: list[Profile], as_of: datetime) -> list[Any]:
    fn = compile_python(expr, schema=SCHEMA)
    _, aggregates = lower_events(expr)
    out = []
    for p in profiles:
        row: dict[str, Any] = dict(p.traits)
        row[SEGMENTS_KEY] = p.segments
        for agg in aggregates:
            row[agg.name] = python_aggregate(agg, p.events, as_of)
        out.append(fn(row, as_of))
    return out


def _naive(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


class SQLBackend:
    """Runs compiled rules on one database connection."""

    def __init__(self, dialect: str, execute: Callable[..., Any], fetch: Callable[..., Any]):
        self.dialect = dialect
        self.execute = execute
        self.fetch = fetch
        self.mark = "?" if dialect == "duckdb" else "%s"

    def create(self) -> None:
        index = 1 if self.dialect == "duckdb" else 2
        cols = ", ".join(f"{n} {t[index]}" for n, t in COLUMNS.items())
        segs = ", ".join(f"__segment_{s} BOOLEAN" for s in SEGMENTS)
        json_type = "JSON"
        self.execute(f"CREATE TABLE traits (id INTEGER PRIMARY KEY, {cols}, {segs})")
        self.execute(
            "CREATE TABLE events (profile_id INTEGER, event TEXT, ts TIMESTAMP, "
            f"properties {json_type})"
        )

    def load(self, profiles: list[Profile]) -> None:
        self.execute("DELETE FROM traits")
        self.execute("DELETE FROM events")
        names = list(COLUMNS)
        marks = ", ".join([self.mark] * (len(names) + 1 + len(SEGMENTS)))
        for i, p in enumerate(profiles):
            values = [i, *(_naive(p.traits.get(n)) for n in names)]
            values += [s in p.segments for s in SEGMENTS]
            self.execute(f"INSERT INTO traits VALUES ({marks})", values)
            for e in p.events:
                four = ", ".join([self.mark] * 4)
                self.execute(
                    f"INSERT INTO events VALUES ({four})",
                    [i, e.event, _naive(e.timestamp), json.dumps(e.properties)],
                )

    def resolver(self, aggregates: tuple[EventAggregate, ...], as_of: datetime):
        by_name = {a.name: a for a in aggregates}

        def resolve(name: str) -> exp.Expression:
            if name in by_name:
                return self.subquery(by_name[name], as_of)
            return exp.column(name, "t")

        return resolve

    def subquery(self, agg: EventAggregate, as_of: datetime) -> exp.Expression:
        conditions: list[exp.Expression] = [
            exp.column("profile_id", "e").eq(exp.column("id", "t")),
            exp.column("event", "e").eq(exp.Literal.string(agg.event or "")),
            exp.column("ts", "e") <= timestamp_literal(as_of),
        ]
        if agg.within is not None:
            conditions.append(exp.column("ts", "e") > timestamp_literal(as_of - agg.within))
        if agg.where is not None:
            test = compile_sql(
                agg.where, dialect=self.dialect, schema=PROPERTIES, resolve=self.property
            )
            conditions.append(exp.Is(this=paren(test), expression=exp.true()))
        value = (
            exp.Count(this=exp.Star())
            if agg.func == "count"
            else exp.Max(this=exp.column("ts", "e"))
        )
        query = exp.select(value).from_("events AS e").where(exp.and_(*conditions))
        return exp.Subquery(this=query)

    def property(self, name: str) -> exp.Expression:
        path = exp.JSONPath(expressions=[exp.JSONPathRoot(), exp.JSONPathKey(this=name)])
        return exp.JSONExtractScalar(this=exp.column("properties", "e"), expression=path)

    def evaluate(self, expr: Expr, profiles: list[Profile], as_of: datetime) -> list[Any]:
        self.load(profiles)
        return self.query(expr, as_of)

    def query(self, expr: Expr, as_of: datetime) -> list[Any]:
        _, aggregates = lower_events(expr)
        resolve_segment = lambda s: exp.column(f"__segment_{s}", "t")  # noqa: E731
        condition = compile_sql(
            expr,
            dialect=self.dialect,
            schema=SCHEMA,
            as_of=as_of,
            resolve=self.resolver(aggregates, as_of),
            resolve_segment=resolve_segment,
        )
        sql = exp.select("t.id", condition).from_("traits AS t").order_by("t.id").sql(self.dialect)
        return [row[1] for row in self.fetch(sql)]


@pytest.fixture(scope="session")
def duck_backend() -> Iterator[SQLBackend]:
    con = duckdb.connect()
    backend = SQLBackend("duckdb", con.execute, lambda sql: con.execute(sql).fetchall())
    backend.create()
    yield backend
    con.close()


@pytest.fixture(scope="session")
def pg_backend(postgres_url: str) -> Iterator[SQLBackend]:
    import psycopg

    schema = f"rules_{uuid.uuid4().hex[:10]}"
    con = psycopg.connect(postgres_url, autocommit=True)
    con.execute(f"CREATE SCHEMA {schema}")
    con.execute(f"SET search_path TO {schema}")

    def fetch(sql: str) -> list[tuple[Any, ...]]:
        return con.execute(sql).fetchall()  # type: ignore[arg-type]

    backend = SQLBackend("postgres", lambda sql, p=None: con.execute(sql, p), fetch)
    backend.create()
    yield backend
    con.execute(f"DROP SCHEMA {schema} CASCADE")
    con.close()


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def sql_backend(request: pytest.FixtureRequest) -> SQLBackend:
    name = "duck_backend" if request.param == "duckdb" else "pg_backend"
    backend: SQLBackend = request.getfixturevalue(name)
    return backend
