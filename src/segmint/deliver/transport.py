"""Email transports: the ``EmailTransport`` protocol and the pooled SMTP implementation.

A transport takes one prebuilt message and its envelope. :class:`SmtpPool` keeps up to
``size`` open aiosmtplib connections, paces sends with a token bucket, and turns every
failure into a marked :mod:`segmint.deliver.errors` error: 4xx replies and lost connections
are transient, 5xx replies terminal (a refused recipient is a :class:`HardBounce`).
"""

from __future__ import annotations

import asyncio
import os
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import aiosmtplib

from segmint.config.model import SmtpDef
from segmint.deliver.errors import (
    AuthenticationFailed,
    ConnectionDropped,
    DeliveryError,
    HardBounce,
    MessageRejected,
    SoftBounce,
)
from segmint.deliver.ratelimit import TokenBucket


@dataclass(frozen=True)
class SendReceipt:
    """What the server said about an accepted message.

    Attributes:
        response: The server's reply to DATA (often with its queue id).
        refused: Recipients refused while others were accepted, with code and text.
    """

    response: str = ""
    refused: dict[str, tuple[int, str]] = field(default_factory=dict)


class EmailTransport(Protocol):
    """Something that delivers prebuilt messages."""

    async def send(self, message: bytes, sender: str, recipients: Sequence[str]) -> SendReceipt:
        """Deliver ``message`` from ``sender`` (envelope) to ``recipients``.

        Raises:
            DeliveryError: Marked Transient or Terminal.
        """
        ...

    async def close(self) -> None:
        """Release connections and files."""
        ...


def classify(exc: BaseException) -> DeliveryError:
    """Map an aiosmtplib or socket error to a marked delivery error."""
    if isinstance(exc, DeliveryError):
        return exc
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        first = exc.recipients[0] if exc.recipients else None
        code = first.code if first is not None else 550
        text = first.message if first is not None else str(exc)
        return _by_code(code, f"recipient refused: {code} {text}", HardBounce)
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        return AuthenticationFailed(
            f"authentication failed: {exc.code} {exc.message}", code=exc.code
        )
    if isinstance(exc, aiosmtplib.SMTPServerDisconnected | aiosmtplib.SMTPTimeoutError):
        return ConnectionDropped(f"connection lost: {exc}")
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return _by_code(exc.code, f"server replied {exc.code} {exc.message}", MessageRejected)
    if isinstance(exc, OSError | asyncio.TimeoutError | aiosmtplib.SMTPException):
        return ConnectionDropped(f"connection failed: {exc or type(exc).__name__}")
    if isinstance(exc, ValueError):
        return MessageRejected(f"invalid address: {exc}")
    raise exc


def _by_code(code: int, text: str, terminal: type[DeliveryError]) -> DeliveryError:
    if 400 <= code < 500:
        return SoftBounce(text, code=code)
    if code >= 500:
        return terminal(text, code=code)
    return ConnectionDropped(text, code=code)


class SmtpPool:
    """An :class:`EmailTransport` over a pool of SMTP connections.

    Connections open lazily, up to ``smtp.pool_size``; a connection that fails is dropped
    and replaced on the next send. ``smtp.rate_limit`` (messages per second) is enforced
    across the pool with a token bucket.

    Args:
        smtp: Host, port, security, credentials and pool settings.
        password: The password; by default read from the variable ``smtp.password_env``.
        tls_context: A custom TLS context (for a private CA); the system's by default.
        bucket: A rate limiter to use instead of one built from ``smtp.rate_limit``.
    """

    def __init__(
        self,
        smtp: SmtpDef,
        *,
        password: str | None = None,
        tls_context: ssl.SSLContext | None = None,
        bucket: TokenBucket | None = None,
    ) -> None:
        self.smtp = smtp
        self.size = max(1, smtp.pool_size)
        self._password = password
        if password is None and smtp.password_env:
            self._password = os.environ.get(smtp.password_env)
        self._tls_context = tls_context
        self._bucket = bucket
        if bucket is None and smtp.rate_limit:
            self._bucket = TokenBucket(smtp.rate_limit, burst=self.size)
        self._idle: list[aiosmtplib.SMTP] = []
        self._slots = asyncio.Semaphore(self.size)
        self.opened = 0

    async def _connect(self) -> aiosmtplib.SMTP:
        client = aiosmtplib.SMTP(
            hostname=self.smtp.host,
            port=self.smtp.port,
            timeout=self.smtp.timeout,
            use_tls=self.smtp.security == "tls",
            start_tls=self.smtp.security == "starttls",
            tls_context=self._tls_context,
        )
        try:
            await client.connect()
            if self.smtp.username:
                await client.login(self.smtp.username, self._password or "")
        except Exception as exc:
            client.close()
            raise classify(exc) from exc
        self.opened += 1
        return client

    async def send(self, message: bytes, sender: str, recipients: Sequence[str]) -> SendReceipt:
        """Send one message over a pooled connection, after taking a rate-limit token.

        Raises:
            DeliveryError: Transient (4xx, connection) or Terminal (5xx, bad address).
        """
        if self._bucket is not None:
            await self._bucket.acquire()
        async with self._slots:
            client = self._idle.pop() if self._idle else await self._connect()
            try:
                refused, response = await client.sendmail(sender, list(recipients), message)
            except Exception as exc:
                error = classify(exc)
                if isinstance(error, ConnectionDropped) or not client.is_connected:
                    client.close()
                else:
                    self._idle.append(client)
                raise error from exc
            self._idle.append(client)
        return SendReceipt(response, {k: (v.code, v.message) for k, v in refused.items()})

    async def close(self) -> None:
        """Say QUIT on every idle connection."""
        idle, self._idle = self._idle, []
        for client in idle:
            try:
                await client.quit()
            except (aiosmtplib.SMTPException, OSError):
                client.close()
