"""``segmint consume``: take Segment messages from a Redis stream or a Kafka topic.

Delivery is at least once: a batch of records is acknowledged (Redis ``XACK``, Kafka offset
commit) only after the intake pipeline has durably stored or quarantined every message in
it. A crash before the acknowledgement redelivers the batch, and the pipeline's messageId
dedupe stores each message once. A record without a ``messageId`` gets one derived from its
position in the stream (``redis:{stream}:{entry id}``, ``kafka:{topic}:{partition}:{offset}``),
which is the same on every redelivery.

A poison record (not JSON, not an object, not a Segment message) is quarantined with its
reason and acknowledged; the consumer keeps going.

URLs::

    redis://host:6379/0?stream=events&group=segmint&consumer=worker-1&field=data
    kafka://host:9092,host2:9092/events?group=segmint&offset=earliest
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit

import orjson

from segmint.common import KAFKA_CLIENT_LOG, did_you_mean
from segmint.errors import Terminal, Transient
from segmint.intake.errors import IntakeError
from segmint.intake.pipeline import Intake
from segmint.intake.quarantine import QUARANTINE_COLUMNS, open_message_ids, quarantine_row


class StreamError(IntakeError):
    """A stream source cannot be opened or read."""


class StreamUrlError(StreamError, Terminal, ValueError):
    """The ``consume`` URL is malformed or names an unsupported scheme."""


class StreamUnavailable(StreamError, Transient):
    """The stream server cannot be reached or answered with an error; retry later."""


@dataclass(frozen=True, slots=True)
class Record:
    """One record read from a stream.

    Attributes:
        position: Where it sits in the stream; stable across redeliveries.
        payload: The raw message bytes, or None when the record has none.
        token: What the source needs to acknowledge it.
        detail: What the record held instead of a payload (quarantined with it).
    """

    position: str
    payload: bytes | None
    token: Any = None
    detail: Any = None


class StreamSource(Protocol):
    """A stream of records with acknowledgement (a consumer group's view).

    Attributes:
        name: The stream or topic name (the default source name).
        id_prefix: Prefixed to a record's position to derive a missing messageId.
    """

    name: str
    id_prefix: str

    def read(self, count: int, timeout: float) -> list[Record]:
        """Return up to ``count`` records, waiting at most ``timeout`` seconds for one."""
        ...

    def ack(self, records: Sequence[Record]) -> None:
        """Acknowledge records whose messages are durably stored or quarantined."""
        ...

    def close(self) -> None:
        """Release the connection."""
        ...


@dataclass
class ConsumeReport:
    """What a ``consume`` run did.

    Attributes:
        source: The source name recorded on the events.
        received: Records read from the stream.
        submitted: Messages handed to the pipeline.
        stored: Messages newly stored.
        duplicates: Messages already stored (redeliveries, client retries).
        quarantined: Records quarantined: poison, malformed, or against the tracking plan.
        acked: Records acknowledged.
        poison: The first 100 poison records' positions and reasons.
    """

    source: str
    received: int = 0
    submitted: int = 0
    stored: int = 0
    duplicates: int = 0
    quarantined: int = 0
    acked: int = 0
    poison: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The report as plain data, for ``--format json``."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def decode(record: Record, prefix: str) -> dict[str, Any]:
    """Decode a record into a message dict, adding a stable messageId when it has none.

    Only the envelope is checked here (JSON, an object); the pipeline validates the message
    itself and quarantines it when malformed.

    Raises:
        ValueError: With the reason the record is poison.
    """
    if record.payload is None:
        raise ValueError("record has no message payload")
    try:
        message = orjson.loads(record.payload)
    except orjson.JSONDecodeError:
        raise ValueError("invalid JSON") from None
    if not isinstance(message, dict):
        raise ValueError(f"expected a JSON object, found {type(message).__name__}")
    if not message.get("messageId"):
        message["messageId"] = f"{prefix}:{record.position}"
    return message


def consume(
    source: StreamSource,
    intake: Intake,
    *,
    source_name: str | None = None,
    max_messages: int | None = None,
    idle_timeout: float | None = None,
    batch_size: int = 500,
    poll: float = 1.0,
) -> ConsumeReport:
    """Move records from ``source`` into ``intake`` until a limit is reached.

    Args:
        source: The stream (Redis or Kafka).
        intake: The intake pipeline (its clock stamps ``received_at``).
        source_name: The source recorded on the events (default: the stream's name).
        max_messages: Stop after reading this many records.
        idle_timeout: Stop after this many seconds without a record.
        batch_size: Records per read, submit and acknowledgement.
        poll: The longest single wait for records, in seconds.

    Returns:
        Counts of what was read, stored, deduplicated, quarantined and acknowledged.
    """
    report = ConsumeReport(source=source_name or source.name)
    idle_since = time.monotonic()
    while max_messages is None or report.received < max_messages:
        want = (
            batch_size if max_messages is None else min(batch_size, max_messages - report.received)
        )
        wait = poll if idle_timeout is None else max(0.0, min(poll, idle_timeout))
        records = source.read(want, wait)
        if records:
            _handle(records, source, intake, report)
            idle_since = time.monotonic()
        elif idle_timeout is not None and time.monotonic() - idle_since >= idle_timeout:
            break
    return report


def _handle(
    records: list[Record], source: StreamSource, intake: Intake, report: ConsumeReport
) -> None:
    """Decode, store and quarantine one batch in one transaction, then acknowledge it."""
    report.received += len(records)
    at = intake.clock.now()
    messages: list[dict[str, Any]] = []
    poison: list[tuple[Any, ...]] = []
    for record in records:
        try:
            messages.append(decode(record, source.id_prefix))
        except ValueError as exc:
            poison.append(_poison_row(at, record, str(exc), report, source.id_prefix))
    submission, _ = intake.decode(
        messages, source=report.source, received_at=at, invalid="quarantine"
    )
    submission.quarantine = _not_yet_quarantined(intake, submission.quarantine + poison)
    result = intake.commit([submission])[0]
    report.submitted += len(messages)
    report.stored += result.accepted
    report.duplicates += result.duplicates
    report.quarantined += result.quarantined
    source.ack(records)
    report.acked += len(records)


_MID = QUARANTINE_COLUMNS.index("message_id")


def _poison_row(
    at: Any, record: Record, reason: str, report: ConsumeReport, prefix: str
) -> tuple[Any, ...]:
    """A quarantine row for a poison record, keyed by its stream position."""
    if len(report.poison) < 100:
        report.poison.append({"position": record.position, "reason": reason})
    if record.payload is None:
        payload: Any = record.detail
    else:
        payload = record.payload.decode("utf-8", errors="replace")
    row = list(quarantine_row(at, report.source, payload, f"poison record: {reason}", None))
    row[_MID] = f"{prefix}:{record.position}"
    return tuple(row)


def _not_yet_quarantined(intake: Intake, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Drop rows a previous delivery already quarantined (a crash before the ack)."""
    ids = [r[_MID] for r in rows if r[_MID] is not None]
    known = open_message_ids(intake.store, ids) if ids else set()
    return [r for r in rows if r[_MID] is None or r[_MID] not in known]


def open_source(
    url: str, *, consumer: str | None = None, options: dict[str, str] | None = None
) -> StreamSource:
    """Open the stream named by ``url`` (``redis://…`` or ``kafka://…``).

    Args:
        url: The stream URL (see the module docstring).
        consumer: This consumer's name within its group (default from the URL or host).
        options: Extra client settings (Kafka: librdkafka configuration properties).

    Raises:
        StreamUrlError: If the URL is malformed or its scheme unsupported.
    """
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    if parts.scheme in ("redis", "rediss"):
        return RedisStreamSource.from_url(parts, query, consumer)
    if parts.scheme == "kafka":
        return KafkaSource.from_url(parts, query, consumer, options or {})
    raise StreamUrlError(
        f"unsupported stream URL {url!r}: use redis://host:port/db?stream=NAME&group=G "
        "or kafka://host:port/TOPIC?group=G"
    )


def _need(query: dict[str, str], key: str, example: str) -> str:
    value = query.pop(key, None)
    if not value:
        raise StreamUrlError(f"the stream URL needs ?{key}=…, e.g. {example}")
    return value


class RedisStreamSource:
    """A Redis stream read through a consumer group (``XREADGROUP``, ``XACK``).

    On start it claims entries other consumers left pending longer than ``claim_idle``
    seconds (``XAUTOCLAIM``) and re-reads its own pending entries, so nothing delivered but
    unacknowledged before a crash is lost; then it reads new entries.
    """

    def __init__(
        self,
        client: Any,
        stream: str,
        group: str,
        consumer: str,
        *,
        field: str = "data",
        claim_idle: float = 60.0,
    ) -> None:
        self.client = client
        self.stream = stream
        self.group = group
        self.consumer = consumer
        self.field = field.encode()
        self.name = stream
        self.id_prefix = f"redis:{stream}"
        self._ensure_group()
        self._claim(int(claim_idle * 1000))
        self._backlog = True

    @classmethod
    def from_url(cls, parts: Any, query: dict[str, str], consumer: str | None) -> RedisStreamSource:
        """Open from ``redis://host:port/db?stream=S&group=G[&consumer=C&field=F]``."""
        import redis

        example = "redis://127.0.0.1:6379/0?stream=events&group=segmint"
        stream = _need(query, "stream", example)
        group = query.pop("group", "segmint")
        name = consumer or query.pop("consumer", None) or f"segmint-{_hostname()}"
        field_name = query.pop("field", "data")
        claim = _number(query.pop("claim_idle", "60"), "claim_idle")
        _no_leftovers(query, ("stream", "group", "consumer", "field", "claim_idle"))
        base = parts._replace(query="", fragment="").geturl()
        client = redis.Redis.from_url(base, socket_connect_timeout=5)
        return cls(client, stream, group, name, field=field_name, claim_idle=claim)

    def _ensure_group(self) -> None:
        import redis

        try:
            self.client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise StreamError(f"cannot create group {self.group}: {exc}") from exc
        except redis.RedisError as exc:
            raise StreamUnavailable(f"cannot reach Redis for stream {self.stream}: {exc}") from exc

    def _claim(self, idle_ms: int) -> None:
        start = "0-0"
        while True:
            # Claimed entries join this consumer's pending list; read() takes them from there.
            reply = self.client.xautoclaim(
                self.stream, self.group, self.consumer, idle_ms, start_id=start, count=500
            )
            start = reply[0].decode() if isinstance(reply[0], bytes) else str(reply[0])
            if start == "0-0":
                return

    def read(self, count: int, timeout: float) -> list[Record]:
        """Read this consumer's pending entries first, then new ones.

        Raises:
            StreamUnavailable: If Redis cannot be reached.
        """
        import redis

        try:
            return self._read(count, timeout)
        except redis.RedisError as exc:
            raise StreamUnavailable(f"reading stream {self.stream} failed: {exc}") from exc

    def _read(self, count: int, timeout: float) -> list[Record]:
        if self._backlog:
            entries = self._xread("0", count, None)
            if entries:
                return entries
            self._backlog = False
        return self._xread(">", count, max(1, int(timeout * 1000)))

    def _xread(self, start: str, count: int, block: int | None) -> list[Record]:
        reply = self.client.xreadgroup(
            self.group, self.consumer, {self.stream: start}, count=count, block=block
        )
        if not reply:
            return []
        return [self._record(entry_id, fields) for entry_id, fields in reply[0][1]]

    def _record(self, entry_id: bytes, fields: dict[bytes, bytes] | None) -> Record:
        position = entry_id.decode()
        payload = (fields or {}).get(self.field)
        detail = None
        if payload is None:
            detail = {
                k.decode(errors="replace"): v.decode(errors="replace")
                for k, v in (fields or {}).items()
            }
        return Record(position=position, payload=payload, token=entry_id, detail=detail)

    def ack(self, records: Sequence[Record]) -> None:
        """``XACK`` the entries."""
        import redis

        if not records:
            return
        try:
            self.client.xack(self.stream, self.group, *[r.token for r in records])
        except redis.RedisError as exc:  # the batch is stored; it will be redelivered, deduped
            raise StreamUnavailable(f"acknowledging on {self.stream} failed: {exc}") from exc

    def close(self) -> None:
        """Close the connection pool."""
        self.client.close()


class KafkaSource:
    """A Kafka topic read in a consumer group with confluent-kafka.

    Auto-commit is off: offsets are committed synchronously after each durable batch.
    """

    connect_timeout = 10.0
    """Seconds to reach the brokers when the source opens (else :class:`StreamUnavailable`)."""

    def __init__(self, config: dict[str, Any], topic: str) -> None:
        from confluent_kafka import Consumer, KafkaException

        self.topic = topic
        self.name = topic
        self.id_prefix = f"kafka:{topic}"
        # Auto-commit would acknowledge before the batch is stored: always off. librdkafka's
        # own log lines go through Python logging, at INFO at most (KafkaClientLog).
        settings = (
            {"auto.offset.reset": "earliest", "logger": KAFKA_CLIENT_LOG}
            | config
            | {"enable.auto.commit": False}
        )
        try:
            self.consumer = Consumer(settings)
        except KafkaException as exc:
            raise StreamUrlError(f"invalid Kafka setting: {exc.args[0].str()}") from None
        try:  # reach the brokers now: a typo in the URL is said at once, not logged for ever
            self.consumer.list_topics(topic, timeout=self.connect_timeout)
        except KafkaException as exc:
            self.consumer.close()
            brokers = config.get("bootstrap.servers", "?")
            raise StreamUnavailable(
                f"cannot reach Kafka at {brokers} for topic {topic} within "
                f"{self.connect_timeout:g} s: {exc.args[0].str()}"
            ) from None
        self.consumer.subscribe([topic])

    @classmethod
    def from_url(
        cls, parts: Any, query: dict[str, str], consumer: str | None, options: dict[str, str]
    ) -> KafkaSource:
        """Open from ``kafka://host:port[,host:port]/TOPIC?group=G[&offset=latest]``."""
        topic = parts.path.strip("/")
        if not topic or not parts.netloc:
            raise StreamUrlError(
                "the Kafka URL needs brokers and a topic: kafka://host:9092/events"
            )
        config: dict[str, Any] = {
            "bootstrap.servers": parts.netloc,
            "group.id": query.pop("group", "segmint"),
            "auto.offset.reset": query.pop("offset", "earliest"),
            "client.id": consumer or f"segmint-{_hostname()}",
        }
        return cls(config | query | options, topic)

    def read(self, count: int, timeout: float) -> list[Record]:
        """Poll for up to ``count`` messages; broker errors that are not retriable raise."""
        from confluent_kafka import KafkaError

        records = []
        for msg in self.consumer.consume(num_messages=count, timeout=timeout):
            error = msg.error()
            if error is None:
                position = f"{msg.partition()}:{msg.offset()}"
                records.append(Record(position=position, payload=msg.value(), token=msg))
            elif error.code() != KafkaError._PARTITION_EOF and not error.retriable():
                raise StreamError(f"Kafka error on {self.topic}: {error.str()}")
        return records

    def ack(self, records: Sequence[Record]) -> None:
        """Commit, per partition, the offset after the last record (synchronously)."""
        from confluent_kafka import TopicPartition

        last: dict[tuple[str, int], int] = {}
        for record in records:
            key = (record.token.topic(), record.token.partition())
            last[key] = max(last.get(key, -1), record.token.offset())
        if last:
            offsets = [TopicPartition(t, p, o + 1) for (t, p), o in last.items()]
            self.consumer.commit(offsets=offsets, asynchronous=False)

    def close(self) -> None:
        """Leave the group and close the consumer."""
        self.consumer.unsubscribe()
        self.consumer.close()


def _number(text: str, key: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise StreamUrlError(f"?{key}= must be a number of seconds, got {text!r}") from None


def _no_leftovers(query: dict[str, str], known: tuple[str, ...]) -> None:
    for key in query:
        hint = did_you_mean(key, known)
        raise StreamUrlError(f"unknown stream URL option ?{key}=" + (f"; {hint}" if hint else ""))


def _hostname() -> str:
    import socket

    return socket.gethostname()
