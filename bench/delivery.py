"""SMTP delivery throughput: segmint's pool against bare aiosmtplib, to a local aiosmtpd.

Figure: messages/s delivered through :class:`segmint.deliver.SmtpPool` (N pooled
connections, marked errors, retry wrapper, rate limiter off), driven by N workers as a
campaign run drives it. Baseline: aiosmtplib sending the same prebuilt messages over the
same number of connections (one loop per connection, sharing a queue), measured in the same run
against the same server. Goal: ratio >= 0.8.

The server (aiosmtpd, accepting and counting) runs in a separate process, so client and
server do not share one event loop. Size: ``SEGMINT_BENCH_SCALE`` multiplies the default
2,000 messages of about 5 KB; ``SEGMINT_BENCH_CONNECTIONS`` sets N (default 4).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import socket
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiosmtplib

import common
from segmint.config.model import SmtpDef
from segmint.deliver.retry import RetryPolicy, with_retries
from segmint.deliver.transport import SmtpPool

SCALE = float(os.environ.get("SEGMINT_BENCH_SCALE", "1"))
MESSAGES = int(2000 * SCALE)
CONNECTIONS = int(os.environ.get("SEGMINT_BENCH_CONNECTIONS", "4"))
REPEAT = 5


class CountingHandler:
    def __init__(self) -> None:
        self.count = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.count += 1
        return "250 OK"


def serve(port: int, ready: Any, stop: Any) -> None:
    from aiosmtpd.controller import Controller

    controller = Controller(CountingHandler(), hostname="127.0.0.1", port=port)
    controller.start()
    ready.set()
    stop.wait()
    controller.stop()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def build_messages(n: int) -> list[tuple[bytes, str]]:
    body = ("Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 85)[:5000]
    out = []
    for i in range(n):
        msg = EmailMessage()
        msg["From"] = "Shop <shop@example.com>"
        msg["To"] = f"user{i}@example.com"
        msg["Subject"] = f"Hello {i}"
        msg["Message-ID"] = f"<{i}@bench.example.com>"
        msg.set_content(body)
        out.append((msg.as_bytes(), f"user{i}@example.com"))
    return out


async def bare(port: int, messages: list[tuple[bytes, str]]) -> None:
    """The baseline: N aiosmtplib connections, each taking the next message from a queue."""
    queue: asyncio.Queue[tuple[bytes, str]] = asyncio.Queue()
    for item in messages:
        queue.put_nowait(item)

    async def loop() -> None:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False)
        await client.connect()
        while not queue.empty():
            data, rcpt = queue.get_nowait()
            await client.sendmail("shop@example.com", [rcpt], data)
        await client.quit()

    await asyncio.gather(*(loop() for _ in range(CONNECTIONS)))


async def pooled(port: int, messages: list[tuple[bytes, str]]) -> None:
    """segmint: N workers pulling from a queue, sending through the pool with retries."""
    pool = SmtpPool(SmtpDef(host="127.0.0.1", port=port, pool_size=CONNECTIONS))
    policy = RetryPolicy()
    queue: asyncio.Queue[tuple[bytes, str]] = asyncio.Queue()
    for item in messages:
        queue.put_nowait(item)

    async def one(data: bytes, rcpt: str) -> None:
        await with_retries(lambda: pool.send(data, "shop@example.com", [rcpt]), policy)

    async def worker() -> None:
        while not queue.empty():
            await one(*queue.get_nowait())

    await asyncio.gather(*(worker() for _ in range(CONNECTIONS)))
    await pool.close()


def timed(port: int, messages: list[tuple[bytes, str]]) -> tuple[float, float]:
    """Best rate of each path, alternating them so machine noise hits both alike."""
    best = {bare: float("inf"), pooled: float("inf")}
    for _ in range(REPEAT):
        for fn in (bare, pooled):
            start = time.perf_counter()
            asyncio.run(fn(port, messages))
            best[fn] = min(best[fn], time.perf_counter() - start)
    return len(messages) / best[bare], len(messages) / best[pooled]


def campaign_rate(port: int, n: int) -> float:
    """Messages/s of a whole campaign run: gate, ledger, render, pool, Email Delivered."""
    import tempfile
    from datetime import UTC, datetime

    import orjson

    from segmint.clock import FixedClock
    from segmint.deliver.consent import record_consent
    from segmint.deliver.service import send_campaign
    from segmint.workspace import Workspace

    os.environ.setdefault("SEGMINT_SECRET", "bench-secret-0123456789abcdef")
    at = datetime(2026, 3, 1, tzinfo=UTC)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ws"
        Workspace.init(path, name="bench").close()
        yaml_file = path / "segmint.yaml"
        yaml_file.write_text(
            yaml_file.read_text().replace(
                "smtp: {host: 127.0.0.1, port: 1025}",
                f"smtp: {{host: 127.0.0.1, port: {port}, pool_size: {CONNECTIONS}}}",
            )
        )
        with Workspace.open(path) as ws:
            store = ws.store
            naive = at.replace(tzinfo=None)
            for i in range(n):
                pid = f"p{i:06d}"
                traits = {"email": f"user{i}@example.com", "first_name": f"N{i}"}
                store.execute(
                    'INSERT INTO trait_values (profile_id, "values", as_of) VALUES (?, ?, ?)',
                    [pid, orjson.dumps(traits).decode(), naive],
                )
                store.execute("INSERT INTO memberships VALUES ('vip', ?, ?)", [pid, naive])
                record_consent(store, pid, "*", "granted", source="bench", at=at)
            start = time.perf_counter()
            report = send_campaign(ws, "lifecycle_update", clock=FixedClock(at))
            elapsed = time.perf_counter() - start
    assert report.sent == n, report
    return n / elapsed


def main() -> None:
    port = free_port()
    ctx = multiprocessing.get_context("spawn")
    ready, stop = ctx.Event(), ctx.Event()
    server = ctx.Process(target=serve, args=(port, ready, stop), daemon=True)
    server.start()
    ready.wait(30)
    try:
        messages = build_messages(MESSAGES)
        asyncio.run(bare(port, messages[:50]))  # warm up both paths
        asyncio.run(pooled(port, messages[:50]))
        baseline, figure = timed(port, messages)
        whole = campaign_rate(port, max(200, MESSAGES // 4))
    finally:
        stop.set()
        server.join(10)
    print(f"{MESSAGES} messages of ~5 KB over {CONNECTIONS} connections, best of {REPEAT}")
    common.report(
        "delivery: messages/s through the SMTP pool",
        figure,
        "messages/s",
        baseline=baseline,
        baseline_name=f"aiosmtplib, prebuilt messages, {CONNECTIONS} connections",
        ratio=figure / baseline,
        goal="ratio >= 0.8",
    )
    common.report(
        "delivery: messages/s of a whole campaign run (gate, ledger, render, pool, events)",
        whole,
        "messages/s",
        baseline=figure,
        baseline_name="the SMTP pool alone, prebuilt messages",
        ratio=whole / figure,
        goal="informational: bound by ledger commits (each claim is durable before its send)",
    )


if __name__ == "__main__":
    main()
