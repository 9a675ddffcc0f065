"""Bulk writes shared by the intake modules: many rows in one statement on either backend."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from segmint.store import Store


def insert_rows(
    store: Store, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """Insert ``rows`` into ``table``: one Arrow scan on DuckDB, a pipelined executemany else."""
    if not rows:
        return
    names = ", ".join(f'"{c}"' for c in columns)
    register = getattr(store, "register", None)
    if register is None or len(rows) < 8:
        marks = ", ".join("?" for _ in columns)
        store.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", rows)
        return
    data = pa.table({c: [r[i] for r in rows] for i, c in enumerate(columns)})
    view = f"__segmint_rows_{table}"
    register(view, data)
    try:
        store.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM {view}")
    finally:
        store.unregister(view)  # type: ignore[attr-defined]
