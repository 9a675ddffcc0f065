"""Real ``segmint serve`` subprocesses for CLI tests: started, waited for, stopped."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx


def start_server(ws: Path, port: int, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start ``segmint serve`` on ``ws`` and wait until it answers (3 min: a loaded machine)."""
    cmd = [sys.executable, "-m", "segmint", "-w", str(ws), "serve", "--port", str(port)]
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    deadline = time.monotonic() + 180
    while True:
        if server.poll() is not None:
            raise AssertionError(server.stderr.read().decode() if server.stderr else "")
        if time.monotonic() > deadline:
            stop_server(server)
            raise AssertionError("segmint serve did not start")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.1)


def stop_server(server: subprocess.Popen[bytes]) -> None:
    """Stop a server as Ctrl-C does (killed if it does not stop within 30 s)."""
    server.send_signal(signal.SIGINT)
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
    if server.stderr is not None:
        server.stderr.close()
