"""The change feed on PostgreSQL: another process's events applied by a server's real time.

A server's real-time engine (with the scaffold workspace's segments) follows the store's
commit-ordered change feed, as ``segmint serve`` does; a second process writes events
through its own intake (as ``segmint ingest`` or ``consume`` would).

Figures:
- feed.events_per_s: events written by the other process (batches of 1,000, as fast as it
  can) and applied by the server's feed, per second from the first commit to the last
  apply. Baseline: the same events through the server's own intake, applied by the
  in-process listener path (ratio = feed / in-process).
- feed.latency_p99_ms: wall time from a commit in the other process (5 events a commit,
  50 commits a second) until the server applied it. Baseline: the same commits through the
  in-process path (commit until the listener returned). The feed polls every 100 ms when
  nothing wakes it, so this is mostly the poll interval (goal: within a second).

PostgreSQL: ``SEGMINT_TEST_POSTGRES_URL`` (or the local default); a schema is made and
dropped.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from common import PG_URL, pg_schema, report  # noqa: E402

BURST, BURST_BATCH = 20_000, 1_000
TICKS, TICK_EVENTS, TICK_RATE = 150, 5, 50.0
PROFILES = 2_000

WRITER = """
import json, sys, time
from segmint.intake.pipeline import Intake
from segmint.workspace import Workspace
from bench_feed_events import batch
ws = Workspace.open(sys.argv[1])
intake = Intake(ws)
mode, out = sys.argv[2], sys.argv[3]
stamps = {}
if mode == "burst":
    for n in range(%(burst)d // %(burst_batch)d):
        messages = batch("b", n * %(burst_batch)d, %(burst_batch)d)
        intake.submit(messages, source="bench")
        stamps[messages[0]["messageId"]] = time.time()
else:
    for n in range(%(ticks)d):
        started = time.time()
        messages = batch("t", n * %(tick_events)d, %(tick_events)d)
        intake.submit(messages, source="bench")
        stamps[messages[0]["messageId"]] = time.time()
        time.sleep(max(0.0, 1 / %(rate)f - (time.time() - started)))
json.dump(stamps, open(out, "w"))
ws.close()
"""

EVENTS = """
def batch(prefix, start, count):
    return [{"type": "track", "event": "Order Completed", "userId": f"u{i %% %(profiles)d}",
             "messageId": f"{prefix}{i}", "timestamp": "2026-11-01T00:00:00Z",
             "properties": {"total": 10 + i %% 90}} for i in range(start, start + count)]
"""


class Stamping:
    """The engine, noting when each event was applied (by message id)."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.applied: dict[str, float] = {}
        self.lock = threading.Lock()

    def _stamp(self, events: Sequence[Any]) -> None:
        now = time.time()
        with self.lock:
            for event in events:
                self.applied[event.message_id] = now

    def __call__(self, events: Sequence[Any], merges: Sequence[Any] = ()) -> None:
        self.engine(events, merges)
        self._stamp(events)

    def process(
        self,
        events: Sequence[Any],
        merges: Sequence[Any] = (),
        as_of: datetime | None = None,
        **kwargs: Any,
    ) -> Any:
        # (the follower passes its feed's position: ``delivered``, ``unapplied``)
        found = self.engine.process(events, merges, as_of, **kwargs)
        self._stamp(events)
        return found

    def __getattr__(self, name: str) -> Any:
        """Everything else the follower asks of its engine, the engine's own."""
        return getattr(self.engine, name)


def main() -> None:
    from segmint.clock import SystemClock
    from segmint.intake.pipeline import Intake
    from segmint.membership.feed import ChangeFeed
    from segmint.membership.follow import Follower
    from segmint.membership.service import Membership
    from segmint.store.postgres import PostgresStore, drop_schema
    from segmint.workspace import Workspace

    made = pg_schema("bench_feed", "feed")
    if made is None:
        return
    schema, os.environ["SEGMINT_DATABASE_URL"] = made
    tmp = Path(tempfile.mkdtemp())
    (tmp / "bench_feed_events.py").write_text(EVENTS % {"profiles": PROFILES})
    ws = Workspace.init(tmp / "ws", name="feed-bench")
    clock = SystemClock()
    membership = Membership(ws)
    engine = Stamping(membership.realtime(clock, checkpoint_every=1.0))
    store = ws.store
    assert isinstance(store, PostgresStore)
    follower = Follower(engine, ChangeFeed(store.reopen(), owned=True), clock)
    assert follower.lead(clock.now())
    follower.start()
    intake = Intake(ws, clock)
    intake.add_listener(follower)
    intake.watch_commits(follower)
    sys.path.insert(0, str(tmp))
    from bench_feed_events import batch  # type: ignore[import-not-found]

    try:
        # in-process baseline: the server's own intake, applied by the listener
        started = time.time()
        for n in range(BURST // BURST_BATCH):
            intake.submit(batch("ib", n * BURST_BATCH, BURST_BATCH), source="bench")
        local_rate = BURST / (time.time() - started)
        local_latency = []
        for n in range(TICKS):
            t0 = time.time()
            intake.submit(batch("it", n * TICK_EVENTS, TICK_EVENTS), source="bench")
            local_latency.append(time.time() - t0)  # commit + apply (the listener runs inside)
            time.sleep(max(0.0, 1 / TICK_RATE - (time.time() - t0)))

        feed_rate = _other_process(tmp, "burst", engine, lambda s: BURST / s)
        latency = _other_process(tmp, "ticks", engine, None)
    finally:
        follower.close()
        ws.close()
        drop_schema(PG_URL, schema)

    report("feed.events_per_s", feed_rate, "events/s", baseline=local_rate,
           baseline_name="in-process listener", ratio=feed_rate / local_rate)  # fmt: skip
    p99 = statistics.quantiles(latency, n=100)[98] * 1000
    base99 = statistics.quantiles(local_latency, n=100)[98] * 1000
    print(f"feed apply latency p50 {statistics.median(latency) * 1000:.1f} ms")
    report("feed.latency_p99_ms", p99, "ms", baseline=base99,
           baseline_name="in-process commit+apply", ratio=p99 / base99,
           goal="<= 1000 ms")  # fmt: skip


def _other_process(tmp: Path, mode: str, engine: Stamping, rate: Any) -> Any:
    out = tmp / f"{mode}.json"
    script = WRITER % {"burst": BURST, "burst_batch": BURST_BATCH, "ticks": TICKS,
                       "tick_events": TICK_EVENTS, "rate": TICK_RATE}  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(tmp)}
    subprocess.run([sys.executable, "-c", script, str(tmp / "ws"), mode, str(out)], env=env,
                   check=True)  # fmt: skip
    stamps: dict[str, float] = json.loads(out.read_text())
    count = BURST if mode == "burst" else TICKS * TICK_EVENTS
    prefix = "b" if mode == "burst" else "t"
    deadline = time.time() + 300
    while _applied(engine, prefix) < count:
        if time.time() > deadline:
            raise RuntimeError("the feed did not apply every event")
        time.sleep(0.01)
    if rate is not None:
        first = min(stamps.values()) - _commit_seconds(stamps)
        with engine.lock:
            last = max(v for k, v in engine.applied.items() if k.startswith(prefix))
        return rate(last - first)
    return [engine.applied[mid] - at for mid, at in stamps.items()]


def _applied(engine: Stamping, prefix: str) -> int:
    with engine.lock:
        return sum(1 for k in engine.applied if k.startswith(prefix))


def _commit_seconds(stamps: dict[str, float]) -> float:
    """Roughly one batch's commit time (the first batch's start is not stamped)."""
    times = sorted(stamps.values())
    return (times[-1] - times[0]) / max(1, len(times) - 1)


if __name__ == "__main__":
    main()
