"""Set-based writes of many rows: Arrow scans on DuckDB, pipelined statements on PostgreSQL.

Shared by intake (events, identities, quarantine) and membership (state, changes, schedule).

DuckDB runs ``executemany`` one statement per row, which costs far more than the engine's
work per event; registering the rows as an Arrow table and writing them with one
``INSERT … SELECT`` / ``DELETE … WHERE EXISTS`` is one statement per batch.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from segmint.store import Store

SMALL = 16
"""Below this many rows plain statements beat registering an Arrow table."""


def _duck(store: Store, count: int) -> Any:
    if count < SMALL or store.dialect != "duckdb" or not hasattr(store, "register"):
        return None
    return store


def insert_rows(
    store: Store, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """Insert ``rows`` (tuples in ``columns`` order) into ``table``."""
    if not rows:
        return
    cols = ", ".join(f'"{c}"' for c in columns)
    duck = _duck(store, len(rows))
    if duck is None:
        marks = ", ".join("?" for _ in columns)
        store.executemany(f"INSERT INTO {table} ({cols}) VALUES ({marks})", rows)
        return
    name = f"_segmint_rows_{uuid.uuid4().hex[:8]}"
    data = pa.table({c: pa.array([r[i] for r in rows]) for i, c in enumerate(columns)})
    duck.register(name, data)
    try:
        store.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {name}")
    finally:
        duck.unregister(name)


def delete_keys(
    store: Store, table: str, columns: Sequence[str], keys: Sequence[Sequence[Any]]
) -> None:
    """Delete the rows of ``table`` whose ``columns`` equal one of ``keys``."""
    if not keys:
        return
    duck = _duck(store, len(keys))
    if duck is None:
        where = " AND ".join(f'"{c}" = ?' for c in columns)
        store.executemany(f"DELETE FROM {table} WHERE {where}", keys)
        return
    name = f"_segmint_keys_{uuid.uuid4().hex[:8]}"
    data = pa.table({c: pa.array([k[i] for k in keys]) for i, c in enumerate(columns)})
    duck.register(name, data)
    try:
        match = " AND ".join(f'k."{c}" = {table}."{c}"' for c in columns)
        store.execute(f"DELETE FROM {table} WHERE EXISTS (SELECT 1 FROM {name} k WHERE {match})")
    finally:
        duck.unregister(name)


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
    cols = ", ".join(f'"{c}"' for c in columns)
    target = ", ".join(f'"{c}"' for c in keys)
    updates = ", ".join(f'"{c}" = excluded."{c}"' for c in columns if c not in keys)
    conflict = f"ON CONFLICT ({target}) " + (
        f"DO UPDATE SET {updates}" if updates else "DO NOTHING"
    )
    duck = _duck(store, len(rows))
    if duck is None:
        marks = ", ".join("?" for _ in columns)
        store.executemany(f"INSERT INTO {table} ({cols}) VALUES ({marks}) {conflict}", rows)
        return
    name = f"_segmint_rows_{uuid.uuid4().hex[:8]}"
    data = pa.table({c: pa.array([r[i] for r in rows]) for i, c in enumerate(columns)})
    duck.register(name, data)
    try:
        store.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {name} {conflict}")
    finally:
        duck.unregister(name)
