"""Writes of other processes on an embedded DuckDB store, run by the process holding it.

While ``segmint serve`` holds a DuckDB file, no other process may open it. A command that
writes (``ingest``, ``refresh``, ``campaign send``, ``consent import``, ``keys create``, …)
then connects to the server's :class:`~segmint.store.shared.ReadServer` as a writer
(:class:`SharedWriteStore`) and the server runs each of its statements, on a connection of
the writer's own, exactly as the command would have run them on the file.

The store arbitrates: a writer's transaction (``BEGIN`` … ``COMMIT``) and each statement
that changes something outside one holds the holder's transaction lock, the same lock the
server's own writes (group commit, real-time engine) take, so writes never conflict and
commit one at a time. That also makes commit order ``seq`` order, which the server's
change feed (:mod:`segmint.membership.feed`) relies on to apply the writer's events. A
writer that disconnects inside its transaction (killed) is rolled back and the lock freed.
After each committed write the holder is told (``on_write``): the server then reads its
feed at once and, when cached tables (memberships, schedule, trait state) were written,
forgets its cache.
"""

from __future__ import annotations

import base64
import re
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from segmint.store.errors import StoreError
from segmint.store.schema import EVENT_COLUMNS, EVENT_SCHEMA
from segmint.store.shared import (
    SharedReadStore,
    _arrow_bytes,
    _arrow_table,
    _decode,
    _encode,
    _Session,
    connect_shared_reads,
)

Append = Callable[[Any, pa.Table, bool], "dict[str, int] | int"]
"""Inserts an event batch on a connection (no transaction of its own)."""
_DERIVED = re.compile(r"\b(memberships|schedule|trait_state|trait_values)\b", re.IGNORECASE)


class Writes:
    """The holder's side: runs writers' requests under its transaction lock.

    Args:
        lock: The holder's transaction lock (held by its own writing transactions too).
        append: Inserts an event batch on a connection (``DuckDBStore``'s insert).
        on_write: Called after a writer's change committed, with True when it wrote tables
            the real-time engine caches.
        on_change: Called under the lock before each of a writer's changes runs (so before
            it commits): the holder's :meth:`~segmint.store.duckdb.DuckDBStore.erasure_hint`
            moves before any commit of another process's write, an erasure among them.
    """

    def __init__(
        self,
        lock: threading.RLock,
        append: Append,
        on_write: Callable[[bool], None] | None = None,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.lock = lock
        self.append = append
        self.on_write = on_write
        self.on_change = on_change

    def answer(self, con: Any, request: dict[str, Any], session: _Session) -> pa.Table:
        """Run one writer request on the writer's connection; return its result."""
        op = request.get("op", "sql")
        if op == "sql":
            params = _decode(request.get("params")) or None
            return self._sql(con, str(request["sql"]), params, bool(request.get("rows")), session)
        if op == "many":
            sql, rows = str(request["sql"]), _decode(request["params"])
            self._change(con, session, sql, lambda: con.executemany(sql, rows))
            return pa.table({})
        table = _arrow_table(base64.b64decode(request["batch"])) if "batch" in request else None
        if op == "append" and table is not None:
            returning = bool(request.get("returning"))
            found = self._change(
                con, session, "events", lambda: self._atomic(con, session, table, returning)
            )
            if isinstance(found, dict):
                return pa.table({"message_id": list(found), "seq": list(found.values())})
            return pa.table({"count": [int(found)]})
        if op == "register" and table is not None:
            con.register(str(request["name"]), table)
            return pa.table({})
        if op == "unregister":
            con.unregister(str(request["name"]))
            return pa.table({})
        raise StoreError(f"unknown request {op!r}")

    def _sql(self, con: Any, sql: str, params: Any, rows: bool, session: _Session) -> pa.Table:
        kinds = [s.type.name for s in con.extract_statements(sql)]
        if kinds == ["TRANSACTION"]:
            self._transaction(con, sql, session)
            return pa.table({})

        if all(kind == "SELECT" for kind in kinds):
            return con.sql(sql, params=params).to_arrow_table() if rows else _run(con, sql, params)

        found: pa.Table = self._change(con, session, sql, lambda: _run(con, sql, params, rows))
        return found

    def _transaction(self, con: Any, sql: str, session: _Session) -> None:
        word = sql.split()[0].upper()
        if word in ("BEGIN", "START"):
            if session.open:
                raise StoreError("a transaction is already open")
            self.lock.acquire()
            try:
                con.execute(sql)
            except BaseException:
                self.lock.release()
                raise
            session.open, session.wrote, session.derived = True, False, False
            return
        if not session.open:
            con.execute(sql)
            return
        try:
            con.execute(sql)
        finally:
            session.open = False
            self.lock.release()
        if word in ("COMMIT", "END") and session.wrote:
            self._notify(session.derived)

    def _change(self, con: Any, session: _Session, text: str, work: Callable[[], Any]) -> Any:
        derived = bool(_DERIVED.search(text))
        if session.open:
            session.wrote = True
            session.derived = session.derived or derived
            self._changing()
            return work()
        with self.lock:
            self._changing()
            result = work()
        self._notify(derived)
        return result

    def _atomic(
        self, con: Any, session: _Session, table: pa.Table, returning: bool
    ) -> dict[str, int] | int:
        if session.open:
            return self.append(con, table, returning)
        con.execute("BEGIN TRANSACTION")
        try:
            found = self.append(con, table, returning)
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")
        return found

    def _changing(self) -> None:
        if self.on_change is not None:
            self.on_change()

    def _notify(self, derived: bool) -> None:
        if self.on_write is not None:
            self.on_write(derived)


def _run(con: Any, sql: str, params: Any, rows: bool = False) -> pa.Table:
    """Run a statement; its rows (an ``INSERT … RETURNING``) as an Arrow table if asked."""
    result = con.execute(sql, params)
    if not rows:
        return pa.table({})
    found = result.fetchall()
    names = [d[0] for d in result.description or []]
    return pa.table({n: [r[i] for r in found] for i, n in enumerate(names)})


class SharedWriteStore(SharedReadStore):
    """A :class:`~segmint.store.base.Store` whose every statement the file's holder runs.

    Open it with :func:`connect_shared_writes`.
    """

    writes = True

    def __init__(self, database: str, sock: Any, token: str, holder: str) -> None:
        super().__init__(database, sock, token, holder)
        self.url = f"duckdb:{database} (written through {holder})"

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement for each row of parameters."""
        if rows:
            self._call({"op": "many", "sql": sql, "params": _encode([list(r) for r in rows])})

    def append_events(self, batch: pa.Table, *, returning: bool = False) -> dict[str, int] | int:
        """Append events (the holder skips known message ids, as on the file)."""
        table = batch.select([n for n, _ in EVENT_COLUMNS]).cast(EVENT_SCHEMA)
        found = self._call({"op": "append", "batch": _b64(table), "returning": returning})
        if returning:
            ids, seqs = found.column("message_id").to_pylist(), found.column("seq").to_pylist()
            return {str(m): int(s) for m, s in zip(ids, seqs, strict=True)}
        return int(found.column("count")[0].as_py())

    def register(self, name: str, table: pa.Table) -> None:
        """Make an Arrow table queryable under ``name`` (sent to the holder)."""
        self._call({"op": "register", "name": name, "batch": _b64(table)})

    def unregister(self, name: str) -> None:
        """Forget a table registered with :meth:`register`."""
        self._call({"op": "unregister", "name": name})


def connect_shared_writes(
    database: str | Path, holder: str, pid: int | None = None
) -> SharedWriteStore | None:
    """Connect as a writer to the process holding ``database`` (None: it shares nothing)."""
    found = connect_shared_reads(database, holder, pid, kind=SharedWriteStore, timeout=None)
    return found if isinstance(found, SharedWriteStore) else None


def _b64(table: pa.Table) -> str:
    return base64.b64encode(_arrow_bytes(table)).decode()
