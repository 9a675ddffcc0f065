"""Partitioned real time: 1, 2 and 4 ``segmint worker`` processes on the mock Kafka cluster.

One PostgreSQL schema holds a demo shop's events (stored once through intake). For each
worker count, the derived state is cleared, the workers join a fresh topic's consumer group
(librdkafka's mock cluster, 4 partitions), and once the group is stable every event is
produced (the relay's messages, encoded beforehand); the figure is events applied per
second from the first message produced until every event is applied. Scaling efficiency is
the speed-up over one worker (measured in the same run) divided by the number of workers.
The relay's own speed (reading the store, encoding, producing) is measured apart, against
producing the same messages already encoded.

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

from common import cpu_seconds, report
from segmint.clock import FixedClock
from segmint.demo import Shop, ShopConfig
from segmint.demo.generator import DEFAULT_AS_OF
from segmint.intake.pipeline import Intake
from segmint.scale.kafka import (
    RELAY_COLUMNS,
    EventRelay,
    KafkaTopic,
    encode_event,
    partition_of,
)
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
        per_cpu: dict[int, float] = {}
        try:
            bodies = encoded(store)
            relay_rate, raw_rate = relay_speed(store, brokers, bodies)
            report("relay publish", relay_rate, "events/s", baseline=raw_rate,
                   baseline_name="producing pre-encoded", ratio=relay_rate / raw_rate)  # fmt: skip
            for count in (1, 2, 4):
                rates[count], per_cpu[count] = run(
                    store, folder, db_url, brokers, count, bodies, Path(tmp)
                )
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
        report(f"workers x{count} per worker CPU-second", per_cpu[count], "events/s",
               baseline=per_cpu[1], baseline_name="1 worker",
               ratio=per_cpu[count] / per_cpu[1])  # fmt: skip


def encoded(store: PostgresStore) -> list[tuple[str, bytes]]:
    """Every stored event as the relay publishes it: (profile id, message body)."""
    rows = store.fetchall(f"SELECT {RELAY_COLUMNS} FROM events ORDER BY seq")
    return [(str(row[3]), encode_event(row)) for row in rows]


def produce(brokers: str, topic: str, partitions: int, bodies: list[tuple[str, bytes]]) -> None:
    """Produce ``bodies`` to their profiles' partitions and wait for the acknowledgements."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": brokers, "linger.ms": 2, "log_level": 3})
    for pid, body in bodies:
        while True:
            try:
                producer.produce(topic, body, partition=partition_of(pid, partitions))
                break
            except BufferError:
                producer.poll(0.1)
    producer.flush(60)


def relay_speed(
    store: PostgresStore, brokers: str, bodies: list[tuple[str, bytes]]
) -> tuple[float, float]:
    """Events/s of the relay over the stored events, and of producing them pre-encoded."""
    topic = f"relay-{uuid.uuid4().hex[:6]}"
    relay = EventRelay(store, KafkaTopic.from_url(f"kafka://{brokers}/{topic}?{OPTIONS}"),
                       batch=20_000)  # fmt: skip
    start = time.perf_counter()
    relay.publish_pending()
    while relay.more:
        relay.publish_pending()
    relay_seconds = time.perf_counter() - start
    partitions = relay.partitions
    relay.close()
    raw_topic = KafkaTopic.from_url(f"kafka://{brokers}/raw-{topic}?{OPTIONS}")
    raw_topic.ensure()
    start = time.perf_counter()
    produce(brokers, raw_topic.topic, partitions, bodies)
    raw_seconds = time.perf_counter() - start
    return len(bodies) / relay_seconds, len(bodies) / raw_seconds


def run(
    store: PostgresStore, folder: Path, db_url: str, brokers: str, count: int,
    bodies: list[tuple[str, bytes]], logs: Path,
) -> tuple[float, float]:  # fmt: skip
    """Clear the derived state, start ``count`` workers, publish, wait.

    Returns:
        Events/s, and events per CPU-second of the workers (their overhead, apart from
        how many cores the machine could give them).
    """
    with store.transaction():
        for table in DERIVED:
            store.execute(f"DELETE FROM {table}")
    topic = f"bench-{count}-{uuid.uuid4().hex[:6]}"
    kafka_url = f"kafka://{brokers}/{topic}?group={topic}&{OPTIONS}"
    partitions = KafkaTopic.from_url(kafka_url).ensure()
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
        wait_stable([logs / f"{topic}-{n}.log" for n in range(count)], partitions)
        cpu = sum(cpu_seconds(proc.pid) for proc, _ in procs)
        start = time.perf_counter()
        produce(brokers, topic, partitions, bodies)
        published = time.perf_counter() - start
        while worker_lag(store)["pending_events"]:
            time.sleep(0.05)
        seconds = time.perf_counter() - start
        cpu = sum(cpu_seconds(proc.pid) for proc, _ in procs) - cpu
    finally:
        for proc, log in procs:
            proc.terminate()
            proc.wait(timeout=60)
            log.close()
    rate = len(bodies) / seconds
    print(f"{count} worker(s): {len(bodies):,} events in {seconds:.2f} s ({rate:,.0f} events/s;"
          f" producing took {published:.2f} s; workers used {cpu:.1f} CPU-s, "
          f"{len(bodies) / cpu:,.0f} events per CPU-second)")  # fmt: skip
    return rate, len(bodies) / cpu


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
