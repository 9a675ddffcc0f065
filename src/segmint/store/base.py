"""The ``Store`` protocol every backend implements, and the shared migration logic.

SQL given to a store uses ``?`` placeholders on every backend. Higher layers build
dialect-specific SQL with sqlglot, using :attr:`Store.dialect` as the sqlglot dialect name.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

import pyarrow as pa

from segmint.store.errors import StoreTooNew
from segmint.store.schema import LATEST_VERSION, MIGRATIONS, render


@runtime_checkable
class Store(Protocol):
    """A place where events and everything derived from them are kept.

    Attributes:
        dialect: The sqlglot dialect name of the backend (``duckdb`` or ``postgres``).
        url: A description of where the store is, safe to print (no password).
    """

    dialect: str
    url: str

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Run one statement."""
        ...

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement for each row of parameters."""
        ...

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run a query and return all rows."""
        ...

    def fetch_arrow(self, sql: str, params: Sequence[Any] = ()) -> pa.Table:
        """Run a query and return the result as an Arrow table."""
        ...

    def append_events(self, batch: pa.Table, *, returning: bool = False) -> dict[str, int] | int:
        """Append events (schema :data:`EVENT_SCHEMA`), skipping known ``message_id`` s.

        Args:
            batch: The events.
            returning: Return the message ids actually inserted, each with the sequence
                number the store gave it, instead of their count.
        """
        ...

    def transaction(self) -> AbstractContextManager[None]:
        """Run the statements inside the block in one transaction."""
        ...

    def close(self) -> None:
        """Release the connection."""
        ...


def read_meta(store: Store, key: str) -> str | None:
    """The value stored under ``key`` in table ``meta``, or None."""
    rows = store.fetchall("SELECT value FROM meta WHERE key = ?", [key])
    return str(rows[0][0]) if rows else None


def write_meta(store: Store, key: str, value: str | int) -> None:
    """Store ``value`` under ``key`` in table ``meta`` (one statement: an upsert)."""
    store.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [key, str(value)],
    )


def utcnow_naive(at: datetime) -> datetime:
    """Convert an aware instant into the naive-UTC form the store keeps."""
    if at.tzinfo is None:
        return at
    if at.tzinfo is UTC:
        return at.replace(tzinfo=None)
    return at.astimezone(UTC).replace(tzinfo=None)


def from_store_time(value: datetime | None) -> datetime | None:
    """Convert a naive-UTC value read from the store into an aware UTC datetime."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def current_version(store: Store) -> int:
    """Return the store's schema version, 0 for an empty store."""
    if not _has_meta(store):
        return 0
    rows = store.fetchall("SELECT value FROM meta WHERE key = 'schema_version'")
    return int(rows[0][0]) if rows else 0


def _has_meta(store: Store) -> bool:
    return table_exists(store, "meta")


def table_exists(store: Store, name: str) -> bool:
    """Whether the store has a table ``name`` (in the current schema on PostgreSQL)."""
    sql = "SELECT count(*) FROM information_schema.tables WHERE table_name = ?"
    if store.dialect == "postgres":
        sql += " AND table_schema = current_schema()"
    return bool(store.fetchall(sql, [name])[0][0])


def migrate(store: Store) -> int:
    """Bring the store's schema to the latest version and return that version.

    Raises:
        StoreTooNew: If the store was written by a newer segmint.
    """
    version = current_version(store)
    if version > LATEST_VERSION:
        raise StoreTooNew(
            f"store at {store.url} has schema version {version}, but this segmint "
            f"understands up to {LATEST_VERSION}; upgrade segmint "
            "(pip install -U segmint) to open it"
        )
    for number, ddl in MIGRATIONS:
        if number <= version:
            continue
        pre, statements = render(ddl, store.dialect)
        with store.transaction():
            for sql in pre + statements:
                store.execute(sql)
            store.execute("DELETE FROM meta WHERE key = 'schema_version'")
            store.execute("INSERT INTO meta VALUES ('schema_version', ?)", [str(number)])
    return LATEST_VERSION
