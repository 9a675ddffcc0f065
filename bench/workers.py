"""Partitioned real time: 1, 2 and 4 ``segmint worker`` processes on the mock Kafka cluster.

One PostgreSQL schema holds a demo shop's events (stored once through intake). For each
worker count, the derived state is cleared, the workers join a fresh topic's consumer group
(librdkafka's mock cluster, 4 partitions), and once the group is stable the relay publishes
every event; the figure is events applied per second from the first publish until every
event is applied and every offset committed. Scaling efficiency is the speed-up over one
worker (measured in the same run) divided by the number of workers.

    .venv/bin/python bench/workers.py [--customers 1500]

Environment: ``SEGMINT_TEST_POSTGRES_URL`` (default postgresql://postgres@127.0.0.1:5432/test).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from common import report

from segmint.clock import FixedClock
from segmint.demo import Shop, ShopConfig
from segmint.demo.generator import DEFAULT_AS_OF
from segmint.intake.pipeline import Intake
from segmint.scale.kafka import EventRelay, KafkaTopic
from segmint.scale.worker import worker_lag
from segmint.store.postgres import PostgresStore, drop_schema
from segmint.workspace import Workspace

PG_URL = os.environ.get("SEGMINT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
DEMO = Path(__file__).parents[1] / "src" / "segmint" / "demo" / "workspace"
OPTIONS = "session.timeout.ms=6000&heartbeat.interval.ms=500&log_level=3"
DERIVED = (
    "memberships", "membership_changes", "trait_state", "trait_values", "schedule",
    "worker_applied", "realtime_failures",
)  # fmt: skip
ASSIGNED = re.compile(r"assigned partitions \[([0-9, ]*)\]")


def main() -> None:
    """Run the three worker counts and print events/s and scaling efficiency."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=1500)
    args = parser.parse_args()
    from confluent_kafka import Producer

    cluster = Producer({"test.mock.num.brokers": 1, "log_level": 3})
    brokers = ",".join(
        f"{b.host}:{b.port}" for b in cluster.list_topics(timeout=10).brokers.values()
    )
    schema = f"bench_workers_{uuid.uuid4().hex[:8]}"
    store = PostgresStore(PG_URL, schema=schema)
    db_url = f"{PG_URL}{'&' if '?' in PG_URL else '?'}options=-csearch_path%3D{schema}"
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "shop"
        folder.mkdir()
        shutil.copy(DEMO / "segmint.yaml", folder / "segmint.yaml")
        shutil.copytree(DEMO / "templates", folder / "templates")
        ws = Workspace.open(folder)
        ws._store = store
        messages = list(Shop(ShopConfig(customers=args.customers, seed=5)).messages())
        intake = Intake(ws, FixedClock(DEFAULT_AS_OF))
        for start in range(0, len(messages), 2000):
            intake.submit(messages[start : start + 2000], source="bench")
        events = int(store.fetchall("SELECT count(*) FROM events")[0][0])
        print(f"{events:,} events of {args.customers:,} customers stored in schema {schema}; "
              f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")  # fmt: skip
        rates: dict[int, float] = {}
        try:
            for count in (1, 2, 4):
                rates[count] = run(store, folder, db_url, brokers, count, events, Path(tmp))
        finally:
            store.close()
            drop_schema(PG_URL, schema)
    base = rates[1]
    for count, rate in rates.items():
        report(f"workers x{count} real time", rate, "events/s", baseline=base,
               baseline_name="1 worker", ratio=rate / base)  # fmt: skip
        if count > 1:
            report(f"workers x{count} scaling efficiency", rate / base / count, "ratio",
                   baseline=1.0, baseline_name="linear", ratio=rate / base / count)  # fmt: skip


def run(
    store: PostgresStore, folder: Path, db_url: str, brokers: str, count: int, events: int,
    logs: Path,
) -> float:  # fmt: skip
    """Clear the derived state, start ``count`` workers, publish, wait; return events/s."""
    with store.transaction():
        for table in DERIVED:
            store.execute(f"DELETE FROM {table}")
    topic = f"bench-{count}-{uuid.uuid4().hex[:6]}"
    kafka_url = f"kafka://{brokers}/{topic}?group={topic}&{OPTIONS}"
    relay = EventRelay(store, KafkaTopic.from_url(kafka_url), batch=20_000)
    procs = []
    for n in range(count):
        log = (logs / f"{topic}-{n}.log").open("wb")
        procs.append((subprocess.Popen(
            [sys.executable, "-m", "segmint", "-w", str(folder), "worker", "--kafka", kafka_url,
             "--as-of", DEFAULT_AS_OF.isoformat(), "--log-level", "info", "--name", f"w{n}"],
            env=os.environ | {"SEGMINT_DATABASE_URL": db_url}, stderr=log,
            stdout=subprocess.DEVNULL,
        ), log))  # fmt: skip
    try:
        wait_stable([logs / f"{topic}-{n}.log" for n in range(count)], relay.partitions)
        start = time.perf_counter()
        while relay.publish_pending():
            pass
        published = time.perf_counter() - start
        while worker_lag(store)["pending_events"]:
            time.sleep(0.05)
        seconds = time.perf_counter() - start
    finally:
        relay.close()
        for proc, log in procs:
            proc.terminate()
            proc.wait(timeout=60)
            log.close()
    rate = events / seconds
    print(f"{count} worker(s): {events:,} events in {seconds:.2f} s ({rate:,.0f} events/s; "
          f"publishing took {published:.2f} s)")  # fmt: skip
    return rate


def wait_stable(logs: list[Path], partitions: int, timeout: float = 120.0) -> None:
    """Wait until every worker's latest assignment together covers every partition once."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        latest = []
        for log in logs:
            found = ASSIGNED.findall(log.read_text(errors="replace")) if log.exists() else []
            latest.append([int(p) for p in found[-1].split(",") if p.strip()] if found else None)
        if all(a is not None for a in latest):
            flat = [p for a in latest if a is not None for p in a]
            if sorted(flat) == list(range(partitions)):
                time.sleep(1.0)  # let a rebalance still under way show itself
                return
        time.sleep(0.2)
    raise RuntimeError("the consumer group did not settle")


if __name__ == "__main__":
    main()
