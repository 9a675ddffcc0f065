"""Writing commands work while ``segmint serve`` holds the DuckDB workspace.

A real ``segmint serve`` subprocess holds the file; the commands run as other processes,
as a user would run them in another terminal. The server runs their statements under its
own transaction lock, and its real-time engine applies the events they store.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from tests.cli.servers import start_server, stop_server
from tests.deliver.conftest import RecordingHandler, free_port

from segmint.store.duckdb import open_for_reads

SECRET = "test-secret-0123456789abcdef"
CHANGES_ENV = {"SEGMINT_SECRET": SECRET}


def _segmint(ws: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **CHANGES_ENV}
    cmd = [sys.executable, "-m", "segmint", "-w", str(ws), *args]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    if check:
        assert result.returncode == 0, result.stderr
        assert "in use by" not in result.stderr
    return result


@pytest.fixture(scope="module")
def smtp() -> Iterator[tuple[RecordingHandler, int]]:
    handler = RecordingHandler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


@pytest.fixture(scope="module")
def serving(
    tmp_path_factory: pytest.TempPathFactory, smtp: tuple[RecordingHandler, int]
) -> Iterator[tuple[Path, subprocess.Popen[bytes], int]]:
    """The scaffold with its contacts, refreshed, then held by ``segmint serve``."""
    ws = tmp_path_factory.mktemp("writes") / "shop"
    subprocess.run([sys.executable, "-m", "segmint", "init", str(ws)], check=True,
                   capture_output=True)  # fmt: skip
    config = ws / "segmint.yaml"
    text = config.read_text().replace("port: 1025", f"port: {smtp[1]}")
    config.write_text(_without_journeys(text))
    _segmint(ws, "ingest", str(ws / "data" / "crm_contacts.csv"), "--mapping", "crm_contacts")
    _segmint(ws, "refresh")
    port = free_port()
    server = start_server(ws, port, {**os.environ, **CHANGES_ENV})
    try:
        yield ws, server, port
    finally:
        stop_server(server)


def _without_journeys(text: str) -> str:
    """The scaffold without its journeys (their emails would mix with the campaign's)."""
    kept, skipping = [], False
    for line in text.splitlines(keepends=True):
        if line.startswith("journeys:"):
            skipping = True
        elif skipping and line.strip() and not line[0].isspace() and not line.startswith("#"):
            skipping = False
        if not skipping:
            kept.append(line)
    return "".join(kept)


def _vip(ws: Path) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(_segmint(ws, "segments", "show", "vip", "--format",
                                                "json").stdout)  # fmt: skip
    return found


def test_ingest_beside_the_server_reaches_memberships_in_real_time(
    serving: tuple[Path, subprocess.Popen[bytes], int],
) -> None:
    ws, server, _ = serving
    assert _vip(ws)["size"] == 0  # contacts only: nobody has spent yet
    result = _segmint(ws, "ingest", str(ws / "data" / "shop_orders.csv"), "--mapping",
                      "shop_orders")  # fmt: skip
    assert "7 stored" in result.stdout
    deadline = time.monotonic() + 10
    while (vip := _vip(ws))["size"] != 1:
        assert time.monotonic() < deadline, "the server never applied the ingested orders"
        time.sleep(0.2)
    cause = vip["recent_changes"][0]["cause"]
    assert cause["source"] == "event" and cause["message_id"].startswith("shopify-order-")
    status = json.loads(_segmint(ws, "status", "--format", "json").stdout)
    assert status["counts"]["events"] == 15
    assert server.poll() is None


def test_a_campaign_is_sent_once_beside_the_server(
    serving: tuple[Path, subprocess.Popen[bytes], int], smtp: tuple[RecordingHandler, int]
) -> None:
    ws, _, _ = serving
    handler, _ = smtp
    deadline = time.monotonic() + 10
    while not (vip := _vip(ws))["recent_changes"]:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    member = vip["recent_changes"][0]["profile_id"]
    _segmint(ws, "consent", "set", member, "granted", "--topic", "offers")
    first = json.loads(_segmint(ws, "campaign", "send", "lifecycle_update", "--format",
                                "json").stdout)  # fmt: skip
    again = _segmint(ws, "campaign", "send", "lifecycle_update", "--format", "json")
    assert first["sent"] == 1, first
    assert json.loads(again.stdout)["sent"] == 0
    assert handler.count() == 1
    assert len(handler.received[0].recipients) == 1


@pytest.mark.parametrize(
    "args",
    [("refresh",), ("rebuild",), ("keys", "create", "--name", "x"),
     ("consent", "set", "grace.hopper@example.com", "denied"), ("journeys", "run")],
    ids=lambda a: a[0],
)  # fmt: skip
def test_writing_commands_run_through_the_server(
    serving: tuple[Path, subprocess.Popen[bytes], int], args: tuple[str, ...]
) -> None:
    ws, server, _ = serving
    result = _segmint(ws, *args)
    assert "Traceback" not in result.stderr
    assert server.poll() is None


def test_a_second_server_is_refused_clearly(
    serving: tuple[Path, subprocess.Popen[bytes], int],
) -> None:
    ws, server, _ = serving
    result = _segmint(ws, "serve", "--port", str(free_port()), check=False)
    assert result.returncode == 1
    assert f"served by process {server.pid}" in result.stderr
    assert "one 'segmint serve' or 'segmint ui' per DuckDB workspace" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_console_beside_the_server_is_refused_without_announcing_itself(
    serving: tuple[Path, subprocess.Popen[bytes], int],
) -> None:
    """``segmint ui`` announced a console, then blamed a second 'segmint serve'."""
    ws, server, _ = serving
    result = _segmint(ws, "ui", "--port", str(free_port()), check=False)
    assert result.returncode == 1
    assert "segmint console on" not in result.stderr
    assert f"served by process {server.pid}" in result.stderr
    assert "console at /ui too" in result.stderr


def test_a_writer_killed_inside_its_transaction_frees_the_server(
    serving: tuple[Path, subprocess.Popen[bytes], int],
) -> None:
    ws, _, port = serving
    code = (
        "import os, sys\n"
        "from segmint.store.duckdb import open_for_writes\n"
        f"store = open_for_writes({str(ws / '.segmint' / 'segmint.duckdb')!r})\n"
        "store.execute('BEGIN TRANSACTION')\n"
        "store.execute(\"INSERT INTO meta VALUES ('killed.writer', 'x')\")\n"
        "os.kill(os.getpid(), 9)\n"
    )
    killed = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert killed.returncode == -9, killed.stderr
    # the server rolled the writer back and took its lock back: it still stores events
    body = {"userId": "killed-test", "event": "Viewed", "messageId": "after-kill"}
    answer = httpx.post(f"http://127.0.0.1:{port}/v1/track", json=body, timeout=10,
                        auth=(_write_key(ws), ""))  # fmt: skip
    assert answer.status_code == 200, answer.text
    reader = open_for_reads(ws / ".segmint" / "segmint.duckdb")
    try:
        assert reader.fetchall("SELECT count(*) FROM meta WHERE key = 'killed.writer'") == [(0,)]
        assert reader.fetchall("SELECT count(*) FROM events WHERE message_id = 'after-kill'") == [
            (1,)
        ]
    finally:
        reader.close()


def _write_key(ws: Path) -> str:
    out = _segmint(ws, "keys", "create", "--name", "kill-test", "--scope", "write").stdout
    return next(w for w in out.split() if w.startswith("sgm_"))
