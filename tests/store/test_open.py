"""Opening stores: backend choice and the errors for stores that cannot be opened."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from segmint.store import StoreError, StoreLocked, StoreUnavailable, open_store
from segmint.store.duckdb import DuckDBStore


def test_duckdb_default_lives_under_state_dir(tmp_path: Path) -> None:
    store = open_store("duckdb", workspace_dir=tmp_path)
    assert store.dialect == "duckdb"
    store.close()
    assert (tmp_path / ".segmint" / "segmint.duckdb").exists()


def test_unknown_store_spec_is_explained() -> None:
    with pytest.raises(StoreError, match="use 'duckdb'"):
        open_store("mysql://x")


def test_unreachable_postgres_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SEGMINT_DATABASE_URL", raising=False)
    with pytest.raises(
        StoreUnavailable, match="cannot reach PostgreSQL at postgresql://u:\\*\\*\\*@"
    ):
        open_store("postgresql://u:secret@127.0.0.1:1/db")


def test_environment_url_overrides_workspace(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SEGMINT_DATABASE_URL", f"duckdb:{tmp_path / 'env.duckdb'}")
    store = open_store("duckdb", workspace_dir=tmp_path / "ignored")
    store.close()
    assert (tmp_path / "env.duckdb").exists()


def test_locked_duckdb_file_names_the_holder(tmp_path: Path) -> None:
    path = tmp_path / "held.duckdb"
    DuckDBStore(path).close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
                import duckdb, sys, time
                con = duckdb.connect({str(path)!r})
                print("ready", flush=True)
                sys.stdin.read()
            """),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        with pytest.raises(StoreLocked) as info:
            DuckDBStore(path)
        message = str(info.value)
        assert f"process {holder.pid}" in message
        assert "python" in message and "stop that process" in message
    finally:
        holder.communicate("")
