"""Browser intake: events/s through ``POST /v1/t``, as Analytics.js sends them.

A real ``segmint serve --no-realtime`` process on 127.0.0.1 (the example DuckDB workspace,
group commit) receives one event per request over 64 keep-alive connections, the way
browsers send: ``text/plain`` bodies with the ``writeKey`` inside and an ``Origin`` header,
so CORS, the origin check and the per-IP rate limiter all run (the key's rate is set above
what one address sends here; every connection comes from 127.0.0.1). Every 200 means the
event is durably committed.

Figure: events/s acknowledged by ``/v1/t``. Baseline: the same events sent in the same run
to the same server's ``POST /v1/track`` as a server library sends them (JSON, HTTP Basic
key, no Origin). The runs alternate, each path going first in every other round (the store
grows as they go), and each path keeps its best of ``ROUNDS``. Goal: >= 0.9x the baseline.
Also printed: the server's CPU time per event on each path, which depends less on what else
the machine is running.

Size: ``SEGMINT_BENCH_SCALE`` (default 1) times 8,000 requests per run;
``SEGMINT_BENCH_CONNECTIONS`` connections (default 64).
"""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

import common as _common
from segmint.clock import SystemClock
from segmint.intake.keys import create_key
from segmint.workspace import Workspace

report = _common.report

SCALE = float(os.environ.get("SEGMINT_BENCH_SCALE", "1"))
REQUESTS = int(8_000 * SCALE)
CONNECTIONS = int(os.environ.get("SEGMINT_BENCH_CONNECTIONS", "64"))
ROUNDS = 4
ORIGIN = "https://shop.example"
USERS = 20_000


def make_events(run: str) -> list[dict[str, object]]:
    events = []
    for r in range(REQUESTS):
        user = (r * 7919) % USERS
        events.append({
            "type": "track", "event": "Product Viewed", "messageId": f"{run}-{r}",
            "anonymousId": f"anon-{user}", "timestamp": "2026-03-01T11:59:00.000Z",
            "sentAt": "2026-03-01T11:59:00.100Z",
            "properties": {"sku": f"sku-{r % 1000}", "category": "shoes", "price": 19.5},
            "context": {"library": {"name": "analytics.js", "version": "next-1.84.3"},
                        "page": {"path": "/p/1", "url": "https://shop.example/p/1"},
                        "userAgent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/156.0"},
        })  # fmt: skip
    return events


def browser_requests(events: list[dict[str, object]], key: str) -> list[bytes]:
    out = []
    for event in events:
        body = orjson.dumps(event | {"writeKey": key})
        out.append(
            b"POST /v1/t HTTP/1.1\r\nHost: bench\r\nOrigin: " + ORIGIN.encode()
            + b"\r\nContent-Type: text/plain\r\nContent-Length: "
            + str(len(body)).encode() + b"\r\n\r\n" + body
        )  # fmt: skip
    return out


def server_requests(events: list[dict[str, object]], key: str) -> list[bytes]:
    auth = base64.b64encode(f"{key}:".encode())
    out = []
    for event in events:
        body = orjson.dumps(event)
        out.append(
            b"POST /v1/track HTTP/1.1\r\nHost: bench\r\nAuthorization: Basic " + auth
            + b"\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode() + b"\r\n\r\n" + body
        )  # fmt: skip
    return out


async def connection(port: int, requests: list[bytes], origin: bytes | None) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for request in requests:
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        length, allowed = 0, None
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
            elif name.lower() == b"access-control-allow-origin":
                allowed = value.strip()
        payload = await reader.readexactly(length)
        if head[9:12] != b"200" or allowed != origin:
            raise RuntimeError(f"{head[:200]!r} {payload[:200]!r}")
    writer.close()
    await writer.wait_closed()


def blast(port: int, requests: list[bytes], origin: bytes | None) -> float:
    shares = [requests[i::CONNECTIONS] for i in range(CONNECTIONS)]

    async def run() -> None:
        await asyncio.gather(*(connection(port, s, origin) for s in shares))

    start = time.perf_counter()
    asyncio.run(run())
    return len(requests) / (time.perf_counter() - start)


def measured(
    pid: int, port: int, requests: list[bytes], origin: bytes | None
) -> tuple[float, float]:
    """Events/s, and the server's CPU microseconds per event."""
    before = _common.cpu_seconds(pid)
    rate = blast(port, requests, origin)
    return rate, (_common.cpu_seconds(pid) - before) / len(requests) * 1e6


def start_server(folder: Path, port: int) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "segmint", "-w", str(folder), "serve", "--port", str(port),
           "--no-realtime"]  # fmt: skip
    return _common.start_serving(cmd, port, tries=600)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "ws"
        with Workspace.init(folder, name="bench") as ws:
            now = SystemClock().now()
            _, public = create_key(ws.store, "site", now=now, origins=(ORIGIN,), ip_rate=1e9)
            _, server = create_key(ws.store, "backend", now=now)
        port = _common.free_port()
        proc = start_server(folder, port)
        browser: list[tuple[float, float]] = []
        baseline: list[tuple[float, float]] = []
        try:
            blast(port, server_requests(make_events("warm"), server)[:2000], None)
            for n in range(ROUNDS):  # alternate which goes first: the store grows as we go
                runs = [
                    (baseline, server_requests(make_events(f"s{n}"), server), None),
                    (browser, browser_requests(make_events(f"b{n}"), public), ORIGIN.encode()),
                ]
                for results, sent, origin in runs[:: 1 if n % 2 == 0 else -1]:
                    results.append(measured(proc.pid, port, sent, origin))
        finally:
            proc.terminate()
            proc.wait(30)
        with Workspace.open(folder) as ws:
            stored = ws.store.fetchall("SELECT count(*) FROM events WHERE message_id LIKE 'b%'")
        assert stored[0][0] == REQUESTS * ROUNDS, stored
    print(f"{REQUESTS} requests of one event per run, {ROUNDS} rounds, {CONNECTIONS} "
          f"connections, scale {SCALE}; load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} CPUs")  # fmt: skip
    for name, runs in (("/v1/t", browser), ("/v1/track", baseline)):
        print(f"{name}: " + ", ".join(f"{r:,.0f} events/s ({c:.0f} us CPU/event)" for r, c in runs))
    best, base = max(r for r, _ in browser), max(r for r, _ in baseline)
    cpu, base_cpu = min(c for _, c in browser), min(c for _, c in baseline)
    report(
        "browser ingest /v1/t server CPU per event",
        cpu,
        "us/event",
        baseline=base_cpu,
        baseline_name="same server /v1/track",
        ratio=cpu / base_cpu,
        goal="context: <= 1.1x, independent of the machine's load",
    )
    report(
        "browser ingest /v1/t text/plain, one event per request, durable",
        best,
        "events/s",
        baseline=base,
        baseline_name="same server /v1/track, one event per request",
        ratio=best / base,
        goal=">= 0.9x /v1/track",
    )


if __name__ == "__main__":
    main()
