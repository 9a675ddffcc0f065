"""Reads answered by the process that holds a DuckDB file (``segmint.store.shared``)."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from segmint.store import StoreError, StoreLocked
from segmint.store.duckdb import DuckDBStore
from segmint.store.shared import SharedReadStore, connect_shared_reads, info_path


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[DuckDBStore]:
    """A DuckDB store with a small table, sharing its reads."""
    store = DuckDBStore(tmp_path / "held.duckdb")
    store.execute("CREATE TABLE t (id INTEGER, name TEXT, ts TIMESTAMP, amount DECIMAL(10, 2),"
                  " blob BLOB, tags VARCHAR[], big BIGINT)")  # fmt: skip
    store.execute(
        "INSERT INTO t VALUES (1, 'ann', TIMESTAMP '2026-11-01 10:00:00', 12.50, '\\x01'::BLOB,"
        " ['a', 'b'], 9007199254740993), (2, NULL, NULL, NULL, NULL, NULL, NULL)"
    )
    store.share_reads()
    yield store
    store.close()


@pytest.fixture
def reader(holder: DuckDBStore) -> Iterator[SharedReadStore]:
    shared = connect_shared_reads(holder.path, "the test holder")
    assert shared is not None
    yield shared
    shared.close()


def test_rows_come_back_as_fetchall_gives_them(
    holder: DuckDBStore, reader: SharedReadStore
) -> None:
    sql = "SELECT * FROM t ORDER BY id"
    assert reader.fetchall(sql) == holder.fetchall(sql)
    totals = "SELECT sum(id), count(*), sum(big) FROM t WHERE ts < ? OR ts IS NULL"
    params = [datetime(2026, 12, 1)]
    assert reader.fetchall(totals, params) == holder.fetchall(totals, params)
    assert reader.fetch_arrow("SELECT id FROM t ORDER BY id").column(0).to_pylist() == [1, 2]


@pytest.mark.parametrize(
    "value",
    [datetime(2026, 11, 1, 10, 0), datetime(2026, 11, 1, 10, tzinfo=UTC), date(2026, 11, 1),
     Decimal("12.50"), b"\x01", "ann", 1, 1.5, True, None],
)  # fmt: skip
def test_parameters_of_every_kind_round_trip(reader: SharedReadStore, value: object) -> None:
    assert reader.fetchall("SELECT ?", [value]) == DuckDBStore(":memory:").fetchall(
        "SELECT ?", [value]
    )


def test_temp_tables_and_a_transaction_last_for_the_session(reader: SharedReadStore) -> None:
    with reader.transaction():
        reader.execute("CREATE TEMP TABLE _mine AS SELECT id FROM t")
        assert reader.fetchall("SELECT count(*) FROM _mine") == [(2,)]
        reader.execute("DROP TABLE _mine")


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO t VALUES (3, 'x', NULL, NULL, NULL, NULL, NULL)",
        "UPDATE t SET name = 'x'",
        "DELETE FROM t",
        "DROP TABLE t",
        "CREATE TABLE u AS SELECT 1",
        "SELECT 1; DELETE FROM t",
        "COPY t TO 'out.csv'",
    ],
)
def test_writes_are_refused_naming_the_holder(
    holder: DuckDBStore, reader: SharedReadStore, sql: str
) -> None:
    with pytest.raises(StoreLocked, match="in use by the test holder, which answers reads only"):
        reader.execute(sql)
    assert holder.fetchall("SELECT count(*) FROM t") == [(2,)]
    assert holder.fetchall(
        "SELECT count(*) FROM information_schema.tables WHERE table_name='u'"
    ) == [(0,)]


def test_other_writing_methods_are_refused(reader: SharedReadStore) -> None:
    with pytest.raises(StoreLocked):
        reader.executemany("INSERT INTO t (id) VALUES (?)", [[1]])
    import pyarrow as pa

    with pytest.raises(StoreLocked):
        reader.append_events(pa.table({"message_id": ["m"]}))


def test_a_bad_query_is_a_store_error(reader: SharedReadStore) -> None:
    with pytest.raises(StoreError, match="nope"):
        reader.fetchall("SELECT * FROM nope")
    assert reader.fetchall("SELECT 1") == [(1,)]  # the session goes on


def test_the_info_file_is_private_and_needs_its_token(holder: DuckDBStore) -> None:
    info = info_path(holder.path)
    assert stat.S_IMODE(os.stat(info).st_mode) == 0o600
    data = json.loads(info.read_text())
    assert data["pid"] == os.getpid()
    info.write_text(json.dumps({**data, "token": "guess"}))
    forged = connect_shared_reads(holder.path, "the test holder")
    assert forged is not None
    with pytest.raises(StoreLocked, match="wrong token"):
        forged.fetchall("SELECT 1")
    forged.close()


def test_close_stops_sharing_and_removes_the_file(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "x.duckdb")
    store.share_reads()
    path = store.path
    store.close()
    assert not info_path(path).exists()
    assert connect_shared_reads(path, "gone") is None


def test_no_info_file_means_no_shared_reads(tmp_path: Path) -> None:
    assert connect_shared_reads(tmp_path / "none.duckdb", "nobody") is None


def test_a_file_left_by_another_process_is_ignored(holder: DuckDBStore) -> None:
    assert connect_shared_reads(holder.path, "someone else", pid=os.getpid() + 1) is None
    shared = connect_shared_reads(holder.path, "this process", pid=os.getpid())
    assert shared is not None
    shared.close()
