"""Storage: the ``Store`` protocol and its DuckDB and PostgreSQL backends."""

from __future__ import annotations

import os
from pathlib import Path

from segmint.store.base import (
    Store,
    current_version,
    from_store_time,
    read_meta,
    utcnow_naive,
    write_meta,
)
from segmint.store.errors import StoreError, StoreLocked, StoreTooNew, StoreUnavailable
from segmint.store.schema import EVENT_SCHEMA, LATEST_VERSION


def open_store(spec: str, *, workspace_dir: Path | None = None, reads_only: bool = False) -> Store:
    """Open the store named by ``spec``: ``duckdb``, ``duckdb:PATH`` or a PostgreSQL URL.

    ``SEGMINT_DATABASE_URL``, when set, overrides ``spec``. With ``reads_only`` (for
    commands that only read), a DuckDB file that a running ``segmint serve`` holds is read
    through that server (see :mod:`segmint.store.shared`) instead of being refused; a
    command that writes has that server run its statements
    (:mod:`segmint.store.sharedwrite`).
    """
    spec = os.environ.get("SEGMINT_DATABASE_URL") or spec
    if spec.startswith(("postgresql://", "postgres://")):
        from segmint.store.postgres import PostgresStore

        return PostgresStore(spec)
    from segmint.store.duckdb import open_for_reads, open_for_writes

    opener = open_for_reads if reads_only else open_for_writes
    if spec == "duckdb":
        base = workspace_dir if workspace_dir is not None else Path.cwd()
        return opener(base / ".segmint" / "segmint.duckdb")
    if spec.startswith("duckdb:"):
        return opener(spec.removeprefix("duckdb:"))
    raise StoreError(
        f"unknown store {spec!r}: use 'duckdb' (embedded, the default) or a "
        "postgresql://user@host:port/db URL"
    )


__all__ = [
    "EVENT_SCHEMA",
    "LATEST_VERSION",
    "Store",
    "StoreError",
    "StoreLocked",
    "StoreTooNew",
    "StoreUnavailable",
    "current_version",
    "from_store_time",
    "open_store",
    "read_meta",
    "utcnow_naive",
    "write_meta",
]
