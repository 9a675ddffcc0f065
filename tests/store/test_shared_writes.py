"""Writes of other processes run by the process holding a DuckDB file (``sharedwrite``).

The writer connects over the holder's socket as another process would (the same process
here: DuckDB's file lock is not what is tested, the protocol and the arbitration are).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pytest

from segmint.store import StoreError
from segmint.store.duckdb import DuckDBStore
from segmint.store.schema import EVENT_SCHEMA
from segmint.store.sharedwrite import SharedWriteStore, connect_shared_writes

AT = datetime(2026, 11, 1)


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[tuple[DuckDBStore, list[bool]]]:
    store = DuckDBStore(tmp_path / "held.duckdb")
    written: list[bool] = []
    store.watch_writes(written.append)
    store.share_reads()
    yield store, written
    store.close()


@pytest.fixture
def writer(holder: tuple[DuckDBStore, list[bool]]) -> Iterator[SharedWriteStore]:
    found = connect_shared_writes(holder[0].path, "the test holder")
    assert found is not None
    yield found
    found.close()


def _events(*ids: str) -> pa.Table:
    rows = [{"message_id": m, "type": "track", "event": "Viewed", "profile_id": "p1",
             "user_id": None, "anonymous_id": None, "timestamp": AT, "received_at": AT,
             "source": "test", "properties": "{}", "traits": None, "context": None}
            for m in ids]  # fmt: skip
    return pa.Table.from_pylist(rows, schema=EVENT_SCHEMA)


def test_every_store_method_writes_through_the_holder(
    holder: tuple[DuckDBStore, list[bool]], writer: SharedWriteStore
) -> None:
    store, written = holder
    assert "written through the test holder" in writer.url
    found = writer.append_events(_events("a", "b"), returning=True)
    assert set(found) == {"a", "b"}  # message id -> seq
    assert writer.append_events(_events("b", "c")) == 1  # a known id is skipped
    writer.executemany("INSERT INTO meta VALUES (?, ?)", [("k1", "1"), ("k2", "2")])
    writer.execute("UPDATE meta SET value = ? WHERE key = ?", ["3", "k2"])
    writer.register("incoming", pa.table({"key": ["k3"], "value": ["x"]}))
    writer.execute("INSERT INTO meta SELECT key, value FROM incoming")
    writer.unregister("incoming")
    assert store.fetchall("SELECT count(*) FROM events") == [(3,)]
    assert store.fetchall("SELECT key, value FROM meta WHERE key LIKE 'k%' ORDER BY key") == [
        ("k1", "1"), ("k2", "3"), ("k3", "x"),
    ]  # fmt: skip
    returned = writer.fetchall("INSERT INTO meta VALUES ('k4', '4') RETURNING key")
    assert returned == [("k4",)]
    assert written and not any(written)  # each write told the holder; none touched memberships


def test_a_transaction_commits_or_rolls_back_as_one(
    holder: tuple[DuckDBStore, list[bool]], writer: SharedWriteStore
) -> None:
    store, written = holder
    with pytest.raises(RuntimeError), writer.transaction():
        writer.execute("INSERT INTO meta VALUES ('gone', 'x')")
        raise RuntimeError("the command failed half-way")
    assert store.fetchall("SELECT count(*) FROM meta WHERE key = 'gone'") == [(0,)]
    assert written == []  # a rolled-back transaction is not announced
    with writer.transaction():
        writer.execute("INSERT INTO schedule VALUES ('p1', ?)", [AT])
    assert store.fetchall("SELECT count(*) FROM schedule") == [(1,)]
    assert written == [True]  # the real-time engine's cached tables were written


def test_the_holders_writes_wait_for_a_writers_transaction(
    holder: tuple[DuckDBStore, list[bool]], writer: SharedWriteStore
) -> None:
    store, _ = holder
    done = threading.Event()

    def holder_writes() -> None:
        with store.transaction():
            store.execute("INSERT INTO meta VALUES ('holder', 'x')")
        done.set()

    with writer.transaction():
        writer.execute("INSERT INTO meta VALUES ('writer', 'x')")
        thread = threading.Thread(target=holder_writes)
        thread.start()
        assert not done.wait(0.3)  # one writer at a time: the holder waits for the commit
    thread.join(10)
    assert done.is_set()
    rows = store.fetchall("SELECT key FROM meta WHERE key IN ('holder', 'writer') ORDER BY key")
    assert rows == [("holder",), ("writer",)]


def test_a_writer_that_disconnects_mid_transaction_is_rolled_back(
    holder: tuple[DuckDBStore, list[bool]],
) -> None:
    store, _ = holder
    writer = connect_shared_writes(store.path, "the test holder")
    assert writer is not None
    writer.execute("BEGIN TRANSACTION")
    writer.execute("INSERT INTO meta VALUES ('dropped', 'x')")
    writer.close()  # as a killed process's socket closes
    with store.transaction():  # the lock is free again (this would wait forever otherwise)
        store.execute("INSERT INTO meta VALUES ('after', 'x')")
    assert store.fetchall("SELECT key FROM meta WHERE key IN ('dropped', 'after')") == [("after",)]


def test_a_bad_statement_is_a_store_error_and_frees_nothing_twice(
    writer: SharedWriteStore,
) -> None:
    with pytest.raises(StoreError, match="no_such_table"):
        writer.execute("INSERT INTO no_such_table VALUES (1)")
    writer.execute("INSERT INTO meta VALUES ('still', 'works')")
    assert writer.fetchall("SELECT value FROM meta WHERE key = 'still'") == [("works",)]


def test_the_holder_reads_arrow_without_a_warning(holder: tuple[DuckDBStore, list[bool]]) -> None:
    """``fetch_arrow`` on the file itself (warnings are errors in this suite: DuckDB warns
    when Arrow is read from a DB-API result, which copies the rows once more)."""
    store, _ = holder
    store.executemany("INSERT INTO meta VALUES (?, ?)", [("a", "1"), ("b", "2")])
    found = store.fetch_arrow("SELECT key FROM meta WHERE key IN (?, ?) ORDER BY key", ["b", "c"])
    assert found.column(0).to_pylist() == ["b"]
