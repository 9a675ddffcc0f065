"""``kill -9`` of ``segmint serve`` loses no acknowledged event."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import orjson

from segmint.intake.keys import create_key
from segmint.workspace import Workspace

from .conftest import NOW


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise AssertionError("segmint serve did not start")


def sender(url: str, key: str, n: int, acked: list[str], stop: threading.Event) -> None:
    with httpx.Client(base_url=url, auth=(key, ""), timeout=10) as client:
        for request in range(10_000):
            if stop.is_set():
                return
            ids = [f"c{n}-r{request}-{i}" for i in range(50)]
            body = {"batch": [{"type": "track", "userId": f"u{i % 7}", "event": "E",
                               "messageId": mid} for i, mid in enumerate(ids)]}  # fmt: skip
            try:
                response = client.post("/v1/batch", content=orjson.dumps(body))
            except httpx.HTTPError:
                return
            if response.status_code == 200:
                acked.extend(ids)


def test_kill_9_loses_no_acknowledged_event(tmp_path: Path) -> None:
    with Workspace.init(tmp_path / "ws", name="crash") as ws:
        _, key = create_key(ws.store, "web", now=NOW)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [
        sys.executable,
        "-m",
        "segmint",
        "-w",
        str(tmp_path / "ws"),
        "serve",
        "--port",
        str(port),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    acked: list[str] = []
    stop = threading.Event()
    try:
        wait_ready(url, proc)
        threads = [
            threading.Thread(target=sender, args=(url, key, n, acked, stop)) for n in range(4)
        ]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 60
        while len(acked) < 3000 and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)  # mid-stream: requests are in flight
        proc.wait(10)
    finally:
        stop.set()
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        if proc.stderr:
            proc.stderr.close()
    for t in threads:
        t.join(30)
    assert len(acked) >= 3000
    with Workspace.open(tmp_path / "ws") as ws:
        stored = {r[0] for r in ws.store.fetchall("SELECT message_id FROM events")}
    missing = set(acked) - stored
    assert not missing, f"{len(missing)} acknowledged events lost"
