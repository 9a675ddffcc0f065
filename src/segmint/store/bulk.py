"""Set-based writes of many rows: Arrow scans on DuckDB, pipelined statements on PostgreSQL.

Shared by intake (events, identities, quarantine) and membership (state, changes, schedule).

DuckDB runs ``executemany`` one statement per row (about a millisecond each on a table of
some size), which costs far more than the engine's work per event. On DuckDB a batch is
one statement: from an Arrow table (``INSERT … SELECT`` / ``DELETE … WHERE EXISTS``) for
many rows, and with a ``VALUES`` list for a few (the single-event case, where registering
an Arrow table costs more than the statement).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pyarrow as pa

from segmint.store import Store

SMALL = 16
"""Below this many rows plain statements beat registering an Arrow table."""


def _duck(store: Store, count: int) -> Any:
    if count < SMALL or store.dialect != "duckdb" or not hasattr(store, "register"):
        return None
    return store


def _few(store: Store, count: int) -> bool:
    """True for a small batch on DuckDB: one statement with a VALUES list."""
    return count < SMALL and store.dialect == "duckdb"


def _values(count: int, width: int) -> str:
    row = "(" + ", ".join("?" for _ in range(width)) + ")"
    return ", ".join(row for _ in range(count))


@contextmanager
def _registered(duck: Any, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> Iterator[str]:
    """Register ``rows`` as an Arrow table on DuckDB for one statement; yield its name."""
    name = f"_segmint_rows_{uuid.uuid4().hex[:8]}"
    duck.register(
        name, pa.table({c: pa.array([r[i] for r in rows]) for i, c in enumerate(columns)})
    )
    try:
        yield name
    finally:
        duck.unregister(name)


@contextmanager
def rows_table(
    store: Store, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> Iterator[str | None]:
    """Many rows as a table for one statement: its name on DuckDB, else None.

    For statements bulk writes do not cover (an ``INSERT … RETURNING``, an
    ``UPDATE … FROM``); with None (a few rows, or another backend) the caller writes its
    plain statement instead.
    """
    duck = _duck(store, len(rows))
    if duck is None:
        yield None
        return
    with _registered(duck, columns, rows) as name:
        yield name


def _flat(rows: Sequence[Sequence[Any]]) -> list[Any]:
    return [value for row in rows for value in row]


def insert_rows(
    store: Store, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """Insert ``rows`` (tuples in ``columns`` order) into ``table``."""
    if not rows:
        return
    if _few(store, len(rows)):
        cols = ", ".join(f'"{c}"' for c in columns)
        values = _values(len(rows), len(columns))
        store.execute(f"INSERT INTO {table} ({cols}) VALUES {values}", _flat(rows))
        return
    _insert_many(store, table, columns, rows)


def _insert_many(
    store: Store,
    table: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    suffix: str = "",
) -> None:
    """One INSERT of many rows (Arrow on DuckDB, executemany elsewhere), then ``suffix``."""
    cols = ", ".join(f'"{c}"' for c in columns)
    duck = _duck(store, len(rows))
    if duck is None:
        marks = ", ".join("?" for _ in columns)
        store.executemany(f"INSERT INTO {table} ({cols}) VALUES ({marks}) {suffix}", rows)
        return
    with _registered(duck, columns, rows) as name:
        store.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {name} {suffix}")


def delete_keys(
    store: Store, table: str, columns: Sequence[str], keys: Sequence[Sequence[Any]]
) -> None:
    """Delete the rows of ``table`` whose ``columns`` equal one of ``keys``."""
    if not keys:
        return
    if _few(store, len(keys)):
        names = ", ".join(f'"{c}"' for c in columns)
        if len(columns) == 1:
            marks = ", ".join("?" for _ in keys)
            store.execute(f"DELETE FROM {table} WHERE {names} IN ({marks})", _flat(keys))
        else:
            values = _values(len(keys), len(columns))
            store.execute(f"DELETE FROM {table} WHERE ({names}) IN (VALUES {values})", _flat(keys))
        return
    duck = _duck(store, len(keys))
    if duck is None:
        where = " AND ".join(f'"{c}" = ?' for c in columns)
        store.executemany(f"DELETE FROM {table} WHERE {where}", keys)
        return
    match = " AND ".join(f'k."{c}" = {table}."{c}"' for c in columns)
    with _registered(duck, columns, keys) as name:
        store.execute(f"DELETE FROM {table} WHERE EXISTS (SELECT 1 FROM {name} k WHERE {match})")


def upsert_rows(
    store: Store,
    table: str,
    columns: Sequence[str],
    keys: Sequence[str],
    rows: Sequence[Sequence[Any]],
) -> None:
    """Insert ``rows`` into ``table``, replacing the rows with the same ``keys`` columns.

    Each key may appear once in ``rows``. One ``INSERT … ON CONFLICT DO UPDATE`` (measured on
    DuckDB: about five times faster than deleting the keys and inserting again).
    """
    if not rows:
        return
    if _few(store, len(rows)):  # conflict checks cost more than a delete for a few rows
        index = [columns.index(k) for k in keys]
        with store.transaction():
            delete_keys(store, table, keys, [[row[i] for i in index] for row in rows])
            insert_rows(store, table, columns, rows)
        return
    target = ", ".join(f'"{c}"' for c in keys)
    updates = ", ".join(f'"{c}" = excluded."{c}"' for c in columns if c not in keys)
    conflict = f"ON CONFLICT ({target}) " + (
        f"DO UPDATE SET {updates}" if updates else "DO NOTHING"
    )
    _insert_many(store, table, columns, rows, conflict)


def fetch_in(
    store: Store,
    sql: str,
    values: Sequence[Any],
    before: Sequence[Any] = (),
    after: Sequence[Any] = (),
) -> list[tuple[Any, ...]]:
    """Run a query whose ``{values}`` is the list of ``values``, ``… IN ({values})``.

    For a few thousand values on DuckDB, one query with them as an Arrow table (a join, a
    tenth of the CPU of a query per 500 values); for a few, or on another backend, a query
    per chunk of ``IN`` placeholders. ``before`` and ``after``: the query's parameters
    before and after the list.
    """
    if not values:
        return []
    duck = _duck(store, len(values))
    if duck is not None:
        with _registered(duck, ["v"], [(v,) for v in values]) as name:
            return store.fetchall(sql.format(values=f"SELECT v FROM {name}"), [*before, *after])
    from segmint.common import in_lists

    return [
        row
        for marks, chunk in in_lists(values)
        for row in store.fetchall(sql.format(values=marks), [*before, *chunk, *after])
    ]
