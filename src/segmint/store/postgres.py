"""PostgreSQL backend (psycopg 3), for a shared server deployment.

``url`` may carry ``?options=-csearch_path%3Dmyschema``; tests use a schema per session.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv

from segmint.store.base import migrate
from segmint.store.errors import StoreError, StoreUnavailable
from segmint.store.schema import EVENT_COLUMNS, EVENT_SCHEMA

EVENTS_CHANNEL = "'segmint_events_' || md5(current_schema())"
DERIVED_CHANNEL = "'segmint_derived_' || md5(current_schema())"
"""Notified at the commit of a transaction that wrote memberships, the schedule or trait
state or values (the triggers of migration 69)."""


@dataclass(frozen=True)
class Notice:
    """A commit another connection (or this one) announced.

    Attributes:
        derived: It wrote what a real-time engine caches (else: it stored events).
        pid: The backend process id of the connection that committed.
    """

    derived: bool
    pid: int


"""SQL for the NOTIFY channel of the schema's new events (a name short enough for any schema)."""


def safe_url(url: str) -> str:
    """Return ``url`` with any password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


def qmark_to_format(sql: str) -> str:
    """Translate ``?`` placeholders to psycopg's ``%s``, leaving quoted text alone."""
    out: list[str] = []
    quote: str | None = None
    for ch in sql:
        if quote:
            out.append("%%" if ch == "%" else ch)
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
            out.append(ch)
        elif ch == "?":
            out.append("%s")
        elif ch == "%":
            out.append("%%")
        else:
            out.append(ch)
    return "".join(out)


class PostgresStore:
    """A :class:`~segmint.store.base.Store` on a PostgreSQL server.

    Args:
        url: A ``postgresql://`` connection URL.
        schema: A schema to create (if missing) and use; tests isolate themselves with it.
    """

    dialect = "postgres"

    def __init__(self, url: str, *, schema: str | None = None) -> None:
        self.url = safe_url(url)
        self._dsn = url
        self._schema = schema
        self._local = threading.local()
        self._lock = threading.RLock()
        self._derived_channel: str | None = None  # (set by listen)
        self._con = self._connect()
        migrate(self)

    def _connect(self) -> psycopg.Connection[tuple[Any, ...]]:
        try:
            con = psycopg.connect(self._dsn, autocommit=True, connect_timeout=5)
        except psycopg.OperationalError as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else "no answer"
            raise StoreUnavailable(
                f"cannot reach PostgreSQL at {self.url}: {reason}. Check that the server "
                "runs and the URL (store: in segmint.yaml or SEGMINT_DATABASE_URL) is right"
            ) from None
        if self._schema:
            con.execute(f'CREATE SCHEMA IF NOT EXISTS "{self._schema}"')
            con.execute(f'SET search_path TO "{self._schema}"')
        con.execute("SET TIME ZONE 'UTC'")
        return con

    def _run(self, sql: str, params: Sequence[Any]) -> psycopg.Cursor[tuple[Any, ...]]:
        try:
            return self._con.execute(qmark_to_format(sql), list(params))
        except psycopg.OperationalError as exc:
            raise StoreUnavailable(f"lost PostgreSQL at {self.url}: {exc}") from exc

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Run one statement."""
        with self._lock:
            self._run(sql, params)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement for each row of parameters."""
        if not rows:
            return
        with self._lock, self._con.cursor() as cur:
            cur.executemany(qmark_to_format(sql), [list(r) for r in rows])

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run a query and return all rows."""
        with self._lock:
            return self._run(sql, params).fetchall()

    def fetch_arrow(self, sql: str, params: Sequence[Any] = ()) -> pa.Table:
        """Run a query and return an Arrow table (built from the rows)."""
        with self._lock:
            cur = self._run(sql, params)
            names = [d.name for d in cur.description or []]
            rows = cur.fetchall()
        columns: list[Any] = list(zip(*rows, strict=True)) if rows else [() for _ in names]
        return pa.table({n: pa.array(list(c)) for n, c in zip(names, columns, strict=True)})

    def append_events(self, batch: pa.Table, *, returning: bool = False) -> dict[str, int] | int:
        """COPY the batch into a temporary table, then insert the rows not yet stored."""
        table = batch.select([n for n, _ in EVENT_COLUMNS]).cast(EVENT_SCHEMA)
        buf = io.BytesIO()
        options = pacsv.WriteOptions(include_header=False, quoting_style="all_valid")
        pacsv.write_csv(table, buf, write_options=options)
        cols = ", ".join(f'"{n}"' for n, _ in EVENT_COLUMNS)
        insert = (
            f"INSERT INTO events ({cols}) SELECT DISTINCT ON (message_id) {cols} "
            "FROM _segmint_batch ON CONFLICT (message_id) DO NOTHING"
        )
        if returning:
            insert += " RETURNING message_id, seq"
        with self._lock, self._con.transaction(), self._con.cursor() as cur:
            cur.execute(
                "CREATE TEMP TABLE IF NOT EXISTS _segmint_batch "
                "(LIKE events INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
            )
            with cur.copy(f"COPY _segmint_batch ({cols}) FROM STDIN (FORMAT csv)") as copy:
                copy.write(buf.getvalue())
            cur.execute(insert)
            found = {r[0]: int(r[1]) for r in cur.fetchall()} if returning else cur.rowcount
            # delivered at commit: servers' change feeds read at once (segmint.membership.feed)
            cur.execute(f"SELECT pg_notify({EVENTS_CHANNEL}, '')")
            return found

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Run the block in one transaction (nested blocks become savepoints)."""
        with self._lock, self._con.transaction():
            yield

    def listen(self) -> None:
        """Be notified when any connection commits events, or derived rows, to this schema."""
        with self._lock:
            found = self._con.execute(f"SELECT {EVENTS_CHANNEL}, {DERIVED_CHANNEL}").fetchone()
            assert found is not None
            self._derived_channel = str(found[1])
            for channel in found:
                self._con.execute(f'LISTEN "{channel}"')

    def wait_notices(self, timeout: float) -> list[Notice]:
        """Wait up to ``timeout`` seconds for commits announced (after :meth:`listen`)."""
        derived = self._derived_channel
        with self._lock:
            return [
                Notice(n.channel == derived, n.pid)
                for n in self._con.notifies(timeout=timeout, stop_after=1)
            ]

    def wait_notified(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a commit announced (after :meth:`listen`)."""
        return bool(self.wait_notices(timeout))

    def backend_pid(self) -> int:
        """The process id of this store's connection on the server (as notices name it)."""
        with self._lock:
            return int(self._con.info.backend_pid)

    def reopen(self) -> PostgresStore:
        """Another store on the same database and schema, with a connection of its own."""
        return PostgresStore(self._dsn, schema=self._schema)

    def close(self) -> None:
        """Close the connection."""
        self._con.close()


def drop_schema(url: str, schema: str) -> None:
    """Drop a schema and everything in it (used by tests to clean up)."""
    try:
        with psycopg.connect(url, autocommit=True) as con:
            con.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    except psycopg.Error as exc:
        raise StoreError(f"cannot drop schema {schema}: {exc}") from exc
