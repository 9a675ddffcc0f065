"""A real uvicorn server on 127.0.0.1 in a thread, serving the app over a fresh workspace."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from segmint.api import create_app
from segmint.clock import FixedClock
from segmint.intake.keys import create_key
from segmint.workspace import Workspace

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@dataclass
class Live:
    """A running server and what tests need to talk to it."""

    url: str
    app: FastAPI
    workspace: Workspace
    clock: FixedClock
    write_key: str
    read_key: str

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, **kwargs)  # type: ignore[arg-type]

    def count(self, sql: str = "SELECT count(*) FROM events") -> int:
        return int(self.workspace.store.fetchall(sql)[0][0])


class ThreadServer:
    """uvicorn in a background thread, on a socket bound before it starts."""

    def __init__(self, app: FastAPI) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def __enter__(self) -> ThreadServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(20)
        self.sock.close()


def serve(workspace: Workspace, clock: FixedClock, app: FastAPI | None = None) -> Iterator[Live]:
    app = app or create_app(workspace, clock)
    _, write = create_key(workspace.store, "web", now=NOW)
    _, read = create_key(workspace.store, "dash", scopes=("read",), now=NOW)
    with ThreadServer(app) as server:
        yield Live(f"http://127.0.0.1:{server.port}", app, workspace, clock, write, read)


@pytest.fixture
def live(workspace: Workspace) -> Iterator[Live]:
    yield from serve(workspace, FixedClock(NOW))


@pytest.fixture(scope="module")
def module_live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """One server for a whole module, for tests that only compare counts before and after."""
    ws = Workspace.init(tmp_path_factory.mktemp("live") / "ws", name="live")
    yield from serve(ws, FixedClock(NOW))
    ws.close()
