from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import orjson
import pytest
import redis

from segmint.intake import Intake
from segmint.intake.streams import (
    Record,
    RedisStreamSource,
    StreamUrlError,
    consume,
    open_source,
)
from segmint.workspace import Workspace

from .conftest import count


def track(i: int, **extra: Any) -> bytes:
    message = {"type": "track", "event": "Product Viewed", "userId": f"u{i % 3}",
               "timestamp": "2026-10-14T10:00:00Z", "properties": {"n": i}}  # fmt: skip
    return orjson.dumps(message | extra)


@pytest.fixture
def stream(redis_url: str) -> Iterator[tuple[redis.Redis, str]]:
    client = redis.Redis.from_url(redis_url)
    name = f"segmint-test-{uuid.uuid4().hex[:12]}"
    yield client, name
    client.delete(name)
    client.close()


def url(redis_url: str, name: str, **query: str) -> str:
    params = "&".join(f"{k}={v}" for k, v in ({"stream": name, "group": "g"} | query).items())
    return f"{redis_url}?{params}"


def pending(client: redis.Redis, name: str) -> int:
    return int(client.xpending(name, "g")["pending"])


def test_redis_stream_stores_quarantines_poison_and_acks(
    stream: tuple[redis.Redis, str], redis_url: str, ws: Workspace, intake: Intake
) -> None:
    client, name = stream
    for i in range(5):
        client.xadd(name, {"data": track(i, messageId=f"m-{i}")})
    client.xadd(name, {"data": b"{not json"})
    client.xadd(name, {"data": b"[1, 2, 3]"})
    client.xadd(name, {"other": b"no data field"})
    client.xadd(name, {"data": orjson.dumps({"type": "bogus", "userId": "u"})})
    client.xadd(name, {"data": track(1, messageId="m-1")})  # a producer's retry
    client.xadd(name, {"data": track(99)})  # no messageId: derived from the entry id
    source = open_source(url(redis_url, name), consumer="c1")
    try:
        report = consume(source, intake, max_messages=11, batch_size=4)
    finally:
        source.close()
    assert (report.received, report.stored, report.duplicates) == (11, 6, 1)
    assert report.quarantined == 4 and report.acked == 11
    assert pending(client, name) == 0
    assert count(ws, "SELECT count(*) FROM events WHERE source = ?", (name,)) == 6
    reasons = sorted(r[0] for r in ws.store.fetchall("SELECT reason FROM quarantine"))
    assert reasons[:3] == [
        "malformed: type: must be one of track, identify, page, screen, group, alias, got 'bogus'",
        "poison record: expected a JSON object, found list",
        "poison record: invalid JSON",
    ]
    assert reasons[3] == "poison record: record has no message payload"
    derived = ws.store.fetchall(
        "SELECT message_id FROM events WHERE message_id LIKE ?", [f"redis:{name}:%"]
    )
    assert len(derived) == 1


class CrashBeforeAck:
    """A source whose acknowledgement fails once: the batch is stored but not acked."""

    def __init__(self, inner: RedisStreamSource) -> None:
        self.inner = inner
        self.name = inner.name
        self.id_prefix = inner.id_prefix

    def read(self, count: int, timeout: float) -> list[Record]:
        return self.inner.read(count, timeout)

    def ack(self, records: Sequence[Record]) -> None:
        raise ConnectionError("crashed before XACK")

    def close(self) -> None:
        self.inner.close()


def test_redis_redelivers_unacked_entries_and_stores_them_once(
    stream: tuple[redis.Redis, str], redis_url: str, ws: Workspace, intake: Intake
) -> None:
    client, name = stream
    for i in range(4):
        client.xadd(name, {"data": track(i)})  # ids derived from the entry: same on redelivery
    client.xadd(name, {"data": b"poison"})
    client.xadd(name, {"data": orjson.dumps({"type": "track", "userId": "u"})})  # no event
    crashing = CrashBeforeAck(open_source(url(redis_url, name), consumer="c1"))  # type: ignore[arg-type]
    with pytest.raises(ConnectionError):
        consume(crashing, intake, max_messages=6)
    crashing.close()
    assert count(ws, "SELECT count(*) FROM events") == 4
    assert count(ws, "SELECT count(*) FROM quarantine") == 2
    assert pending(client, name) == 6
    client.xadd(name, {"data": track(10)})
    again = open_source(url(redis_url, name), consumer="c1")
    try:
        report = consume(again, intake, idle_timeout=0.2)
    finally:
        again.close()
    assert (report.received, report.duplicates, report.stored) == (7, 4, 1)
    assert pending(client, name) == 0
    assert count(ws, "SELECT count(*) FROM events") == 5
    assert count(ws, "SELECT count(*) FROM quarantine") == 2  # poison and malformed, once each


def test_redis_claims_entries_a_dead_consumer_left_pending(
    stream: tuple[redis.Redis, str], redis_url: str, duck_intake: Intake
) -> None:
    client, name = stream
    client.xadd(name, {"data": track(1)})
    client.xgroup_create(name, "g", id="0")
    client.xreadgroup("g", "dead", {name: ">"})  # delivered to a consumer that never acks
    source = open_source(url(redis_url, name, claim_idle="0"), consumer="alive")
    try:
        report = consume(source, duck_intake, idle_timeout=0.2)
    finally:
        source.close()
    assert (report.received, report.stored) == (1, 1)
    assert pending(client, name) == 0


def test_idle_timeout_stops_an_empty_stream(
    stream: tuple[redis.Redis, str], redis_url: str, duck_intake: Intake
) -> None:
    _, name = stream
    source = open_source(url(redis_url, name), consumer="c1")
    try:
        report = consume(source, duck_intake, idle_timeout=0.1)
    finally:
        source.close()
    assert report.received == 0


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ("http://x/y", "unsupported stream URL"),
        ("redis://127.0.0.1:6379/0?group=g", r"needs \?stream="),
        ("redis://127.0.0.1:6379/0?stream=s&gruop=g", "did you mean 'group'"),
        ("redis://127.0.0.1:6379/0?stream=s&claim_idle=soon", "number of seconds"),
        ("kafka://127.0.0.1:9092", "needs brokers and a topic"),
        ("kafka://127.0.0.1:9092/t?no.such.setting=1", "invalid Kafka setting"),
    ],
)
def test_bad_urls_are_explained(bad: str, match: str) -> None:
    with pytest.raises(StreamUrlError, match=match):
        open_source(bad)


@pytest.fixture(scope="module")
def kafka_brokers() -> Iterator[tuple[Any, str]]:
    """librdkafka's built-in mock cluster, alive as long as the producer that made it."""
    from confluent_kafka import Producer

    producer = Producer({"test.mock.num.brokers": 1, "log_level": 3})
    brokers = producer.list_topics(timeout=10).brokers.values()
    yield producer, ",".join(f"{b.host}:{b.port}" for b in brokers)
    producer.flush(5)


# Short sessions: a crashed test consumer does not hold the group for 45 s.
KAFKA_OPTIONS = {"session.timeout.ms": "6000", "heartbeat.interval.ms": "500", "log_level": "3"}


def test_kafka_topic_commits_offsets_after_durable_submit(
    kafka_brokers: tuple[Any, str], workspace: Workspace, duck_intake: Intake
) -> None:
    """On DuckDB only: the storage side is the same as Redis's, tested on both backends."""
    ws, intake = workspace, duck_intake
    producer, brokers = kafka_brokers
    topic = f"events-{uuid.uuid4().hex[:8]}"
    for i in range(4):
        producer.produce(topic, value=track(i, messageId=f"k-{i}"), partition=0)
    producer.produce(topic, value=b"\x00garbage", partition=0)
    producer.produce(topic, value=None, partition=0)  # a tombstone carries no message
    producer.produce(topic, value=track(2, messageId="k-2"), partition=0)  # a producer retry
    producer.produce(topic, value=track(9), partition=0)  # no messageId: derived from offset
    producer.flush(10)
    kafka_url = f"kafka://{brokers}/{topic}?group=g"
    source = open_source(kafka_url, consumer="k1", options=KAFKA_OPTIONS)
    try:
        report = consume(source, intake, max_messages=8, idle_timeout=20)
    finally:
        source.close()
    assert (report.received, report.stored, report.duplicates, report.quarantined) == (8, 5, 1, 2)
    reasons = sorted(r[0] for r in ws.store.fetchall("SELECT reason FROM quarantine"))
    assert reasons == [
        "poison record: invalid JSON",
        "poison record: record has no message payload",
    ]
    # The offsets were committed after the durable commit: the group resumes after them.
    from confluent_kafka import Consumer, TopicPartition

    probe = Consumer({"bootstrap.servers": brokers, "group.id": "g", "log_level": 3})
    try:
        committed = probe.committed([TopicPartition(topic, 0)], timeout=10)
    finally:
        probe.close()
    assert committed[0].offset == 8
    assert (
        count(ws, "SELECT count(*) FROM events WHERE message_id = ?", (f"kafka:{topic}:0:7",)) == 1
    )


def test_kafka_brokers_out_of_reach_are_said_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """``segmint consume kafka://127.0.0.1:PORT/events`` with nothing listening printed
    librdkafka's connection failures to stderr several times a second, for ever. Now the
    source gives up after its connect timeout and says where it could not reach."""
    from tests.deliver.conftest import free_port

    from segmint.intake.streams import KafkaSource, StreamUnavailable

    monkeypatch.setattr(KafkaSource, "connect_timeout", 1.0)
    url = f"kafka://127.0.0.1:{free_port()}/events?group=g"
    with pytest.raises(StreamUnavailable, match=r"cannot reach Kafka at 127\.0\.0\.1:\d+ for"):
        open_source(url)


def test_librdkafka_lines_are_logged_at_info_at_most(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While a broker is down librdkafka repeats its connection failures several times a
    second; consume hands them to Python logging at INFO at most, as the workers do."""
    from tests.deliver.conftest import free_port

    from segmint.intake.streams import KafkaSource, StreamUnavailable

    monkeypatch.setattr(KafkaSource, "connect_timeout", 1.0)
    url = f"kafka://127.0.0.1:{free_port()}/events?group=g"
    with (
        caplog.at_level(logging.DEBUG, logger="segmint.kafka.client"),
        pytest.raises(StreamUnavailable),
    ):
        open_source(url)
    lines = [r for r in caplog.records if r.name == "segmint.kafka.client"]
    assert any("Connection refused" in r.getMessage() for r in lines)
    assert max(r.levelno for r in lines) <= logging.INFO
