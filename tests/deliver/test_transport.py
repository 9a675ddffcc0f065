"""The SMTP pool against a real aiosmtpd server: delivery, retries, bounces, drops."""

from __future__ import annotations

import asyncio
from email.message import EmailMessage
from typing import Any

import pytest

from segmint.deliver.errors import ConnectionDropped, HardBounce, MessageRejected, SoftBounce
from segmint.deliver.retry import RetryPolicy, with_retries
from segmint.deliver.transport import SmtpPool, classify
from segmint.errors import Terminal, Transient

FAST = RetryPolicy(max_attempts=4, base_delay=0.01, factor=2.0)


def message(to: str, n: int = 0) -> bytes:
    msg = EmailMessage()
    msg["From"] = "shop@example.com"
    msg["To"] = to
    msg["Subject"] = f"hello {n}"
    msg.set_content(f"body {n}")
    return msg.as_bytes()


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_pool_delivers_many_messages_over_few_connections(smtp_server: Any) -> None:
    pool = SmtpPool(smtp_server.smtp_def(pool_size=3))

    async def main() -> None:
        addresses = [f"u{i}@example.com" for i in range(30)]
        await asyncio.gather(
            *(pool.send(message(a, i), "shop@example.com", [a]) for i, a in enumerate(addresses))
        )
        await pool.close()

    run(main())
    counts = smtp_server.handler.by_recipient()
    assert counts == {f"u{i}@example.com": 1 for i in range(30)}
    assert 1 <= pool.opened <= 3
    subjects = sorted(r.message["Subject"] for r in smtp_server.handler.received)
    assert subjects == sorted(f"hello {i}" for i in range(30))


def test_4xx_is_retried_with_backoff_until_accepted(smtp_server: Any) -> None:
    smtp_server.handler.rcpt_replies["busy@example.com"] = ["451 try later", "452 full"]
    pool = SmtpPool(smtp_server.smtp_def(pool_size=1))
    retries: list[int] = []

    async def main() -> tuple[Any, int]:
        result = await with_retries(
            lambda: pool.send(message("busy@example.com"), "s@example.com", ["busy@example.com"]),
            FAST,
            on_retry=lambda attempt, exc: retries.append(attempt),
        )
        await pool.close()
        return result

    _, attempts = run(main())
    assert attempts == 3 and retries == [1, 2]
    assert smtp_server.handler.by_recipient() == {"busy@example.com": 1}


def test_4xx_gives_up_after_max_attempts(smtp_server: Any) -> None:
    smtp_server.handler.rcpt_replies["busy@example.com"] = ["451 later"] * 10
    pool = SmtpPool(smtp_server.smtp_def(pool_size=1))

    async def main() -> None:
        try:
            await with_retries(
                lambda: pool.send(message("busy@example.com"), "s@x.com", ["busy@example.com"]),
                FAST,
            )
        finally:
            await pool.close()

    with pytest.raises(SoftBounce) as info:
        run(main())
    assert info.value.code == 451
    assert smtp_server.handler.rcpt_replies["busy@example.com"] == ["451 later"] * 6


def test_5xx_recipient_is_a_hard_bounce_and_not_retried(smtp_server: Any) -> None:
    smtp_server.handler.rcpt_replies["gone@example.com"] = ["550 no such user"] * 3
    pool = SmtpPool(smtp_server.smtp_def(pool_size=1))

    async def main() -> None:
        try:
            await with_retries(
                lambda: pool.send(message("gone@example.com"), "s@x.com", ["gone@example.com"]),
                FAST,
            )
        finally:
            await pool.close()

    with pytest.raises(HardBounce) as info:
        run(main())
    assert isinstance(info.value, Terminal) and info.value.code == 550
    assert len(smtp_server.handler.rcpt_replies["gone@example.com"]) == 2  # tried once


def test_5xx_on_data_is_rejected_but_connection_is_reused(smtp_server: Any) -> None:
    smtp_server.handler.data_replies = ["554 content refused"]
    pool = SmtpPool(smtp_server.smtp_def(pool_size=1))

    async def main() -> None:
        with pytest.raises(MessageRejected):
            await pool.send(message("a@example.com"), "s@x.com", ["a@example.com"])
        await pool.send(message("b@example.com"), "s@x.com", ["b@example.com"])
        await pool.close()

    run(main())
    assert smtp_server.handler.by_recipient() == {"b@example.com": 1}
    assert pool.opened == 1


def test_dropped_connection_is_transient_and_reconnects(smtp_server: Any) -> None:
    smtp_server.handler.drops = 1
    pool = SmtpPool(smtp_server.smtp_def(pool_size=1))

    async def main() -> int:
        _, attempts = await with_retries(
            lambda: pool.send(message("a@example.com"), "s@x.com", ["a@example.com"]), FAST
        )
        await pool.close()
        return int(attempts)

    assert run(main()) == 2
    assert smtp_server.handler.by_recipient() == {"a@example.com": 1}
    assert pool.opened == 2


def test_unreachable_server_is_a_transient_connection_error(unused_port: int) -> None:
    from segmint.config.model import SmtpDef

    pool = SmtpPool(SmtpDef(host="127.0.0.1", port=unused_port, timeout=2.0))
    with pytest.raises(ConnectionDropped) as info:
        run(pool.send(message("a@example.com"), "s@x.com", ["a@example.com"]))
    assert isinstance(info.value, Transient)


def test_classify_marks_by_reply_code() -> None:
    import aiosmtplib

    assert isinstance(classify(aiosmtplib.SMTPDataError(451, "later")), Transient)
    assert isinstance(classify(aiosmtplib.SMTPDataError(552, "too big")), MessageRejected)
    assert isinstance(classify(aiosmtplib.SMTPServerDisconnected("gone")), ConnectionDropped)
    assert isinstance(classify(ValueError("bad address")), Terminal)
