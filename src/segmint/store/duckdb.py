"""The embedded default: one DuckDB file under the workspace's ``.segmint/`` folder."""

from __future__ import annotations

import os
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from segmint.store.base import Store, migrate
from segmint.store.errors import StoreError, StoreLocked
from segmint.store.schema import EVENT_COLUMNS, EVENT_SCHEMA
from segmint.store.shared import ReadServer, connect_shared_reads

_LOCK_PID = re.compile(r"PID (\d+)")
_ERASURE_HINTS: Counter[str] = Counter()
"""Per database file: erasures and other processes' writes begun through this process."""
_HINTS_LOCK = threading.Lock()


class DuckDBStore:
    """A :class:`~segmint.store.base.Store` on an embedded DuckDB database.

    One connection per store; each thread gets its own cursor, and a lock serialises
    transactions so concurrent writers in one process never interleave.
    """

    dialect = "duckdb"

    def __init__(self, path: Path | str, *, read_only: bool = False) -> None:
        self.path = str(path)
        self.url = f"duckdb:{self.path}"
        # one key per file however its path is spelled (each in-memory database its own)
        self._hint_key = (
            os.path.realpath(self.path) if self.path != ":memory:" else f":memory:{id(self)}"
        )
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._con = duckdb.connect(self.path, read_only=read_only)
        except duckdb.IOException as exc:
            raise _explain_io_error(self.path, exc) from None
        self._con.execute("SET TimeZone = 'UTC'")
        self._local = threading.local()
        self._tx_lock = threading.RLock()
        self._tx_depth = 0
        self._reads: ReadServer | None = None
        self._on_write: Callable[[bool], None] | None = None
        if not read_only:
            # Write-ahead log up to 256 MB before an automatic checkpoint: each checkpoint
            # rewrites the row groups that point updates touched (memberships, schedule,
            # trait state), so checkpointing every 16 MB (the default) rewrote the same row
            # groups over and over; measured a quarter of real-time membership CPU.
            self._con.execute("SET checkpoint_threshold = '256MB'")
            migrate(self)

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        cur: duckdb.DuckDBPyConnection | None = getattr(self._local, "cursor", None)
        if cur is None:
            cur = self._con.cursor()
            self._local.cursor = cur
        return cur

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Run one statement."""
        self._cursor().execute(sql, list(params) if params else None)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement for each row of parameters."""
        if rows:
            self._cursor().executemany(sql, [list(r) for r in rows])

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run a query and return all rows."""
        return self._cursor().execute(sql, list(params) if params else None).fetchall()

    def fetch_arrow(self, sql: str, params: Sequence[Any] = ()) -> pa.Table:
        """Run a query and return an Arrow table."""
        # (a relation, not a DB-API result: DuckDB copies the rows of the latter once more)
        return self._cursor().sql(sql, params=list(params) if params else None).to_arrow_table()

    def register(self, name: str, table: pa.Table) -> None:
        """Make an Arrow table queryable under ``name`` on this thread's cursor."""
        self._cursor().register(name, table)

    def unregister(self, name: str) -> None:
        """Forget a table registered with :meth:`register`."""
        self._cursor().unregister(name)

    def append_events(self, batch: pa.Table, *, returning: bool = False) -> dict[str, int] | int:
        """Append events through an Arrow scan, skipping known message ids.

        Duplicates inside the batch are dropped too (the first occurrence is kept).
        """
        with self.transaction():
            return insert_events(self._cursor(), batch, returning)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Run the block in one transaction (nested blocks join the outer one)."""
        with self._tx_lock:
            cur = self._cursor()
            if self._tx_depth:
                self._tx_depth += 1
                try:
                    yield
                finally:
                    self._tx_depth -= 1
                return
            cur.execute("BEGIN TRANSACTION")
            self._tx_depth = 1
            try:
                yield
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            else:
                cur.execute("COMMIT")
            finally:
                self._tx_depth = 0

    def checkpoint(self) -> None:
        """Write the write-ahead log into the database file."""
        self._cursor().execute("CHECKPOINT")

    def share_reads(self) -> ReadServer:
        """Answer other processes' reads and writes while this one holds the file.

        DuckDB lets no other process open the file while this one has it open for writing;
        a command then asks this process instead (see :mod:`segmint.store.shared` and
        :mod:`segmint.store.sharedwrite`). Stopped by :meth:`close`.
        """
        if self._reads is None:
            from segmint.store.sharedwrite import Writes

            writes = Writes(self._tx_lock, insert_events, self._written, self.note_erasure)
            self._reads = ReadServer(self._reader_connection, self.path, writes=writes).start()
        return self._reads

    def watch_writes(self, callback: Callable[[bool], None] | None) -> None:
        """Call ``callback(derived)`` after another process's write through this one committed.

        ``derived``: the write touched memberships, the schedule or trait state.
        """
        self._on_write = callback

    def erasure_hint(self) -> int:
        """A number that moves whenever an erasure may have been written to this database.

        While a process holds a DuckDB file, an erasure reaches it in one of two ways: run
        in this process (:func:`segmint.privacy.erase.erase` calls :meth:`note_erasure`
        inside its transaction), or written by another process through this one
        (:mod:`segmint.store.sharedwrite` calls it before each of that process's writes).
        Either way the number moves before the erasure commits, so a reader that saw it
        unchanged inside its own transaction knows no erasure committed since it last
        looked, without a query (the real-time engine checks it at every write).
        Shared by every store object on the same file in this process.
        """
        return _ERASURE_HINTS[self._hint_key]

    def note_erasure(self) -> None:
        """Move :meth:`erasure_hint`: an erasure (or another process's write) is under way."""
        with _HINTS_LOCK:
            _ERASURE_HINTS[self._hint_key] += 1

    def _written(self, derived: bool) -> None:
        callback = self._on_write
        if callback is not None:
            callback(derived)

    def _reader_connection(self) -> duckdb.DuckDBPyConnection:
        con = self._con.cursor()
        con.execute("SET TimeZone = 'UTC'")
        return con

    def close(self) -> None:
        """Close the database (and stop answering other processes' reads)."""
        if self._reads is not None:
            self._reads.close()
            self._reads = None
        self._con.close()


def insert_events(
    cur: duckdb.DuckDBPyConnection, batch: pa.Table, returning: bool
) -> dict[str, int] | int:
    """Insert an event batch on ``cur`` (in the caller's transaction), skipping known ids."""
    table = batch.select([n for n, _ in EVENT_COLUMNS]).cast(EVENT_SCHEMA)
    cols = ", ".join(f'"{n}"' for n, _ in EVENT_COLUMNS)
    # The window that drops in-batch duplicates costs ~20%; skip it when Arrow says
    # every id in the batch is distinct (the usual case).
    unique = pc.count_distinct(table["message_id"]).as_py() == table.num_rows
    dedupe = "" if unique else "QUALIFY row_number() OVER (PARTITION BY message_id) = 1 "
    sql = (
        f"INSERT INTO events ({cols}) SELECT {cols} FROM __segmint_batch "
        f"{dedupe}ON CONFLICT DO NOTHING"
    )
    if returning:
        sql += " RETURNING message_id, seq"
    cur.register("__segmint_batch", table)
    try:
        rows = cur.execute(sql).fetchall()
    finally:
        cur.unregister("__segmint_batch")
    if returning:
        return {r[0]: int(r[1]) for r in rows}
    return int(rows[0][0]) if rows else 0


def open_for_writes(path: Path | str) -> Store:
    """Open a DuckDB store for a command that writes.

    The file itself when no other process holds it; while a running ``segmint serve``
    holds it, a :class:`~segmint.store.sharedwrite.SharedWriteStore` whose statements that
    server runs (see :mod:`segmint.store.sharedwrite`). Otherwise the usual
    :class:`StoreLocked` error naming the holder.
    """
    from segmint.store.sharedwrite import connect_shared_writes

    return _open_or_share(path, connect_shared_writes)


def open_for_reads(path: Path | str) -> Store:
    """Open a DuckDB store for a command that only reads.

    The file itself when no other process holds it; while one does, and it shares its reads
    (a running ``segmint serve``), a :class:`~segmint.store.shared.SharedReadStore` that it
    answers. Otherwise the usual :class:`StoreLocked` error naming the holder.
    """
    return _open_or_share(path, connect_shared_reads)


def _open_or_share(path: Path | str, share: Callable[[str, str, int | None], Any]) -> Store:
    try:
        return DuckDBStore(path)
    except StoreLocked as locked:
        shared: Store | None = share(str(path), locked.holder, locked.pid)
        if shared is None:
            raise
        return shared


def _explain_io_error(path: str, exc: duckdb.IOException) -> StoreError:
    text = str(exc)
    if "lock" not in text.lower():
        return StoreError(f"cannot open {path}: {text}")
    match = _LOCK_PID.search(text)
    holder = "another process"
    if match:
        pid = match.group(1)
        holder = f"process {pid} ({_command_of(pid)})"
    return StoreLocked(
        f"the store {path} is in use by {holder}. DuckDB allows one writing process: "
        "stop that process (for example a running 'segmint serve') and retry, "
        "or use PostgreSQL (store: postgresql://…) to share the store",
        holder=holder,
        pid=int(match.group(1)) if match else None,
    )


def _command_of(pid: str) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "command unknown"
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()[:120] or "command unknown"
