"""Reads of an embedded DuckDB store that another process holds open for writing.

DuckDB lets one process open a database file for writing, and then no other process may
open it at all, not even read-only (checked with DuckDB 1.x/2.x: ``duckdb.connect(path,
read_only=True)`` fails with "Conflicting lock is held in … (PID n)"). A copy of the file
is no answer either: it misses the write-ahead log and may be torn while the holder writes.

So the holder (``segmint serve``) answers reads itself. :class:`ReadServer` listens on
127.0.0.1 on a free port and writes ``<database>.reads`` beside the file (mode 0600: the
port, a random token, its PID); only someone who may read that file can connect. A command
that only reads and finds the file locked opens a :class:`SharedReadStore` instead: the
same :class:`~segmint.store.base.Store` methods, each statement run by the holder on a
connection of its own (one per reader, so temporary tables and a transaction's snapshot
last for the reader's session). The holder runs only what cannot change the database:
``SELECT``, ``BEGIN``/``COMMIT``/``ROLLBACK``, and ``CREATE TEMP TABLE``/``DROP TABLE`` of
the reader's own temporary tables. Anything else is refused with the holder named, and
the reader raises :class:`~segmint.store.errors.StoreLocked`.

Wire format: each message is a 4-byte big-endian length and a body. A request body is JSON
``{"token", "sql", "params", "rows"}`` (parameters tagged for datetimes, dates, bytes and
decimals); a reply is a zero byte and an Arrow IPC stream, or a one byte and a JSON error.
"""

from __future__ import annotations

import base64
import contextlib
import hmac
import json
import os
import re
import secrets
import socket
import socketserver
import struct
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from segmint.store.errors import StoreError, StoreLocked

if TYPE_CHECKING:
    import duckdb

    from segmint.store.sharedwrite import Writes

_HEADER = struct.Struct(">I")
_MAX_MESSAGE = 64 * 1024 * 1024
_CREATE_TEMP = re.compile(r"^\s*CREATE\s+TEMP(?:ORARY)?\s+TABLE\s+(\"?)(\w+)\1\s", re.IGNORECASE)
_DROP = re.compile(r"^\s*DROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?(\"?)(\w+)\1\s*;?\s*$", re.IGNORECASE)


def info_path(database: str | Path) -> Path:
    """Where the holder of ``database`` says how to reach its :class:`ReadServer`."""
    return Path(f"{database}.reads")


# --- the holder's side ---------------------------------------------------------------------


class _Session:
    """One connected process: whether it holds the write lock in an open transaction."""

    def __init__(self) -> None:
        self.open = False  # inside BEGIN … COMMIT, holding the holder's write lock
        self.wrote = False  # the open transaction changed something
        self.derived = False  # … in tables the real-time engine caches


class ReadServer:
    """Answers read-only statements of other processes on the holder's DuckDB database.

    Args:
        connect: Returns a new connection (cursor) to the database, one per reader.
        database: The database file; its ``.reads`` file is written beside it.
        writes: How to run other processes' writes (None: reads only); see :class:`Writes`.
    """

    def __init__(
        self,
        connect: Any,
        database: str | Path,
        *,
        writes: Writes | None = None,
    ) -> None:
        self._connect = connect
        self._writes = writes
        self.info = info_path(database)
        self.token = secrets.token_hex(16)
        server = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                server._serve(self.request)

        # Readers being answered, so that close() ends them before the database closes: a
        # connection closed under a reader's running cursor fails ("connection is busy").
        self._clients: set[socket.socket] = set()
        self._idle = threading.Condition()
        self._tcp = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._tcp.daemon_threads = True
        self._thread = threading.Thread(
            target=self._tcp.serve_forever, args=(0.05,), name="segmint-shared-reads", daemon=True
        )

    @property
    def port(self) -> int:
        """The port it listens on."""
        return int(self._tcp.server_address[1])

    def start(self) -> ReadServer:
        """Start listening and publish the ``.reads`` file."""
        self._thread.start()
        text = json.dumps({"pid": os.getpid(), "port": self.port, "token": self.token})
        temporary = self.info.with_name(self.info.name + f".{os.getpid()}")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(text)
        temporary.replace(self.info)
        return self

    def close(self) -> None:
        """Stop listening and remove the ``.reads`` file (if it is still this server's)."""
        with contextlib.suppress(OSError, ValueError):
            if json.loads(self.info.read_text())["token"] == self.token:
                self.info.unlink()
        self._tcp.shutdown()
        self._tcp.server_close()
        with self._idle:
            for sock in self._clients:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)  # a reader waiting for its next query
            self._idle.wait_for(lambda: not self._clients, timeout=10)

    def _serve(self, sock: socket.socket) -> None:
        with self._idle:
            self._clients.add(sock)
        try:
            self._answer_all(sock)
        finally:
            with self._idle:
                self._clients.discard(sock)
                self._idle.notify_all()

    def _answer_all(self, sock: socket.socket) -> None:
        con: duckdb.DuckDBPyConnection = self._connect()
        temporary: set[str] = set()
        session = _Session()
        try:
            while (body := _receive(sock)) is not None:
                _send(sock, self._answer(con, body, temporary, session))
        except OSError:
            pass  # the reader went away
        finally:
            if session.open and self._writes is not None:
                # a writer that died inside its transaction (kill -9): nothing of it stays
                with contextlib.suppress(Exception):
                    con.execute("ROLLBACK")
                self._writes.lock.release()
            # The holder may have closed the database meanwhile (a stop while a reader was
            # connected): closing this reader's cursor then fails, and nothing is left to do.
            with contextlib.suppress(Exception):
                con.close()

    def _answer(self, con: Any, body: bytes, temporary: set[str], session: _Session) -> bytes:
        try:
            request = json.loads(body)
            if not hmac.compare_digest(str(request.get("token", "")), self.token):
                return _error("refused", "wrong token")
            if request.get("write"):
                if self._writes is None:
                    return _error("refused", "this process answers reads only")
                table = self._writes.answer(con, request, session)
                return _table_reply(table)
            sql, rows = str(request["sql"]), bool(request.get("rows"))
            refusal = _refusal(con, sql, temporary)
            if refusal is not None:
                return _error("refused", refusal)
            params = _decode(request.get("params")) or None
            if rows:
                table = con.sql(sql, params=params).to_arrow_table()
            else:
                con.execute(sql, params)
                table = pa.table({})
        except Exception as exc:  # noqa: BLE001 (every failure goes back to the reader)
            return _error("error", f"{type(exc).__name__}: {exc}")
        return _table_reply(table)


def _table_reply(table: pa.Table) -> bytes:
    return b"\0" + _arrow_bytes(table)


def _arrow_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def _arrow_table(data: bytes) -> pa.Table:
    return pa.ipc.open_stream(data).read_all()


def _refusal(con: Any, sql: str, temporary: set[str]) -> str | None:
    """Why ``sql`` may not run for a reader (None: it may)."""
    kinds = [s.type.name for s in con.extract_statements(sql)]
    if kinds == ["SELECT"] or kinds == ["TRANSACTION"]:
        return None
    if kinds == ["CREATE"] and (match := _CREATE_TEMP.match(sql)):
        temporary.add(match.group(2).lower())
        return None
    if kinds == ["DROP"] and (match := _DROP.match(sql)) and match.group(2).lower() in temporary:
        temporary.discard(match.group(2).lower())
        return None
    return f"only reads are answered for other processes, not {'/'.join(kinds) or 'this'}"


# --- the reader's side ---------------------------------------------------------------------


class SharedReadStore:
    """A read-only :class:`~segmint.store.base.Store` answered by the holder of the file.

    Open it with :func:`connect_shared_reads`; writing methods raise
    :class:`~segmint.store.errors.StoreLocked` naming the holder.
    """

    dialect = "duckdb"

    def __init__(self, database: str, sock: socket.socket, token: str, holder: str) -> None:
        self.path = database
        self.url = f"duckdb:{database} (read through {holder})"
        self.holder = holder
        self._sock = sock
        self._token = token
        self._lock = threading.RLock()
        self._depth = 0

    writes = False
    """Whether the holder runs this store's writes too (:class:`~.sharedwrite.SharedWriteStore`)."""

    def _request(self, sql: str, params: Sequence[Any], rows: bool) -> pa.Table:
        return self._call({"sql": sql, "params": _encode(list(params)), "rows": rows})

    def _call(self, request: dict[str, Any]) -> pa.Table:
        head = {"token": self._token, "write": True} if self.writes else {"token": self._token}
        body = json.dumps({**head, **request}).encode()
        with self._lock:
            try:
                _send(self._sock, body)
                reply = _receive(self._sock)
            except OSError as exc:
                raise StoreError(f"lost the connection to {self.holder}: {exc}") from None
        if reply is None:
            raise StoreError(f"{self.holder} closed the connection (did it stop?)")
        if reply[:1] == b"\1":
            problem = json.loads(reply[1:])
            if problem["kind"] == "refused":
                raise self._locked(problem["message"])
            raise StoreError(problem["message"])
        return _arrow_table(reply[1:])

    def _locked(self, why: str) -> StoreLocked:
        return StoreLocked(
            f"the store {self.path} is in use by {self.holder}, which answers reads only "
            f"({why}). DuckDB allows one writing process: stop that process and retry, "
            "or use PostgreSQL (store: postgresql://…) to share the store"
        )

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Run one statement (reads, transactions and temporary tables only)."""
        self._request(sql, params, rows=False)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Refused: a reader does not write."""
        raise self._locked("a statement for many rows")

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run a query and return all rows."""
        table = self._request(sql, params, rows=True)
        columns = [_python(table.column(i)) for i in range(table.num_columns)]
        return list(zip(*columns, strict=True)) if columns else []

    def fetch_arrow(self, sql: str, params: Sequence[Any] = ()) -> pa.Table:
        """Run a query and return an Arrow table."""
        return self._request(sql, params, rows=True)

    def append_events(self, batch: pa.Table, *, returning: bool = False) -> dict[str, int] | int:
        """Refused: a reader does not write."""
        raise self._locked("appending events")

    def register(self, name: str, table: pa.Table) -> None:
        """Refused: the holder cannot see this process's Arrow tables."""
        raise self._locked("registering an Arrow table")

    def unregister(self, name: str) -> None:
        """Nothing to forget (see :meth:`register`)."""

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One snapshot for the block (nested blocks join the outer one)."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            self.execute("BEGIN TRANSACTION")
            self._depth = 1
            try:
                yield
            except BaseException:
                self.execute("ROLLBACK")
                raise
            else:
                self.execute("COMMIT")
            finally:
                self._depth = 0

    def checkpoint(self) -> None:
        """Nothing to do: the holder checkpoints its own database."""

    def close(self) -> None:
        """Close the connection to the holder."""
        with contextlib.suppress(OSError):
            self._sock.close()


def connect_shared_reads(
    database: str | Path,
    holder: str,
    pid: int | None = None,
    *,
    kind: type[SharedReadStore] = SharedReadStore,
    timeout: float | None = 30,
) -> SharedReadStore | None:
    """Connect to the process holding ``database`` if it shares reads (else None).

    ``pid``: the holder's process id when the lock error told it; a ``.reads`` file that
    another process wrote (left by one that died) is then ignored. ``kind``: the store
    class to return (a writer's); ``timeout``: seconds an answer may take (None: no limit).
    """
    try:
        info = json.loads(info_path(database).read_text())
        if pid is not None and int(info["pid"]) != pid:
            return None
        sock = socket.create_connection(("127.0.0.1", int(info["port"])), timeout=30)
        sock.settimeout(timeout)
    except (OSError, ValueError, KeyError, TypeError):
        return None  # no .reads file, a stale one, or nobody listening
    return kind(str(database), sock, str(info["token"]), holder)


def _python(column: pa.ChunkedArray) -> list[Any]:
    """Python values as DuckDB's ``fetchall`` gives them (whole decimals are ints)."""
    values = list(column.to_pylist())
    kind = column.type
    if pa.types.is_decimal(kind) and kind.scale == 0:
        return [None if v is None else int(v) for v in values]
    return values


# --- framing and parameters ----------------------------------------------------------------


def _send(sock: socket.socket, body: bytes) -> None:
    sock.sendall(_HEADER.pack(len(body)) + body)


def _receive(sock: socket.socket) -> bytes | None:
    header = _exactly(sock, _HEADER.size)
    if header is None:
        return None
    (size,) = _HEADER.unpack(header)
    if size > _MAX_MESSAGE:
        raise OSError(f"message of {size} bytes is too large")
    return _exactly(sock, size)


def _exactly(sock: socket.socket, size: int) -> bytes | None:
    chunks: list[bytes] = []
    while size:
        chunk = sock.recv(min(size, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _error(kind: str, message: str) -> bytes:
    return b"\1" + json.dumps({"kind": kind, "message": message}).encode()


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, date):
        return {"$date": value.isoformat()}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$bytes": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, Decimal):
        return {"$decimal": str(value)}
    if isinstance(value, list | tuple):
        return [_encode(v) for v in value]
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if isinstance(value, dict) and len(value) == 1:
        ((tag, text),) = value.items()
        if tag == "$datetime":
            return datetime.fromisoformat(text)
        if tag == "$date":
            return date.fromisoformat(text)
        if tag == "$bytes":
            return base64.b64decode(text)
        if tag == "$decimal":
            return Decimal(text)
    return value
