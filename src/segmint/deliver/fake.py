"""Transports that do not speak SMTP: a fault-injecting fake and the dry-run outbox.

:class:`FakeTransport` exists for fault tests (failures on purpose, by address or by
probability, like dlt's dummy destination); the real SMTP server is what tests use by
default. :class:`OutboxTransport` writes each message to an ``.eml`` file for ``--dry-run``.
"""

from __future__ import annotations

import random
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from segmint.deliver.errors import SoftBounce
from segmint.deliver.transport import SendReceipt


@dataclass
class Delivery:
    """One message a fake transport accepted."""

    message: bytes
    sender: str
    recipients: tuple[str, ...]


@dataclass
class FakeTransport:
    """An in-memory transport that fails on purpose.

    Attributes:
        script: Address → errors raised on its next attempts, in order (then success).
            Any exception may be scripted: a delivery error is a failed attempt, another
            one (``RuntimeError``) stands for the run dying mid-send.
        transient_prob: The chance that any attempt raises a :class:`SoftBounce`.
        seed: Seeds the random source, so a failing run can be replayed.
        sent: Every accepted message.
        attempts: Attempts per address, failed ones included.
    """

    script: dict[str, list[Exception]] = field(default_factory=dict)
    transient_prob: float = 0.0
    seed: int = 0
    sent: list[Delivery] = field(default_factory=list)
    attempts: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)  # noqa: S311 (fault injection, not crypto)

    async def send(self, message: bytes, sender: str, recipients: Sequence[str]) -> SendReceipt:
        """Accept the message unless the script or the dice say otherwise."""
        for address in recipients:
            self.attempts[address] += 1
            queue = self.script.get(address)
            if queue:
                raise queue.pop(0)
        if self._random.random() < self.transient_prob:
            raise SoftBounce("451 injected transient failure", code=451)
        self.sent.append(Delivery(message, sender, tuple(recipients)))
        return SendReceipt("250 accepted by fake")

    async def close(self) -> None:
        """Nothing to release."""


_UNSAFE = re.compile(r"[^A-Za-z0-9._@+-]")


@dataclass
class OutboxTransport:
    """Write each message to ``folder`` as an ``.eml`` file instead of sending it.

    Attributes:
        folder: Where the files go (created when missing).
        name_of: Picks a file name stem for a message; by default its first recipient.
        written: The files written, in order.
    """

    folder: Path
    name_of: Callable[[bytes, Sequence[str]], str] | None = None
    written: list[Path] = field(default_factory=list)

    async def send(self, message: bytes, sender: str, recipients: Sequence[str]) -> SendReceipt:
        """Write the message to a file named after its recipient."""
        self.folder.mkdir(parents=True, exist_ok=True)
        stem = self.name_of(message, recipients) if self.name_of else recipients[0]
        path = self.folder / f"{_UNSAFE.sub('_', stem)}.eml"
        path.write_bytes(message)
        self.written.append(path)
        return SendReceipt(f"written to {path}")

    async def close(self) -> None:
        """Nothing to release."""
