"""The store suite, written once and run on DuckDB and PostgreSQL."""

from __future__ import annotations

from datetime import datetime

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segmint.store import EVENT_SCHEMA, LATEST_VERSION, Store, StoreTooNew, current_version
from segmint.store.base import migrate


def events(ids: list[str], *, event: str = "Order Completed") -> pa.Table:
    n = len(ids)
    ts = [datetime(2026, 1, 1, 12, 0, i % 60) for i in range(n)]
    return pa.table(
        {
            "message_id": ids,
            "type": ["track"] * n,
            "event": [event] * n,
            "profile_id": [f"p{i % 3}" for i in range(n)],
            "user_id": [None] * n,
            "anonymous_id": [f"a{i}" for i in range(n)],
            "timestamp": ts,
            "received_at": ts,
            "source": ["test"] * n,
            "properties": ['{"total": 12.5, "note": "caf\\u00e9, \\"quoted\\""}'] * n,
            "traits": [None] * n,
            "context": ["{}"] * n,
        },
        schema=EVENT_SCHEMA,
    )


def test_fresh_store_is_at_latest_version(store: Store) -> None:
    assert current_version(store) == LATEST_VERSION
    assert migrate(store) == LATEST_VERSION  # idempotent


def test_logical_tables_exist(store: Store) -> None:
    for table in (
        "events", "identities", "profiles", "trait_values", "memberships",
        "membership_changes", "quarantine", "consents", "suppressions", "sends", "audit_log",
    ):  # fmt: skip
        assert store.fetchall(f"SELECT count(*) FROM {table}") == [(0,)]


def test_append_is_idempotent_on_message_id(store: Store) -> None:
    assert store.append_events(events(["m1", "m2", "m3"])) == 3
    assert store.append_events(events(["m2", "m3", "m4"])) == 1
    assert store.fetchall("SELECT count(*) FROM events") == [(4,)]


def test_duplicates_inside_one_batch_are_stored_once(store: Store) -> None:
    inserted = store.append_events(events(["x", "x", "y"]), returning=True)
    assert sorted(inserted) == ["x", "y"]
    assert store.fetchall("SELECT count(*) FROM events") == [(2,)]


def test_json_properties_survive_the_round_trip(store: Store) -> None:
    store.append_events(events(["j1"]))
    sql = (
        "SELECT json_extract_string(properties, '$.note') FROM events"
        if store.dialect == "duckdb"
        else "SELECT properties->>'note' FROM events"
    )
    assert store.fetchall(sql) == [('café, "quoted"',)]


def test_timestamps_are_naive_utc(store: Store) -> None:
    store.append_events(events(["t1"]))
    assert store.fetchall("SELECT timestamp FROM events") == [(datetime(2026, 1, 1, 12, 0, 0),)]


def test_sequence_numbers_increase(store: Store) -> None:
    store.append_events(events(["s1", "s2"]))
    store.append_events(events(["s3"]))
    seqs = dict(store.fetchall("SELECT message_id, seq FROM events"))
    assert len(set(seqs.values())) == 3
    assert seqs["s3"] > max(seqs["s1"], seqs["s2"])


def test_transaction_rolls_back_on_error(store: Store) -> None:
    with pytest.raises(RuntimeError), store.transaction():
        store.execute(
            "INSERT INTO suppressions VALUES ('a@x.io', 'bounce', NULL, ?)", [datetime(2026, 1, 1)]
        )
        raise RuntimeError("boom")
    assert store.fetchall("SELECT count(*) FROM suppressions") == [(0,)]


def test_placeholders_leave_question_marks_in_strings_alone(store: Store) -> None:
    store.execute(
        "INSERT INTO meta VALUES (?, 'what? 100%')",
        ["k"],
    )
    assert store.fetchall("SELECT value FROM meta WHERE key = ?", ["k"]) == [("what? 100%",)]


def test_store_from_newer_version_is_refused(store: Store) -> None:
    store.execute("UPDATE meta SET value = '999' WHERE key = 'schema_version'")
    with pytest.raises(StoreTooNew, match="upgrade segmint"):
        migrate(store)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batches=st.lists(st.lists(st.sampled_from("abcdefgh"), max_size=6), max_size=5))
def test_nothing_lost_nothing_twice(store: Store, batches: list[list[str]]) -> None:
    store.execute("DELETE FROM events")
    for batch in batches:
        store.append_events(events(batch))
    stored = sorted(r[0] for r in store.fetchall("SELECT message_id FROM events"))
    assert stored == sorted({m for batch in batches for m in batch})


def test_the_change_log_is_indexed_by_segment_on_postgres_only(store: Store) -> None:
    # DuckDB never plans an index scan for reads by segment; the index only cost each write
    if store.dialect == "duckdb":
        sql = "SELECT index_name FROM duckdb_indexes() WHERE table_name = 'membership_changes'"
        assert store.fetchall(sql) == []
    else:
        sql = (
            "SELECT indexname FROM pg_indexes WHERE tablename = 'membership_changes' "
            "AND schemaname = current_schema()"
        )
        assert "changes_segment" in {r[0] for r in store.fetchall(sql)}


def test_duckdb_memberships_keep_their_rows_through_migration_6(tmp_path) -> None:
    import duckdb

    from segmint.store.duckdb import DuckDBStore
    from segmint.store.schema import MIGRATIONS, render

    path = tmp_path / "v5.duckdb"
    con = duckdb.connect(str(path))
    for number, ddl in MIGRATIONS:
        if number > 5:
            break
        pre, statements = render(ddl, "duckdb")
        for sql in pre + statements:
            con.execute(sql)
    con.execute("INSERT INTO meta VALUES ('schema_version', '5')")
    con.execute("INSERT INTO memberships VALUES ('vip', 'p1', TIMESTAMP '2026-01-01')")
    con.close()
    store = DuckDBStore(path)
    try:
        assert current_version(store) == LATEST_VERSION
        rows = store.fetchall("SELECT segment, profile_id, entered_at FROM memberships")
        assert rows == [("vip", "p1", datetime(2026, 1, 1))]
        indexes = {
            r[0]
            for r in store.fetchall(
                "SELECT index_name FROM duckdb_indexes() WHERE table_name = 'memberships'"
            )
        }
        assert indexes == {"memberships_profile"}
    finally:
        store.close()


def test_a_function_body_is_one_statement_of_its_migration() -> None:
    """Migrations are split at ';', but not inside a $$-quoted function body."""
    from segmint.store.schema import MIGRATIONS, render

    derived = dict(MIGRATIONS)[69]
    _, statements = render(derived, "postgres")
    assert len(statements) == 5
    assert statements[0].startswith("CREATE FUNCTION") and "RETURN NULL;" in statements[0]
    assert statements[0].endswith("$$")
    assert render(derived, "duckdb") == ([], [])
