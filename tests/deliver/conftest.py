"""Fixtures for delivery tests: a real aiosmtpd server in-process, scriptable to misbehave."""

from __future__ import annotations

import email
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiosmtpd.controller import Controller

from segmint.clock import FixedClock
from segmint.config.model import SmtpDef
from segmint.workspace import Workspace


@dataclass
class Received:
    sender: str
    recipients: list[str]
    data: bytes

    @property
    def message(self) -> Message:
        return email.message_from_bytes(self.data)


@dataclass
class RecordingHandler:
    """Accepts everything, records it, and misbehaves when scripted to.

    rcpt_replies: address -> replies to its next RCPT TO commands (then 250).
    data_replies: replies to the next DATA commands (then 250).
    drops: close the connection instead of answering the next N DATA commands.
    """

    received: list[Received] = field(default_factory=list)
    rcpt_replies: dict[str, list[str]] = field(default_factory=dict)
    data_replies: list[str] = field(default_factory=list)
    drops: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        with self.lock:
            queue = self.rcpt_replies.get(address)
            if queue:
                return queue.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            if self.drops > 0:
                self.drops -= 1
                server.transport.close()
                return "421 closing"
            if self.data_replies:
                return self.data_replies.pop(0)
            self.received.append(
                Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content)
            )
        return "250 Message accepted for delivery"

    def count(self) -> int:
        with self.lock:
            return len(self.received)

    def by_recipient(self) -> dict[str, int]:
        out: dict[str, int] = {}
        with self.lock:
            for item in self.received:
                for rcpt in item.recipients:
                    out[rcpt] = out.get(rcpt, 0) + 1
        return out


@dataclass
class SmtpServer:
    host: str
    port: int
    handler: RecordingHandler

    def smtp_def(self, **overrides: Any) -> SmtpDef:
        return SmtpDef(host=self.host, port=self.port, **({"timeout": 5.0} | overrides))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def unused_port() -> int:
    """A local TCP port nothing listens on."""
    return free_port()


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A real SMTP server (aiosmtpd) on a free local port, recording what it receives."""
    handler = RecordingHandler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield SmtpServer("127.0.0.1", port, handler)
    finally:
        controller.stop()


SECRET = "test-secret-0123456789abcdef"
T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)

FRAGILE = """{% extends "layout.html" %}
{% block subject %}Your {{ orders }} orders{% endblock %}
{% block content %}<p>Average spend {{ lifetime_value / orders }}</p>
<p><a href="https://shop.example.com/winter?utm=1">Shop now</a></p>{% endblock %}
"""


@dataclass
class Shop:
    """A workspace wired to the test SMTP server, with helpers to add people."""

    path: Path
    server: SmtpServer
    workspace: Workspace
    profiles: dict[str, str] = field(default_factory=dict)

    def add(
        self,
        user_id: str,
        *,
        email: str | None = "",
        consent: bool | None = True,
        segments: tuple[str, ...] = ("vip",),
        **traits: Any,
    ) -> str:
        """Identify a person through intake, then give them traits and memberships."""
        return self.add_many([user_id], email=email, consent=consent, segments=segments,
                             **traits)[0]  # fmt: skip

    def add_many(
        self,
        user_ids: list[str],
        *,
        email: str | None = "",
        consent: bool | None = True,
        segments: tuple[str, ...] = ("vip",),
        **traits: Any,
    ) -> list[str]:
        """:meth:`add` for many people, in one intake submission."""
        from segmint.intake import Intake

        messages, values = [], []
        for user_id in user_ids:
            these: dict[str, Any] = {"first_name": user_id.title(), **traits}
            if email is not None:
                these["email"] = email or f"{user_id}@example.com"
            sent = dict(these)
            if consent is not None:
                sent["email_consent"] = consent
            values.append(these)
            messages.append({"type": "identify", "userId": user_id, "traits": sent,
                             "timestamp": "2026-02-01T00:00:00Z"})  # fmt: skip
        result = Intake(self.workspace, FixedClock(T0)).submit(messages, source="test")
        pids = [e.profile_id for e in result.events]
        naive = T0.replace(tzinfo=None)
        store = self.workspace.store
        with store.transaction():
            for pid, these in zip(pids, values, strict=True):
                store.execute("DELETE FROM trait_values WHERE profile_id = ?", [pid])
                store.execute(
                    'INSERT INTO trait_values (profile_id, "values", as_of) VALUES (?, ?, ?)',
                    [pid, orjson.dumps(these).decode(), naive],
                )
                for segment in segments:
                    store.execute(
                        "INSERT INTO memberships (segment, profile_id, entered_at) "
                        "VALUES (?, ?, ?)",
                        [segment, pid, naive],
                    )
        self.profiles.update(zip(user_ids, pids, strict=True))
        return pids

    def reopen(self) -> Workspace:
        self.workspace.close()
        self.workspace = Workspace.open(self.path)
        return self.workspace

    def statuses(self, campaign: str = "lifecycle_update") -> dict[str, tuple[str, str | None]]:
        by_pid = {v: k for k, v in self.profiles.items()}
        rows = self.workspace.store.fetchall(
            "SELECT profile_id, status, reason FROM sends WHERE campaign = ?", [campaign]
        )
        return {by_pid.get(p, p): (s, r) for p, s, r in rows}


def configure(path: Path, port: int, *, policy: str = "opt_in", pool: int = 2,
              rate: float | None = None) -> None:  # fmt: skip
    """Point the example workspace at the test SMTP server and add a fragile campaign."""
    yaml_file = path / "segmint.yaml"
    text = yaml_file.read_text()
    rate_text = f", rate_limit: {rate}" if rate else ""
    text = text.replace(
        "smtp: {host: 127.0.0.1, port: 1025}",
        f"smtp: {{host: 127.0.0.1, port: {port}, pool_size: {pool}, timeout: 5{rate_text}}}",
    )
    text = text.replace("policy: opt_in ", f"policy: {policy} ")
    if "  fragile:" not in text:
        text = text.replace(
            "\ncampaigns:\n",
            "\ncampaigns:\n  fragile:\n    segment: vip\n    template: fragile\n"
            '    from: "Shop <shop@example.com>"\n    topic: newsletter\n',
        )
    yaml_file.write_text(text)
    (path / "templates" / "fragile.html").write_text(FRAGILE)


@pytest.fixture
def shop(
    tmp_path: Path, smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Shop]:
    """The example workspace, wired to the test SMTP server, with the link secret set."""
    monkeypatch.setenv("SEGMINT_SECRET", SECRET)
    path = tmp_path / "shop"
    Workspace.init(path, name="test-shop").close()
    configure(path, smtp_server.port)
    ws = Workspace.open(path)
    item = Shop(path, smtp_server, ws)
    yield item
    item.workspace.close()


class ThreadServer:
    """uvicorn serving an app in a background thread, on a socket bound before it starts."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def __enter__(self) -> ThreadServer:
        self.thread.start()
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            threading.Event().wait(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(20)
        self.sock.close()


@pytest.fixture
def pg_shop(
    tmp_path: Path,
    smtp_server: SmtpServer,
    monkeypatch: pytest.MonkeyPatch,
    postgres_url: str,
    pg_session_schema: str,
) -> Iterator[Shop]:
    """:func:`shop` with its store on PostgreSQL (a fresh schema, via SEGMINT_DATABASE_URL)."""
    import uuid

    import psycopg

    schema = f"{pg_session_schema}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_url, autocommit=True) as con:
        con.execute(f'CREATE SCHEMA "{schema}"')
    from tests.conftest import schema_url

    monkeypatch.setenv("SEGMINT_DATABASE_URL", schema_url(postgres_url, schema))
    monkeypatch.setenv("SEGMINT_SECRET", SECRET)
    path = tmp_path / "shop"
    Workspace.init(path, name="pg-shop").close()
    configure(path, smtp_server.port)
    ws = Workspace.open(path)
    item = Shop(path, smtp_server, ws)
    yield item
    item.workspace.close()
