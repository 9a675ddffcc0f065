"""Partitioned real time: ``segmint worker`` processes on librdkafka's mock cluster.

Real subprocesses share one PostgreSQL schema; the relay publishes what intake stored.
Afterwards the workers' memberships and trait values must equal a batch refresh of the
same events: nothing lost, nothing applied twice, whatever was killed or rebalanced.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from tests.cli.test_writes_while_serving import _without_journeys
from tests.membership.writers import late_writer

from segmint.clock import FixedClock
from segmint.demo import Shop, ShopConfig
from segmint.demo.generator import DEFAULT_AS_OF
from segmint.intake.keys import create_key
from segmint.intake.pipeline import Intake
from segmint.membership.batch import refresh
from segmint.membership.compiled import CompiledSegments
from segmint.scale.kafka import EventRelay, KafkaTopic, WorkerError, partition_of
from segmint.scale.worker import STALL_ENV, PartitionWorker, worker_lag
from segmint.store import Store
from segmint.workspace import Workspace

DEMO_YAML = Path(__file__).parents[2] / "src" / "segmint" / "demo" / "workspace" / "segmint.yaml"
AS_OF = DEFAULT_AS_OF
# Short sessions: a killed worker's partitions move on after 6 s, not 45.
KAFKA_OPTIONS = "session.timeout.ms=6000&heartbeat.interval.ms=500&log_level=3"


@pytest.fixture(scope="module")
def brokers() -> Iterator[str]:
    """librdkafka's mock cluster (alive as long as the producer that made it)."""
    from confluent_kafka import Producer

    producer = Producer({"test.mock.num.brokers": 1, "log_level": 3})
    found = producer.list_topics(timeout=10).brokers.values()
    yield ",".join(f"{b.host}:{b.port}" for b in found)
    producer.flush(5)


@dataclass
class Deployment:
    """A demo workspace on a PostgreSQL schema, its topic, and the worker processes."""

    ws: Workspace
    db_url: str
    kafka_url: str
    logs: Path
    procs: dict[str, subprocess.Popen[bytes]]

    @property
    def store(self) -> Store:
        return self.ws.store

    def start(self, name: str, **env: str) -> subprocess.Popen[bytes]:
        with (self.logs / f"{name}.log").open("wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "segmint", "-w", str(self.ws.path), "worker",
                 "--kafka", self.kafka_url, "--as-of", AS_OF.isoformat(), "--name", name,
                 "--batch-size", "40", "--log-level", "info", "--format", "json"],
                env=os.environ | {"SEGMINT_DATABASE_URL": self.db_url} | env,
                stdout=subprocess.PIPE, stderr=log,
            )  # fmt: skip
        self.procs[name] = proc
        return proc

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def kill(self, name: str) -> None:
        """``kill -9`` a worker."""
        proc = self.procs.pop(name)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)

    def stop(self, name: str) -> dict[str, Any]:
        """SIGTERM a worker; return its report."""
        proc = self.procs.pop(name)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, self.log(name)
        report: dict[str, Any] = orjson.loads(out)
        return report


@pytest.fixture
def deployment(
    tmp_path: Path, pg_store: Store, postgres_url: str, brokers: str
) -> Iterator[Deployment]:
    folder = tmp_path / "shop"
    folder.mkdir()
    (folder / "segmint.yaml").write_text(DEMO_YAML.read_text())
    shutil.copytree(DEMO_YAML.parent / "templates", folder / "templates")  # journeys name them
    ws = Workspace.open(folder)
    ws._store = pg_store
    schema = pg_store._schema  # type: ignore[attr-defined]
    sep = "&" if "?" in postgres_url else "?"
    db_url = f"{postgres_url}{sep}options=-csearch_path%3D{schema}"
    topic = f"events-{uuid.uuid4().hex[:8]}"
    kafka_url = f"kafka://{brokers}/{topic}?partitions=6&{KAFKA_OPTIONS}"
    found = Deployment(ws, db_url, kafka_url, tmp_path, {})
    yield found
    for name in list(found.procs):
        found.kill(name)


def shop_messages(customers: int, seed: int) -> list[dict[str, Any]]:
    """A small shop's messages, plus anonymous visits that an identify merges later."""
    messages = list(Shop(ShopConfig(customers=customers, seed=seed)).messages())
    users = sorted({m["userId"] for m in messages if m.get("userId")})
    visits: list[dict[str, Any]] = []
    logins: list[dict[str, Any]] = []
    for i, user in enumerate(users[::3]):
        anon = f"visitor-{seed}-{i}"
        for j in range(3):
            visits.append({
                "type": "track", "event": "Product Viewed", "anonymousId": anon,
                "messageId": f"visit-{seed}-{i}-{j}", "timestamp": f"2026-10-2{j}T10:00:00Z",
                "properties": {"category": "shoes" if j else "bags", "price": 40 + j},
            })  # fmt: skip
        logins.append({
            "type": "identify", "userId": user, "anonymousId": anon,
            "messageId": f"login-{seed}-{i}", "timestamp": "2026-10-25T10:00:00Z",
        })  # fmt: skip
    return messages + visits + logins


def ingest(dep: Deployment, messages: list[dict[str, Any]], relay: EventRelay) -> None:
    """Store ``messages`` as intake does, then publish them (what serve --role intake does)."""
    intake = Intake(dep.ws, FixedClock(AS_OF))
    for start in range(0, len(messages), 200):
        intake.submit(messages[start : start + 200], source="test")
    while relay.publish_pending():
        pass


def poison(dep: Deployment, bodies: list[bytes | None]) -> None:
    """Produce messages that are not the relay's into the topic."""
    from confluent_kafka import Producer

    target = KafkaTopic.from_url(dep.kafka_url)
    producer = Producer(target.client())
    for body in bodies:
        producer.produce(target.topic, body, partition=0)
    assert producer.flush(10) == 0


def drained(dep: Deployment, partitions: int) -> bool:
    """Every event applied and every message's offset committed by the group."""
    from confluent_kafka import Consumer, TopicPartition

    if worker_lag(dep.store)["pending_events"]:
        return False
    target = KafkaTopic.from_url(dep.kafka_url)
    probe = Consumer(target.client(**{"group.id": target.group}))
    try:
        parts = [TopicPartition(target.topic, p) for p in range(partitions)]
        committed = probe.committed(parts, timeout=10)
        for part in committed:
            _, high = probe.get_watermark_offsets(part, timeout=10)
            if high and part.offset < high:
                return False
        return True
    finally:
        probe.close()


def wait_for(check: Callable[[], bool], what: str, timeout: float = 150.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def derived(store: Store) -> tuple[set[tuple[str, str]], dict[str, Any]]:
    """Memberships and trait values as stored."""
    members = {
        (str(p), str(s)) for p, s in store.fetchall("SELECT profile_id, segment FROM memberships")
    }
    values = {
        str(pid): orjson.loads(v) if isinstance(v, str | bytes) else v
        for pid, v in store.fetchall('SELECT profile_id, "values" FROM trait_values')
    }
    return members, values


def assert_equals_batch(dep: Deployment) -> None:
    members, values = derived(dep.store)
    refresh(dep.store, CompiledSegments(dep.ws.definition), AS_OF)
    batch_members, batch_values = derived(dep.store)
    assert members == batch_members
    # float traits computed in SQL and in Python differ in the last digits
    assert values.keys() == batch_values.keys()
    for pid, traits in values.items():
        assert traits == {k: _near(v, traits.get(k)) for k, v in batch_values[pid].items()}, pid
    merged = dep.store.fetchall("SELECT count(*) FROM profiles WHERE merged_into IS NOT NULL")
    assert merged[0][0] > 0  # the merges were exercised


@pytest.mark.postgres
def _near(expected: Any, found: Any) -> Any:
    """``expected``, or ``found`` when both are floats equal to 9 significant digits."""
    if isinstance(expected, float) and isinstance(found, float):
        return found if found == pytest.approx(expected, rel=1e-9) else expected
    return expected


@pytest.mark.postgres
def test_workers_killed_and_rebalanced_agree_with_batch(deployment: Deployment) -> None:
    dep = deployment
    relay = EventRelay(dep.store, KafkaTopic.from_url(dep.kafka_url), batch=500)
    messages = shop_messages(customers=45, seed=7)
    third = len(messages) // 3
    try:
        ingest(dep, messages[:third], relay)
        dep.start("w1")
        dep.start("w2", **{STALL_ENV: "120"})
        wait_for(lambda: "stalls" in dep.log("w2"), "w2 to be inside a batch")
        dep.kill("w2")  # mid-batch: its transaction never commits
        ingest(dep, messages[third : 2 * third], relay)
        dep.start("w3")  # joins: a rebalance
        wait_for(lambda: "assigned" in dep.log("w3"), "w3 to be assigned partitions")
        ingest(dep, messages[2 * third :], relay)  # the logins merge the visitors
        first = dep.stop("w1")  # leaves: another rebalance
        wait_for(lambda: drained(dep, relay.partitions), "the workers to apply every event")
        last = dep.stop("w3")
    finally:
        relay.close()
    assert first["applied"] + last["applied"] >= len(set(m["messageId"] for m in messages)) // 2
    assert last["rebalances"] >= 2 and last["merges"] + first["merges"] > 0
    assert_equals_batch(dep)


@pytest.mark.postgres
def test_redelivered_messages_apply_nothing_twice(deployment: Deployment) -> None:
    """Two groups consume the same topic into one store: the second applies nothing."""
    dep = deployment
    relay = EventRelay(dep.store, KafkaTopic.from_url(dep.kafka_url), batch=500)
    try:
        ingest(dep, shop_messages(customers=15, seed=8), relay)
        poison(dep, [b"\x00garbage", b'{"kind": "event"}', None])  # not the relay's
        dep.start("w1")
        wait_for(lambda: drained(dep, relay.partitions), "the first worker to apply every event")
        first = dep.stop("w1")
        dep.kafka_url += "&group=replay"  # every message again, from offset 0
        dep.start("again")
        wait_for(lambda: drained(dep, relay.partitions), "the replaying worker")
        replay = dep.stop("again")
    finally:
        relay.close()
    assert first["skipped"] == 3 and first["applied"] > 0
    assert replay["received"] > 0 and replay["applied"] == 0
    assert_equals_batch(dep)


def test_partition_of_is_stable_and_spread() -> None:
    assert partition_of("p_abc", 12) == partition_of("p_abc", 12)
    spread = {partition_of(f"p_{i}", 6) for i in range(200)}
    assert spread == set(range(6))


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("redis://127.0.0.1:6379/0", "expected a Kafka URL"),
        ("kafka://127.0.0.1:9092", "expected a Kafka URL"),
        ("kafka://127.0.0.1:9092/t?partitions=zero", "positive number"),
        ("kafka://127.0.0.1:9092/t?gruop=g", "did you mean 'group'"),
    ],
)
def test_bad_kafka_urls_are_explained(url: str, match: str) -> None:
    from segmint.intake.streams import StreamUrlError

    with pytest.raises(StreamUrlError, match=match):
        KafkaTopic.from_url(url)


def test_workers_refuse_an_embedded_store(workspace: Workspace, brokers: str) -> None:
    with pytest.raises(WorkerError, match="needs a PostgreSQL store"):
        EventRelay(workspace.store, KafkaTopic.from_url(f"kafka://{brokers}/t"))


def test_worker_command_explains_what_is_missing(
    cli: Callable[..., Any], workspace: Workspace, brokers: str
) -> None:
    no_url = cli("-w", str(workspace.path), "worker")
    assert no_url.returncode == 2 and "--kafka URL" in no_url.stderr
    duck = cli("-w", str(workspace.path), "worker", "--kafka", f"kafka://{brokers}/t")
    assert duck.returncode == 1 and "needs a PostgreSQL store" in duck.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise AssertionError("segmint serve did not start")


@pytest.mark.postgres
def test_serve_role_intake_publishes_and_workers_apply(deployment: Deployment) -> None:
    """The HTTP intake stores and publishes; it applies no real time itself; a worker does."""
    dep = deployment
    _, key = create_key(dep.store, "web", now=AS_OF)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = dep.logs / "serve.log"
    with log.open("wb") as err:
        server = subprocess.Popen(
            [sys.executable, "-m", "segmint", "-w", str(dep.ws.path), "serve", "--port",
             str(port), "--role", "intake", "--kafka", dep.kafka_url],
            env=os.environ | {"SEGMINT_DATABASE_URL": dep.db_url},
            stdout=subprocess.DEVNULL, stderr=err,
        )  # fmt: skip
    try:
        _wait_ready(url, server, log)
        messages = shop_messages(customers=10, seed=9)
        with httpx.Client(base_url=url, auth=(key, ""), timeout=30) as client:
            for start in range(0, len(messages), 100):
                body = orjson.dumps({"batch": messages[start : start + 100]})
                assert client.post("/v1/batch", content=body).status_code == 200
        assert dep.store.fetchall("SELECT count(*) FROM memberships")[0][0] == 0
        dep.start("w1")
        partitions = KafkaTopic.from_url(dep.kafka_url).ensure()
        wait_for(lambda: drained(dep, partitions), "the worker to apply what serve published")
        dep.stop("w1")
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    assert server.returncode == 0, log.read_text()
    assert "publishing events to Kafka topic" in log.read_text()
    assert_equals_batch(dep)


def _serve(dep: Deployment, name: str, *args: str) -> tuple[subprocess.Popen[bytes], Path]:
    """A ``segmint serve`` on the deployment's store, started and answering."""
    port = _free_port()
    log = dep.logs / f"{name}.log"
    with log.open("wb") as err:
        server = subprocess.Popen(
            [sys.executable, "-m", "segmint", "-w", str(dep.ws.path), "serve", "--port",
             str(port), *args],
            env=os.environ | {"SEGMINT_DATABASE_URL": dep.db_url},
            stdout=subprocess.DEVNULL, stderr=err,
        )  # fmt: skip
    _wait_ready(f"http://127.0.0.1:{port}", server, log)
    return server, log


@pytest.mark.postgres
def test_retention_runs_on_one_server_whatever_its_role(deployment: Deployment) -> None:
    """A ``serve --role all`` and a ``serve --role intake`` on one store: one of them
    enforces retention (one leadership for every role); when it stops, the other does."""
    dep = deployment
    config = dep.ws.path / "segmint.yaml"
    text = _without_journeys(config.read_text())
    config.write_text(text + "\nprivacy:\n  retention:\n    Never Sent: 30d\n")

    def runs() -> int:
        found = dep.store.fetchall(
            "SELECT count(*) FROM audit_log WHERE action = 'privacy.retention' AND actor = 'serve'"
        )
        return int(found[0][0])

    servers: list[subprocess.Popen[bytes]] = []
    try:
        first, first_log = _serve(dep, "all")
        servers.append(first)
        wait_for(lambda: runs() == 1, "the first server to enforce retention at its start", 60)
        second, second_log = _serve(dep, "intake", "--role", "intake", "--kafka", dep.kafka_url)
        servers.append(second)
        time.sleep(3)  # a server that does not lead asks every second: it must not run it
        assert runs() == 1, second_log.read_text()
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=60) == 0, first_log.read_text()
        wait_for(lambda: runs() == 2, "the intake server to take retention over", 60)
    finally:
        for server in servers:
            if server.poll() is None:
                server.send_signal(signal.SIGTERM)
                server.wait(timeout=60)


def test_serve_role_intake_needs_a_topic(cli: Callable[..., Any], workspace: Workspace) -> None:
    found = cli("-w", str(workspace.path), "serve", "--role", "intake", "--port", "1")
    assert found.returncode == 2 and "--kafka URL" in found.stderr


def _topic_keys(target: KafkaTopic, partitions: int, expected: int) -> list[str]:
    """The keys of every message in the topic (read from the start)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(target.client(**{"group.id": f"probe-{uuid.uuid4().hex[:6]}",
                                         "enable.auto.commit": False}))  # fmt: skip
    keys: list[str] = []
    try:
        consumer.assign([TopicPartition(target.topic, p, 0) for p in range(partitions)])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=500, timeout=0.5):
                if msg.error() is None:
                    keys.append(msg.key().decode())
            if len(keys) >= expected and not consumer.consume(num_messages=1, timeout=1):
                break
    finally:
        consumer.close()
    return keys


@pytest.mark.postgres
def test_relay_publishes_late_commits_once_across_a_restart(pg_store: Store, brokers: str) -> None:
    """Writers commit out of ``seq`` order while the relay publishes (and is restarted):
    every committed event and merge reaches the topic exactly once."""
    import random
    import threading
    from collections import Counter

    from segmint.store.postgres import PostgresStore

    assert isinstance(pg_store, PostgresStore)
    target = KafkaTopic.from_url(f"kafka://{brokers}/late-{uuid.uuid4().hex[:8]}?partitions=3")
    rng = random.Random(5)
    writers = [pg_store.reopen() for _ in range(6)]
    committed: list[str] = []
    threads = [
        threading.Thread(
            target=late_writer(
                s,
                f"w{i}",
                random.Random(rng.random()),
                committed,
                rounds=20,
                at=AS_OF.replace(tzinfo=None),
                merges=0.2,
            )
        )  # fmt: skip
        for i, s in enumerate(writers)
    ]
    stop = threading.Event()
    stores = [pg_store.reopen() for _ in range(2)]
    relays = [EventRelay(s, target, batch=7) for s in stores]  # the second waits for the lock

    def relay_loop() -> None:
        for relay in relays:  # a relay, then another resuming from its saved position
            while not stop.is_set() and (relay is relays[1] or len(committed) < 60):
                relay.publish_pending()
                time.sleep(0.003)
            relay.close()  # publishes the rest and releases the lock

    publisher = threading.Thread(target=relay_loop)
    publisher.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stop.set()
    publisher.join()
    for store in [*stores, *writers]:
        store.close()
    keys = _topic_keys(target, relays[0].partitions, len(committed))
    merges = [k for k in keys if k.startswith("merge:")]
    events = [k for k in keys if not k.startswith("merge:")]
    assert len(events) == len(set(events)), "an event was published twice"
    assert all(n == 2 for n in Counter(merges).values())  # to both profiles' partitions
    assert set(events) | set(merges) == set(committed), "a committed row was not published"
    assert len(committed) > 50 and merges and relays[0].published and relays[1].published


@pytest.mark.postgres
def test_an_unreachable_broker_is_one_clear_line(deployment: Deployment) -> None:
    """librdkafka's own lines go through logging (shown at --log-level info), not stderr."""
    dep = deployment
    dep.kafka_url = "kafka://127.0.0.1:1/t"
    proc = dep.start("lost")
    out, _ = proc.communicate(timeout=120)
    dep.procs.pop("lost")
    lines = [line for line in dep.log("lost").splitlines() if line.strip()]
    assert proc.returncode == 1  # (--format json: the error on stdout too, as JSON)
    assert json.loads(out)["error"]["message"].startswith("Kafka at 127.0.0.1:1: ")
    assert lines[-1] == (
        "error: Kafka at 127.0.0.1:1: Failed to get metadata: Local: Broker transport failure"
    )
    assert not any(line.startswith("%") for line in lines)  # no raw librdkafka lines
    assert any("Connection refused" in line and " INFO " in line for line in lines)
    quiet = subprocess.run(  # the default --log-level: the error alone
        [sys.executable, "-m", "segmint", "-w", str(dep.ws.path), "worker", "--kafka",
         dep.kafka_url], env=os.environ | {"SEGMINT_DATABASE_URL": dep.db_url},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert quiet.returncode == 1 and quiet.stderr.strip() == lines[-1]


def test_serve_kafka_without_role_intake_is_explained(
    cli: Callable[..., Any], workspace: Workspace
) -> None:
    """--kafka alone used to be ignored silently: the server applied real time itself."""
    found = cli("-w", str(workspace.path), "serve", "--kafka", "kafka://127.0.0.1:1/t",
                "--port", "1")  # fmt: skip
    assert found.returncode == 2 and "add --role intake, or drop --kafka" in found.stderr


@pytest.mark.postgres
def test_status_reports_what_the_workers_have_not_applied(deployment: Deployment) -> None:
    dep = deployment
    relay = EventRelay(dep.store, KafkaTopic.from_url(dep.kafka_url), batch=500)
    try:
        ingest(dep, shop_messages(customers=4, seed=3), relay)
    finally:
        relay.close()
    stored = int(dep.store.fetchall("SELECT count(*) FROM events")[0][0])
    run = [sys.executable, "-m", "segmint", "-w", str(dep.ws.path), "status"]
    env = os.environ | {"SEGMINT_DATABASE_URL": dep.db_url}
    found = subprocess.run([*run, "--format", "json"], env=env, capture_output=True, timeout=60)
    assert found.returncode == 0, found.stderr
    workers = orjson.loads(found.stdout)["realtime"]["workers"]
    assert workers["pending_events"] == stored > 0
    text = subprocess.run(run, env=env, capture_output=True, text=True, timeout=60).stdout
    assert f"kafka workers: {stored} stored events not yet applied" in text
    assert "no server running" not in text


@pytest.mark.postgres
def test_a_worker_applies_an_event_that_commits_after_a_higher_seq(
    deployment: Deployment,
) -> None:
    """One profile, two writers: the lower ``seq`` commits after a batch applied the higher.

    A ``seq`` watermark would skip it for good; the snapshot watermark applies it when it
    lands, once.
    """

    dep = deployment
    Intake(dep.ws, FixedClock(AS_OF)).submit(
        [{"type": "identify", "userId": "late-1", "messageId": "id-1",
          "timestamp": "2026-10-01T10:00:00Z", "traits": {"email": "late@example.com"}}],
        source="test",
    )  # fmt: skip
    (profile,) = dep.store.fetchall("SELECT profile_id FROM profiles")[0]
    at = AS_OF.replace(tzinfo=None)
    insert = (
        "INSERT INTO events (message_id, type, event, profile_id, timestamp, received_at, "
        "properties) VALUES (?, 'track', 'Order Completed', ?, ?, ?, '{\"total\": 10}')"
    )
    late = dep.store.reopen()  # type: ignore[attr-defined]
    worker = PartitionWorker(dep.ws, KafkaTopic.from_url(dep.kafka_url), FixedClock(AS_OF))
    try:
        with late.transaction():
            late.execute(insert, ["order-low", profile, at, at])  # draws the lower seq
            with dep.store.transaction():
                dep.store.execute(insert, ["order-high", profile, at, at])
            worker._apply({profile}, [])  # sees the higher one only
            assert worker.report.applied == 2  # the identify and the higher order
        seqs = dict(dep.store.fetchall("SELECT message_id, seq FROM events"))
        assert seqs["order-low"] < seqs["order-high"]
        worker._apply({profile}, [])  # the lower one has landed
        assert worker.report.applied == 3
        worker._apply({profile}, [])  # and is not applied twice
        assert worker.report.applied == 3
        assert worker_lag(dep.store)["pending_events"] == 0
    finally:
        worker.close()
        late.close()


@pytest.mark.postgres
def test_an_event_the_server_had_not_applied_at_the_handover_reaches_the_workers(
    pg_store: Store, brokers: str, tmp_path: Path
) -> None:
    """A server applied a higher ``seq`` and saved its commit position while a transaction
    holding a lower one was still open; then the workers took over. The lower one commits
    after: the relay publishes it and a worker applies it, once (a start by ``seq`` skipped
    it for good)."""
    from tests.membership.views import NOW, YAML, insert, server

    folder = tmp_path / "late"
    folder.mkdir()
    (folder / "segmint.yaml").write_text(YAML)
    ws = Workspace.open(folder)
    ws._store = pg_store
    engine, follower = server(ws, pg_store)
    late = pg_store.reopen()  # type: ignore[attr-defined]
    try:
        with late.transaction():
            insert(late, "lower")  # draws the lower seq, commits after the handover
            with pg_store.transaction():
                insert(pg_store, "higher")
            assert follower.step() == 1
            engine.close()  # its position: "higher" applied, "lower" not
            follower.close()
            target = KafkaTopic.from_url(f"kafka://{brokers}/handover-{uuid.uuid4().hex[:8]}")
            relay_store = pg_store.reopen()  # type: ignore[attr-defined]
            relay = EventRelay(relay_store, target)
            assert relay.publish_pending() == 0  # the workers take over here
    finally:
        late.close()
    try:
        assert relay.publish_pending() == 1  # the lower one, landed
        assert relay.publish_pending() == 0
    finally:
        relay.close()
        relay_store.close()
    worker = PartitionWorker(ws, target, FixedClock(NOW))
    try:
        worker._apply({"p"}, [])
        assert worker.report.applied == 1
        worker._apply({"p"}, [])
        assert worker.report.applied == 1
        assert worker_lag(pg_store)["pending_events"] == 0
    finally:
        worker.close()
    (values,) = pg_store.fetchall("SELECT values FROM trait_values WHERE profile_id = 'p'")[0]
    assert (values if isinstance(values, dict) else json.loads(values))["views"] == 2
