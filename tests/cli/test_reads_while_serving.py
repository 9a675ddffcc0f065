"""Read-only commands work while ``segmint serve`` holds the DuckDB workspace.

A real ``segmint serve`` subprocess holds the file (DuckDB then lets no other process open
it); the read commands run in this process, as a user would run them in another terminal.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.cli.servers import start_server, stop_server

from segmint.store.shared import info_path

Run = Callable[..., Any]
AS_OF = "2026-11-01T00:00:00Z"
EMAIL = "grace.hopper@example.com"

READS = [
    ("status", "--format", "json"),
    ("segments", "list", "--format", "json"),
    ("segments", "show", "vip", "--format", "json"),
    ("segments", "overlap", "--format", "json"),
    ("segments", "sql", "vip", "--as-of", AS_OF),
    ("segments", "validate", "--format", "json"),
    ("traits", "list", "--format", "json"),
    ("profile", "show", EMAIL, "--as-of", AS_OF, "--format", "json"),
    ("template", "lint"),
    ("campaign", "list", "--format", "json"),
    ("campaign", "report", "lifecycle_update", "--format", "json"),
    ("consent", "show", EMAIL, "--format", "json"),
    ("keys", "list", "--format", "json"),
    ("quarantine", "list", "--format", "json"),
    ("webhooks", "status", "--format", "json"),
    ("quality", "--as-of", AS_OF, "--format", "json"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def serving(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, int]]:
    """The scaffold with its sample data, refreshed, then held by ``segmint serve``."""
    ws = tmp_path_factory.mktemp("serving") / "shop"
    segmint = [sys.executable, "-m", "segmint", "-w", str(ws)]
    subprocess.run([sys.executable, "-m", "segmint", "init", str(ws)], check=True,
                   capture_output=True)  # fmt: skip
    for name in ("crm_contacts", "shop_orders"):
        data = str(ws / "data" / f"{name}.csv")
        subprocess.run([*segmint, "ingest", data, "--mapping", name], check=True,
                       capture_output=True)  # fmt: skip
    subprocess.run([*segmint, "refresh", "--as-of", AS_OF], check=True, capture_output=True)
    server = start_server(ws, _free_port())
    try:
        yield ws, server.pid
    finally:
        stop_server(server)


def test_the_server_holds_the_file_and_shares_its_reads(serving: tuple[Path, int]) -> None:
    ws, pid = serving
    info = json.loads(info_path(ws / ".segmint" / "segmint.duckdb").read_text())
    assert info["pid"] == pid


@pytest.mark.parametrize("args", READS, ids=lambda a: " ".join(a[:2]))
def test_read_commands_work_while_serving(
    cli: Run, serving: tuple[Path, int], args: tuple[str, ...]
) -> None:
    ws, _ = serving
    result = cli("-w", str(ws), *args)
    assert result.returncode == 0, result.stderr
    assert "in use by" not in result.stderr


def test_reads_see_the_servers_data(cli: Run, serving: tuple[Path, int]) -> None:
    ws, _ = serving
    status = json.loads(cli("-w", str(ws), "status", "--format", "json").stdout)
    assert status["counts"]["events"] == 15 and status["counts"]["profiles"] == 8
    assert f"process {serving[1]}" in status["store"]["url"]
    view = json.loads(
        cli("-w", str(ws), "profile", "show", EMAIL, "--as-of", AS_OF, "--format", "json").stdout
    )
    assert {t["name"]: t["value"] for t in view["traits"]}["orders"] == 2


def test_reconcile_reads_through_the_server(cli: Run, serving: tuple[Path, int]) -> None:
    ws, _ = serving
    result = cli("-w", str(ws), "reconcile", "--as-of", AS_OF, "--format", "json")
    assert result.returncode in (0, 1), result.stderr  # 1: differences, listed
    assert "differences" in json.loads(result.stdout)


def test_preview_reads_through_the_server(
    cli: Run, serving: tuple[Path, int], tmp_path: Path
) -> None:
    ws, _ = serving
    out = tmp_path / "previews"
    result = cli("-w", str(ws), "template", "preview", "lifecycle", "--segment", "vip",
                 "--as-of", AS_OF, "--out", str(out))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert list(out.glob("*.eml"))


def test_after_the_server_stops_the_file_opens_directly(cli: Run, tmp_path: Path) -> None:
    ws = tmp_path / "shop"
    assert cli("init", str(ws)).returncode == 0
    stale = info_path(ws / ".segmint" / "segmint.duckdb")
    stale.write_text(json.dumps({"pid": os.getpid(), "port": _free_port(), "token": "t"}))
    result = cli("-w", str(ws), "status", "--format", "json")  # a stale file is ignored
    assert result.returncode == 0, result.stderr
    assert "read through" not in json.loads(result.stdout)["store"]["url"]
