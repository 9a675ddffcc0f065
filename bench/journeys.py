"""Journeys: steps per second, timer lateness in ``serve``, and state per instance.

1. **Throughput.** N active instances (default 100,000; ``SEGMINT_BENCH_SCALE`` multiplies)
   of a journey ``wait 1h → send``, all due at one instant, are advanced by one
   :meth:`JourneyEngine.advance`: every wait ends and every message is composed, decided by
   the delivery policy (consent gate, caps, quiet hours), claimed in the send ledger, handed
   to an in-process SMTP sink (accepts and counts, no network) and marked sent. Figure:
   steps/s on one process (one core: the engine is single-threaded). Baseline: the campaign
   sender (:class:`CampaignRun`, same template, same ledger, same sink) sending the same
   N messages, measured in the same run; the ratio compares messages/s. Goal ≥ 5,000
   steps/s.
2. **Lateness.** ``segmint serve``'s loop (:func:`attach_realtime` + :func:`attach_journeys`,
   system clock) with 300 instances due at distinct instants over 3 s: for each message, the
   wall time the sink received it minus its due instant. Figure: p99 in ms. Goal ≤ 50 ms.
3. **State.** Bytes of ``journey_instances`` per active instance: the row's stored values,
   and the DuckDB file's growth per instance. Goal ≤ 1 KB.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import common
from segmint.clock import FixedClock, SystemClock
from segmint.deliver.campaign import CampaignRun
from segmint.deliver.compose import TemplateComposer
from segmint.deliver.links import LinkSigner
from segmint.deliver.transport import SendReceipt
from segmint.journeys import JourneyEngine
from segmint.store.bulk import insert_rows
from segmint.workspace import Workspace

SCALE = float(os.environ.get("SEGMINT_BENCH_SCALE", "1"))
N = int(100_000 * SCALE)
DUE = datetime(2026, 3, 2, 12, tzinfo=UTC)  # noon UTC: outside the example's quiet hours
JOURNEY = """journeys:
  bench:
    trigger: {event: Bench Start}
    from: "Bench <bench@example.com>"
    steps:
      - {name: hold, wait: 1h}
      - {name: mail, send: lifecycle, topic: newsletter}
"""


class Sink:
    """An in-process SMTP sink: accepts every message and notes when it arrived."""

    def __init__(self) -> None:
        self.count = 0
        self.arrived: dict[str, float] = {}

    async def send(self, message: bytes, sender: str, recipients: Sequence[str]) -> SendReceipt:
        self.count += 1
        now = time.time()
        for rcpt in recipients:
            self.arrived.setdefault(rcpt, now)
        return SendReceipt()

    async def close(self) -> None:
        return None


def workspace(path: Path, n: int, due: datetime) -> Workspace:
    """The example workspace plus a ``bench`` journey, ``n`` profiles, ``n`` due instances."""
    os.environ.setdefault("SEGMINT_SECRET", "bench-secret-0123456789abcdef")
    Workspace.init(path, name="bench").close()
    yaml = path / "segmint.yaml"
    text = yaml.read_text().replace("journeys:\n", JOURNEY, 1)
    text = text.replace("policy: opt_in ", "policy: opt_out ")
    yaml.write_text(text.replace("smtp: {host: 127.0.0.1, port: 1025}",
                                 "smtp: {host: 127.0.0.1, port: 1025, pool_size: 64}"))  # fmt: skip
    ws = Workspace.open(path)
    store = ws.store
    naive = due.replace(tzinfo=None)
    start = naive - timedelta(hours=1)
    with store.transaction():
        store.execute(
            'INSERT INTO trait_values (profile_id, "values", as_of) SELECT '
            "'p' || lpad(CAST(i AS VARCHAR), 7, '0'), "
            '\'{"email": "p\' || CAST(i AS VARCHAR) || \'@example.com", "first_name": "P"}\', '
            "? FROM range(?) t(i)",
            [start, n],
        )
        store.execute(
            "INSERT INTO memberships (segment, profile_id, entered_at) "
            "SELECT 'vip', profile_id, as_of FROM trait_values",
        )
        # known people, as intake would have left them: their announced deliveries
        # (``Email Delivered``) resolve to them instead of making new profiles
        store.execute(
            "INSERT INTO profiles (profile_id, created_at, updated_at) "
            "SELECT profile_id, as_of, as_of FROM trait_values"
        )
        store.execute(
            "INSERT INTO identities (kind, value, profile_id, first_seen_at) "
            "SELECT 'user_id', profile_id, profile_id, as_of FROM trait_values"
        )
    return ws


def add_instances(ws: Workspace, dues: Sequence[datetime]) -> None:
    """Active ``bench`` instances on their wait step, one per profile, due at ``dues``."""
    store = ws.store
    rows = [
        (f"bench:p{i:07d}:1", "bench", f"p{i:07d}", 1, "hold", "active",
         due.replace(tzinfo=None), (due - timedelta(hours=1)).replace(tzinfo=None),
         (due - timedelta(hours=1)).replace(tzinfo=None), None)
        for i, due in enumerate(dues)
    ]  # fmt: skip
    columns = ["instance_id", "journey", "profile_id", "entry", "step", "status", "due_at",
               "step_since", "entered_at", "exit_reason"]  # fmt: skip
    with store.transaction():  # one Arrow insert: the server's timers wait for no writer
        insert_rows(store, "journey_instances", columns, rows)


def throughput(root: Path) -> tuple[float, float, float, float, float, float]:
    ws = workspace(root / "journey", N, DUE)
    add_instances(ws, [DUE] * N)
    sink = Sink()
    engine = JourneyEngine(ws, FixedClock(DUE), transport=lambda: sink, batch=5000)
    start, cpu = time.perf_counter(), time.process_time()
    engine.advance(DUE)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    assert sink.count == N, (sink.count, engine.report)
    steps = engine.report.steps
    ws.close()

    ws = workspace(root / "campaign", N, DUE)
    sink2 = Sink()
    signer = LinkSigner.from_email(ws.definition.email)
    definition = ws.definition.campaigns["lifecycle_update"]
    composer = TemplateComposer(ws, "lifecycle_update", definition, signer, FixedClock(DUE))
    run = CampaignRun(ws, "lifecycle_update", FixedClock(DUE), sink2, composer, concurrency=64)
    start, campaign_cpu = time.perf_counter(), time.process_time()
    report = asyncio.run(run.run())
    campaign_elapsed = time.perf_counter() - start
    campaign_cpu = time.process_time() - campaign_cpu
    assert sink2.count == N, report.to_dict()
    ws.close()
    return (steps / elapsed, steps / cpu, N / elapsed, N / campaign_elapsed, N / cpu,
            N / campaign_cpu)  # fmt: skip


def lateness(root: Path) -> list[float]:
    from segmint.intake.pipeline import Intake
    from segmint.journeys import attach_journeys
    from segmint.membership.service import attach_realtime

    count = 300
    ws = workspace(root / "serve", count, datetime.now(UTC))
    sink = Sink()
    clock = SystemClock()
    intake = Intake(ws, clock)
    service = attach_realtime(ws, intake, clock)
    engine = attach_journeys(ws, intake, service, clock, transport=lambda: sink)
    # the timers are set once the server runs (its start-up catch-up is not a timer's delay)
    started = time.monotonic()
    while engine.ticks == 0 and time.monotonic() < started + 30:
        time.sleep(0.01)
    now = datetime.now(UTC)
    dues = [now + timedelta(seconds=1.0 + 3.0 * i / count) for i in range(count)]
    add_instances(ws, dues)
    service.wake()
    deadline = time.monotonic() + 120
    while sink.count < count and time.monotonic() < deadline:
        time.sleep(0.05)
    service.close()
    service.thread.join()  # a busy machine may keep the last round past close's 5 s
    ws.close()
    return [
        (sink.arrived[f"p{i}@example.com"] - due.timestamp()) * 1000
        for i, due in enumerate(dues)
        if f"p{i}@example.com" in sink.arrived
    ]


def state(root: Path) -> tuple[float, float]:
    n = max(1000, N // 10)
    ws = workspace(root / "state", n, DUE)
    store: Any = ws.store
    store.checkpoint()
    before = (root / "state" / ".segmint" / "segmint.duckdb").stat().st_size
    add_instances(ws, [DUE] * n)
    store.checkpoint()
    after = (root / "state" / ".segmint" / "segmint.duckdb").stat().st_size
    row = store.fetchall(
        "SELECT avg(strlen(instance_id) + strlen(journey) + strlen(profile_id)"
        " + strlen(step) + strlen(status)) + 4 + 3 * 8 FROM journey_instances"
    )[0][0]
    ws.close()
    return float(row), (after - before) / n


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="segmint-bench-journeys-"))
    try:
        steps, steps_cpu, messages, campaign, messages_cpu, campaign_cpu = throughput(root)
        common.report(
            f"journey steps ({N:,} instances: wait ends, send), wall clock", steps, "steps/s",
            goal=">= 5,000 steps/s per core",
        )  # fmt: skip
        # per core: the process's CPU seconds (all its threads), so a busy machine's other
        # work is not counted against the engine
        common.report(
            "journey steps per CPU-second of the process", steps_cpu, "steps/s",
            goal=">= 5,000 steps/s per core",
        )  # fmt: skip
        common.report(
            "journey messages vs the campaign sender (same messages, in-process sink)",
            messages, "messages/s", baseline=campaign, baseline_name="campaign send",
            ratio=messages / campaign,
        )  # fmt: skip
        common.report(
            "journey messages vs the campaign sender, per CPU-second",
            messages_cpu, "messages/s", baseline=campaign_cpu, baseline_name="campaign send",
            ratio=messages_cpu / campaign_cpu,
        )  # fmt: skip
        late = sorted(lateness(root))
        p99 = late[min(len(late) - 1, int(len(late) * 0.99))] if late else float("nan")
        common.report(
            f"timer lateness in serve, p99 ({len(late)} timers, median "
            f"{statistics.median(late) if late else float('nan'):.1f} ms)",
            p99, "ms", goal="<= 50 ms",
        )  # fmt: skip
        row, disk = state(root)
        common.report("state per instance (stored row values)", row, "bytes", goal="<= 1 KB")
        common.report("state per instance (DuckDB file growth)", disk, "bytes", goal="<= 1 KB")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
