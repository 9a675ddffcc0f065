"""Fixtures for delivery tests: a real aiosmtpd server in-process, scriptable to misbehave."""

from __future__ import annotations

import email
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from segmint.config.model import SmtpDef


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
