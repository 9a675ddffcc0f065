"""Durable ingest through the tracking API: events/s through ``POST /v1/batch``.

A real ``segmint serve --no-realtime`` process on 127.0.0.1 (the example DuckDB workspace,
group commit) receives batches of 100 Segment-spec events (a realistic mix: tracks with
properties, some identifies with email traits, 20,000 known users and their anonymous ids)
over several keep-alive connections. Every 200 means the events are durably committed.

Figure: events/s acknowledged by ``/v1/batch``. Baseline: the same requests sent to the same
server's ``/bench/noop`` (reads the body like the tracking endpoints and answers; the HTTP
stack's own limit). That route exists only in the benchmark's server: this script runs
``segmint serve`` in its own process with :data:`router` added to the app's routers. Goal:
>= 30,000 events/s durable.

Also printed: the same server with real-time membership attached (``serve --realtime``, the
default: traits and segments updated in the commit path), on a tenth of the requests, with
its ratio to the same server without real time (goal >= 30,000 events/s, >= 0.6). Before it
starts, ``segmint refresh`` and ``segmint rebuild`` run on the events the first server
stored, as after a bulk import: every profile then has memberships and trait state, as on a
server that ran with real time all along (without them, each profile's first event rebuilds
its state from all its stored events: measured a quarter of the server's CPU); and the
server's CPU time per event (all its threads), which does not depend on what else the machine
is running.

Size: ``SEGMINT_BENCH_SCALE`` (default 1) times 3,000 requests (300,000 events);
``SEGMINT_BENCH_CONNECTIONS`` connections (default 64).
"""

from __future__ import annotations

import asyncio
import base64
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

import common as _common
from segmint.api.tracking import read_body, success
from segmint.intake.keys import create_key
from segmint.intake.payloads import MAX_BATCH_BYTES
from segmint.workspace import Workspace

report = _common.report

SCALE = float(os.environ.get("SEGMINT_BENCH_SCALE", "1"))
REQUESTS = int(3000 * SCALE)
PER_REQUEST = 100
CONNECTIONS = int(os.environ.get("SEGMINT_BENCH_CONNECTIONS", "64"))
USERS = 20_000
EVENTS = ("Product Viewed", "Order Completed", "Cart Abandoned", "Page Viewed")
NOOP = "/bench/noop"

router = APIRouter()


@router.post(NOOP)
async def noop(request: Request) -> Response:
    """Read the body and answer success without storing anything: the baseline."""
    await read_body(request, MAX_BATCH_BYTES)
    return success()


def make_bodies(run: str) -> list[bytes]:
    rng = random.Random(7)
    bodies = []
    for r in range(REQUESTS):
        batch = []
        for i in range(PER_REQUEST):
            user = rng.randrange(USERS)
            msg = {
                "messageId": f"{run}-{r}-{i}",
                "anonymousId": f"anon-{user}",
                "timestamp": "2026-03-01T11:59:00.000Z",
                "context": {"library": {"name": "bench", "version": "1"}, "ip": "10.0.0.1"},
            }
            if rng.random() < 0.1:
                traits = {"email": f"user{user}@example.com", "first_name": "Ann"}
                msg |= {"type": "identify", "userId": f"user-{user}", "traits": traits}
            else:
                msg |= {"type": "track", "event": rng.choice(EVENTS),
                        "properties": {"total": round(rng.uniform(5, 500), 2),
                                       "category": rng.choice(["shoes", "bags", "hats"]),
                                       "sku": f"sku-{rng.randrange(1000)}"}}  # fmt: skip
            batch.append(msg)
        bodies.append(orjson.dumps({"batch": batch, "sentAt": "2026-03-01T11:59:01.000Z"}))
    return bodies


async def connection(port: int, path: bytes, auth: bytes, bodies: list[bytes]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = b"POST " + path + b" HTTP/1.1\r\nHost: bench\r\nAuthorization: Basic " + auth
    head += b"\r\nContent-Type: application/json\r\nContent-Length: "
    for body in bodies:
        writer.write(head + str(len(body)).encode() + b"\r\n\r\n" + body)
        response = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in response.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        payload = await reader.readexactly(length)
        if response[9:12] != b"200":
            raise RuntimeError(f"{response[:12]!r} {payload[:200]!r}")
    writer.close()
    await writer.wait_closed()


def blast(port: int, path: str, key: str, bodies: list[bytes]) -> float:
    auth = base64.b64encode(f"{key}:".encode())
    shares = [bodies[i::CONNECTIONS] for i in range(CONNECTIONS)]

    async def run() -> None:
        await asyncio.gather(*(connection(port, path.encode(), auth, s) for s in shares))

    start = time.perf_counter()
    asyncio.run(run())
    return len(bodies) * PER_REQUEST / (time.perf_counter() - start)


def start_server(folder: Path, port: int, realtime: bool) -> subprocess.Popen[bytes]:
    """``segmint serve`` in its own process, with the baseline route added (see :func:`serve`)."""
    flag = "--realtime" if realtime else "--no-realtime"
    cmd = [sys.executable, __file__, "serve", "-w", str(folder), "serve", "--port", str(port), flag]
    return _common.start_serving(cmd, port, tries=300)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "ws"
        with Workspace.init(folder, name="bench") as ws:
            _, key = create_key(ws.store, "bench", now=ws_now())
        port = _common.free_port()
        warm, noop_bodies, bodies = make_bodies("warm"), make_bodies("noop"), make_bodies("run")
        live = make_bodies("live")[: max(1, REQUESTS // 10)]
        proc = start_server(folder, port, realtime=False)
        try:
            blast(port, "/v1/batch", key, warm[: max(1, len(warm) // 5)])  # known users
            noop = blast(port, NOOP, key, noop_bodies)
            cpu_before = _common.cpu_seconds(proc.pid)
            durable = blast(port, "/v1/batch", key, bodies)
            cpu = _common.cpu_seconds(proc.pid) - cpu_before
        finally:
            proc.terminate()
            proc.wait(30)
        for command in ("refresh", "rebuild"):  # state as a server with real time has it
            segmint = [sys.executable, "-m", "segmint", "-w", str(folder), command]
            subprocess.run(segmint, check=True, stdout=subprocess.DEVNULL)
        proc = start_server(folder, port, realtime=True)
        try:
            with_realtime = blast(port, "/v1/batch", key, live)
        finally:
            proc.terminate()
            proc.wait(30)
        with Workspace.open(folder) as ws:
            stored = ws.store.fetchall("SELECT count(*) FROM events WHERE message_id LIKE 'run-%'")
        assert stored[0][0] == len(bodies) * PER_REQUEST, stored
    print(f"{len(bodies)} requests x {PER_REQUEST} events, {CONNECTIONS} connections, "
          f"scale {SCALE}")  # fmt: skip
    load = os.getloadavg()[0]
    print(f"server CPU {cpu / (len(bodies) * PER_REQUEST) * 1e6:.1f} us/event; "
          f"load average {load:.1f} on {os.cpu_count()} CPUs")  # fmt: skip
    report(
        "ingest durable events per server CPU-second",
        len(bodies) * PER_REQUEST / cpu,
        "events/CPU-s",
        goal="context: throughput if the server had a core to itself",
    )
    report(
        "ingest /v1/batch durable, real-time membership attached",
        with_realtime,
        "events/s",
        baseline=durable,
        baseline_name="same server without real time",
        ratio=with_realtime / durable,
        goal=f">= 30,000 events/s and ratio >= 0.6 ({len(live) * PER_REQUEST} events, traits "
        "and segments kept current)",
    )
    report(
        "ingest /v1/batch durable",
        durable,
        "events/s",
        baseline=noop,
        baseline_name=f"same server {NOOP}",
        ratio=durable / noop,
        goal=">= 30,000 events/s",
    )


def ws_now() -> object:
    from segmint.clock import SystemClock

    return SystemClock().now()


def serve(argv: list[str]) -> None:
    """Run ``segmint ARGV`` (``serve …``) with :data:`router` in every app it creates."""
    from segmint.api import app
    from segmint.cli.main import main as segmint

    app.EXTRA_ROUTERS.append("ingest")  # this file, imported by name (bench/ is on sys.path)
    segmint(argv)


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        serve(sys.argv[2:])
    else:
        main()
