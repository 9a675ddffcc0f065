"""Self-contained segment SQL: traits computed from raw events, now() left to the database."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.conftest import cli_now
from tests.membership.conftest import stored

from segmint.config.loader import load_workspace_def
from segmint.membership.compiled import CompiledSegments
from segmint.membership.segsql import memberships_sql, segment_sql
from segmint.rules import RuleNameError, SqlNow
from segmint.rules.sqlcompile import timestamp_literal
from segmint.traits.errors import EventColumnError, UnsupportedTraitError
from segmint.traits.source import EventSource, check_columns

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)

# The events as a warehouse keeps them: Segment's own column names, no profile_id.
RAW = (
    "CREATE TABLE raw_tracks AS SELECT message_id AS msg_id, profile_id AS user_id, "
    "NULL AS anonymous_id, timestamp AS sent_at, type, event, properties AS props, "
    "traits FROM events"
)
MAPPING = {
    "message_id": "msg_id",
    "profile_id": "coalesce(user_id, anonymous_id)",
    "timestamp": "sent_at",
    "properties": "props",
}


def test_every_segment_from_events_returns_refresh_members(shop):
    ws, compiled = shop
    dialect = ws.store.dialect
    for name in compiled.plan.names:  # default, parent, group, in_segment, performed
        statement = segment_sql(compiled, name, dialect=dialect, as_of=T0, events=EventSource())
        text = statement.sql(dialect)
        assert "profile_traits" not in text and statement.self_contained
        assert set(ws.store.fetchall(text)) == stored(ws.store, name), name
    everything = memberships_sql(compiled, dialect=dialect, as_of=T0, events=EventSource())
    assert set(ws.store.fetchall(everything.sql(dialect))) == stored(ws.store)
    assert {s for _, s in stored(ws.store)} >= {"prospect", "vip", "repeat", "browsers"}


def test_a_mapped_warehouse_table_gives_the_same_members(shop):
    ws, compiled = shop
    dialect = ws.store.dialect
    ws.store.execute(RAW)
    source = EventSource("raw_tracks", MAPPING)
    columns = ["msg_id", "user_id", "anonymous_id", "sent_at", "type", "event", "props", "traits"]
    check_columns(source, columns, compiled.catalog, dialect)
    statement = memberships_sql(compiled, dialect=dialect, as_of=T0, events=source)
    assert set(ws.store.fetchall(statement.sql(dialect))) == stored(ws.store)


def test_database_now_equals_the_literal_instant(shop):
    ws, compiled = shop
    dialect = ws.store.dialect
    reusable = memberships_sql(compiled, dialect=dialect, as_of=SqlNow(), events=EventSource())
    text = reusable.sql(dialect)
    assert "CURRENT_TIMESTAMP" in text.upper() and "2026-03-01" not in text
    # the same tree with the database's instant pinned to T0 selects refresh's members
    pinned = SqlNow(base=timestamp_literal(T0))
    for source in (EventSource(), None):
        got = memberships_sql(compiled, dialect=dialect, as_of=pinned, events=source)
        assert set(ws.store.fetchall(got.sql(dialect))) == stored(ws.store)


@pytest.fixture(scope="module")
def shop_compiled(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from tests.membership.conftest import SHOP

    path = tmp_path_factory.mktemp("shop") / "segmint.yaml"
    path.write_text(SHOP)
    return CompiledSegments(load_workspace_def(path))


@settings(max_examples=20, deadline=None)
@given(
    days=st.lists(st.integers(0, 120), min_size=1, max_size=8),
    totals=st.lists(st.integers(0, 1200), min_size=8, max_size=8),
    shift=st.integers(-3 * 86400, 200 * 86400),
)
def test_pinned_sqlnow_agrees_with_the_literal_instant(shop_compiled, days, totals, shift):
    """Offsets on the database's now() are the literal instant's arithmetic, at any as_of."""
    con = duckdb.connect()
    try:
        con.execute(
            "CREATE TABLE events (message_id TEXT, profile_id TEXT, timestamp TIMESTAMP, "
            "type TEXT, event TEXT, properties JSON, traits JSON)"
        )
        rows = [
            (f"m{i}", f"u{i % 3}", (T0 - d * DAY).replace(tzinfo=None), "track",
             "Order Completed", json.dumps({"total": totals[i]}), None)
            for i, d in enumerate(days)
        ]  # fmt: skip
        rows += [
            (f"o{i}", f"u{i % 2}", (T0 - d * DAY).replace(tzinfo=None), "track", "Email Opened",
             "{}", None)
            for i, d in enumerate(days)
        ]  # fmt: skip
        con.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
        at = T0 + timedelta(seconds=shift)
        literal = memberships_sql(shop_compiled, dialect="duckdb", as_of=at, events=EventSource())
        pinned = SqlNow(base=timestamp_literal(at))
        viasql = memberships_sql(
            shop_compiled, dialect="duckdb", as_of=pinned, events=EventSource()
        )
        expect = set(con.execute(literal.sql("duckdb")).fetchall())
        assert set(con.execute(viasql.sql("duckdb")).fetchall()) == expect
    finally:
        con.close()


def test_bad_input_names_the_trait_segment_and_dialect(shop):
    ws, compiled = shop
    with pytest.raises(EventColumnError) as missing:
        check_columns(
            EventSource("raw_tracks", {"properties": "props"}),
            ["message_id", "profile_id", "timestamp", "type", "event", "properties", "traits"],
            compiled.catalog,
            "postgres",
        )
    text = str(missing.value)
    assert "'props' (mapped from 'properties')" in text and "(postgres)" in text
    assert "'lifetime_value'" in text and "did you mean 'properties'" in text
    with pytest.raises(EventColumnError, match="unknown events column 'user'"):
        EventSource("raw", {"user": "user_id"})
    with pytest.raises(EventColumnError, match="not SQL for duckdb"):
        segment_sql(compiled, "vip", dialect="duckdb", as_of=T0,
                    events=EventSource("raw", {"profile_id": "coalesce(user_id,"}))  # fmt: skip
    with pytest.raises(RuleNameError, match="unknown dialect 'sparks' for segment 'vip'"):
        segment_sql(compiled, "vip", dialect="sparks", as_of=T0, events=EventSource())


def test_a_list_trait_is_refused_outside_exact_dialects(tmp_path, make_workspace):
    ws = make_workspace(
        tmp_path,
        "name: t\ntraits:\n  tags: {from: identify, type: list}\n"
        "segments:\n  tagged: {rule: \"'a' in tags\"}\n",
    )
    try:
        compiled = CompiledSegments(ws.definition)
        sql = segment_sql(compiled, "tagged", dialect="duckdb", as_of=T0, events=EventSource())
        assert "json_type" in sql.sql("duckdb").lower()
        for dialect in ("spark", "bigquery", "snowflake"):
            with pytest.raises(UnsupportedTraitError) as refused:
                segment_sql(compiled, "tagged", dialect=dialect, as_of=T0, events=EventSource())
            assert str(refused.value).startswith("segment 'tagged': trait 'tags'")
            assert dialect in str(refused.value) and refused.value.dialect == dialect
        # from segmint's traits table, the list is already computed: any dialect prints
        assert segment_sql(compiled, "tagged", dialect="spark", as_of=T0).sql("spark")
    finally:
        ws.close()


def test_cli_sql_from_events_on_a_new_workspace(
    cli, workspace, tmp_path: Path, monkeypatch
) -> None:
    path = workspace.path
    w = ("-w", str(path))
    for name in ("crm_contacts", "shop_orders"):
        assert (
            cli(*w, "ingest", str(path / "data" / f"{name}.csv"), "--mapping", name).returncode == 0
        )
    at = "2027-06-01T00:00:00Z"
    cli_now(monkeypatch, at)  # refresh refuses an instant later than now
    assert cli(*w, "refresh", "--as-of", at).returncode == 0
    names = [s["name"] for s in json.loads(cli(*w, "segments", "list", "--format", "json").stdout)]
    printed = {}
    for name in names:
        result = cli(*w, "segments", "sql", name, "--from", "events", "--as-of", at)
        assert result.returncode == 0, result.stderr
        printed[name] = result.stdout
    every = cli(*w, "memberships", "sql", "--from", "events", "--as-of", at, "--format", "json")
    assert every.returncode == 0, every.stderr
    doc = json.loads(every.stdout)
    assert doc["self_contained"] and doc["dialect"] == "duckdb"
    reusable = cli(*w, "memberships", "sql", "--from", "events", "--now", "current_timestamp")
    assert "CURRENT_TIMESTAMP" in reusable.stdout.upper()
    typo = cli(*w, "segments", "sql", "vip", "--from", "events", "--map", "properties=prop")
    assert typo.returncode != 0
    assert "column 'prop' (mapped from 'properties') is not in table 'events' (duckdb)" in (
        typo.stderr
    )
    assert "trait 'lifetime_value' reads it; it has anonymous_id, context, event" in typo.stderr
    bad = cli(*w, "segments", "sql", "vip", "--map", "profile_id=user_id")
    assert bad.returncode != 0 and "--map need --from events" in bad.stderr
    pair = cli(*w, "segments", "sql", "vip", "--from", "events", "--map", "profile_id")
    assert pair.returncode != 0 and "is not COLUMN=SQL" in pair.stderr
    workspace.close()
    con = duckdb.connect(str(path / ".segmint" / "segmint.duckdb"), read_only=True)
    try:
        members = set(con.execute("SELECT profile_id, segment FROM memberships").fetchall())
        assert set(con.execute(doc["sql"]).fetchall()) == members
        for name, text in printed.items():
            assert set(con.execute(text).fetchall()) == {m for m in members if m[1] == name}
    finally:
        con.close()
