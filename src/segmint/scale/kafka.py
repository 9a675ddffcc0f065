"""The Kafka topic of partitioned real time, and the relay that fills it from the store.

``segmint serve --role intake`` stores events as usual and, instead of applying real time
in process, runs an :class:`EventRelay`: it publishes every stored event, in commit order,
to the partition of the profile the event belongs to *now* (after identity resolution and
any later merge: the store's ``events.profile_id``), and every profile merge to the
partitions of both profiles. ``segmint worker`` processes (:mod:`segmint.scale.worker`)
consume the topic as one consumer group and apply real time for their partitions.

A profile's partition is ``crc32(profile_id) % partitions``, computed here rather than by
librdkafka's partitioner, so a worker knows which profiles' time transitions are its own.

The relay reads the store through the commit-ordered
:class:`~segmint.membership.feed.ChangeFeed`, not ``seq > position``: ``seq`` is drawn at
insert, not at commit, and not every writer goes through intake's serialised transactions
(model scores, other tools), so a transaction that drew a smaller ``seq`` and committed
later would be skipped by a ``seq`` reader. It is crash safe: the feed's position (in
``meta``) is written after the brokers acknowledged a batch, and a restarted relay resumes
from there, publishing again what it had not confirmed (workers apply idempotently). One
relay runs per store (an advisory lock); the relays of other intake processes wait for it
to go away.

URL: ``kafka://host:9092[,host2:9092]/TOPIC?group=segmint-workers&partitions=12``; other
query keys are librdkafka settings (``security.protocol=SSL``…).
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson

from segmint.common import KAFKA_CLIENT_LOG, did_you_mean
from segmint.errors import SegmintError
from segmint.intake.streams import StreamUrlError
from segmint.membership.feed import ChangeFeed
from segmint.store import Store, read_meta, write_meta
from segmint.traits import APPLIED_KEY, EVENT_COLUMNS, SEQ_KEY, CommitPosition
from segmint.traits.position import RELAY_PREFIX

log = logging.getLogger(__name__)

START_KEY = "kafka.start_seq"
"""Meta key: events up to this ``seq`` were applied before the workers took over."""
START_POSITION_KEY = "kafka.start_position"
"""Meta key: the commit position (:class:`~segmint.traits.CommitPosition`) the in-process
engine had saved when the workers took over, set with :data:`START_KEY` when there was one:
then it, not ``seq``, says which events were applied before (on PostgreSQL a lower ``seq``
may commit after a higher one)."""
_EVENT_NAMES = [c.strip().strip('"') for c in EVENT_COLUMNS.split(",")]
_JSON = ("properties", "traits")
RELAY_COLUMNS = ", ".join(f"{n}::text AS {n}" if n in _JSON else f'"{n}"' for n in _EVENT_NAMES)
"""The ``events`` columns the relay reads: JSON as text, passed through without decoding."""
_LOCK = "hashtext('segmint.kafka.relay'), hashtext(current_schema())"


class WorkerError(SegmintError):
    """Partitioned real time cannot run: no PostgreSQL store, or the topic is unusable."""


def partition_of(profile_id: str, partitions: int) -> int:
    """The partition of ``profile_id`` in a topic of ``partitions`` partitions."""
    return zlib.crc32(profile_id.encode()) % partitions


@dataclass(frozen=True)
class KafkaTopic:
    """Where partitioned real time meets Kafka.

    Attributes:
        brokers: The bootstrap servers (``host:port,host:port``).
        topic: The event topic.
        group: The workers' consumer group.
        partitions: Partitions to create the topic with when it does not exist.
        settings: Other librdkafka settings for every client.
    """

    brokers: str
    topic: str
    group: str = "segmint-workers"
    partitions: int = 12
    settings: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_url(cls, url: str, **settings: Any) -> KafkaTopic:
        """Parse ``kafka://brokers/TOPIC?group=G&partitions=N&<librdkafka settings>``.

        Raises:
            StreamUrlError: If the URL is not a Kafka URL with brokers and a topic.
        """
        parts = urlsplit(url)
        topic = parts.path.strip("/")
        if parts.scheme != "kafka" or not parts.netloc or not topic:
            raise StreamUrlError(
                f"expected a Kafka URL like kafka://host:9092/events?group=segmint-workers, "
                f"got {url!r}"
            )
        query = dict(parse_qsl(parts.query))
        for key in query:  # librdkafka's own names have dots, or are far from ours
            hint = None if "." in key else did_you_mean(key, ("group", "partitions"))
            if hint and key not in ("group", "partitions"):
                raise StreamUrlError(f"unknown Kafka URL option ?{key}=; {hint}")
        group = query.pop("group", cls.group)
        count = query.pop("partitions", str(cls.partitions))
        if not count.isdigit() or int(count) < 1:
            raise StreamUrlError(f"?partitions= must be a positive number, got {count!r}")
        return cls(parts.netloc, topic, group, int(count), query | settings)

    def client(self, **extra: Any) -> dict[str, Any]:
        """The configuration of a client of this topic's cluster (logging through ours)."""
        return (
            {"bootstrap.servers": self.brokers, "logger": KAFKA_CLIENT_LOG} | self.settings | extra
        )

    def ensure(self, timeout: float = 10.0) -> int:
        """Create the topic if it does not exist; return its number of partitions.

        A cluster that does not answer the creation (librdkafka's mock cluster) creates it
        on first use, with its default number of partitions.

        Raises:
            WorkerError: If the brokers cannot be reached or have no such topic.
        """
        from confluent_kafka import KafkaException, Producer
        from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

        admin = None
        try:
            admin = AdminClient(self.client())
            found = self._count(admin.list_topics(timeout=timeout))
            if found:
                return found
            futures = admin.create_topics([NewTopic(self.topic, self.partitions)])
            with contextlib.suppress(KafkaException, TimeoutError):
                futures[self.topic].result(min(timeout, 5.0))
            # a producer's metadata request creates the topic where the brokers allow it
            found = self._count(Producer(self.client()).list_topics(self.topic, timeout=timeout))
        except KafkaException as exc:
            if admin is not None:
                admin.poll(0)  # hands librdkafka's queued lines to logging
            reason = exc.args[0].str() if hasattr(exc.args[0], "str") else str(exc.args[0])
            if "configuration property" in reason:
                raise StreamUrlError(f"invalid Kafka setting in the URL: {reason}") from None
            raise WorkerError(f"Kafka at {self.brokers}: {reason}") from None
        if not found:
            raise WorkerError(f"Kafka at {self.brokers} has no topic {self.topic}")
        return found

    def _count(self, meta: Any) -> int:
        topic = meta.topics.get(self.topic)
        if topic is None or topic.error is not None:
            return 0
        return len(topic.partitions)


def require_postgres(store: Store) -> None:
    """Partitioned workers share one store: refuse an embedded one with the way out.

    Raises:
        WorkerError: If the store is not PostgreSQL.
    """
    if store.dialect != "postgres":
        raise WorkerError(
            f"partitioned real time needs a PostgreSQL store that every process shares; "
            f"this workspace uses {store.dialect} ({store.url}). Set store: postgresql://… "
            "in segmint.yaml or SEGMINT_DATABASE_URL"
        )


def start_seq(store: Store) -> int:
    """The ``seq`` up to which events were applied before the workers took over (set once).

    The stored trait state of an in-process engine reflects the events up to its saved
    position (:data:`segmint.traits.SEQ_KEY`, and on PostgreSQL the commit position
    :data:`segmint.traits.APPLIED_KEY`, kept as :data:`START_POSITION_KEY`: see
    :func:`handover`); a store no engine ran on starts at 0, so the workers apply every
    stored event.
    """
    found = read_meta(store, START_KEY)
    if found is not None:
        return int(found)
    with store.transaction():
        taken = store.fetchall(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING "
            "RETURNING key",
            [START_KEY, read_meta(store, SEQ_KEY) or "0"],
        )
        applied = read_meta(store, APPLIED_KEY)
        if taken and applied is not None:  # this process took over: its position with it
            write_meta(store, START_POSITION_KEY, applied)
    return int(read_meta(store, START_KEY) or 0)


@dataclass(frozen=True)
class Handover:
    """What the in-process engine applied before the workers took over.

    Attributes:
        seq: Every event up to this ``seq`` (:data:`START_KEY`), unless ``position`` says.
        position: The commit position saved then (None: ``seq`` alone decides).
    """

    seq: int
    position: CommitPosition | None

    def pending(self, alias: str) -> tuple[str, list[Any]]:
        """SQL (and its parameters) true for an event ``alias`` not applied before."""
        if self.position is None:
            return f"{alias}.seq > ?", [self.seq]
        missing = self.position.missing(alias)
        return missing.condition, list(missing.params)


def handover(store: Store) -> Handover:
    """The events applied before the workers took over (recorded at the first call)."""
    seq = start_seq(store)
    text = read_meta(store, START_POSITION_KEY)
    return Handover(seq, CommitPosition.loads(text) if text else None)


def encode_event(row: Sequence[Any]) -> bytes:
    """A Kafka message body for an ``events`` row (columns :data:`RELAY_COLUMNS`)."""
    body = dict(zip(_EVENT_NAMES, row, strict=True))
    for name in _JSON:
        if isinstance(body[name], str):
            body[name] = orjson.Fragment(body[name])
    return orjson.dumps({"kind": "event", **body}, default=str)


def encode_merge(merge_id: int, gone: str, into: str) -> bytes:
    """A Kafka message body for a profile merge."""
    return orjson.dumps({"kind": "merge", "id": merge_id, "from": gone, "into": into})


class EventRelay:
    """Publishes the store's events and merges to the topic, in commit order.

    Args:
        store: The store (PostgreSQL).
        target: The topic.
        batch: Events read and published per round.
    """

    def __init__(self, store: Store, target: KafkaTopic, *, batch: int = 5000) -> None:
        from confluent_kafka import Producer

        require_postgres(store)
        self.store = store
        self.target = target
        self.batch = batch
        self.partitions = target.ensure()
        # idempotence keeps each partition in the order produced, through retries
        self._producer = Producer(
            target.client(**{"enable.idempotence": True, "linger.ms": 2, "acks": "all"})
        )
        self._state_key = f"{RELAY_PREFIX}{target.topic}"
        self._feed = ChangeFeed(store, batch, event_columns=RELAY_COLUMNS.removesuffix(', "seq"'))
        self._after: tuple[int, int] | None = None  # (seq, merge id) published before the feed
        self._handover: Handover | None = None  # what real time applied before the workers
        self._failed: list[str] = []
        self._locked = False
        self.more = False
        """The last round left rows to read (publish again at once)."""
        self.published = 0
        self.stop = threading.Event()
        self.wake = threading.Event()
        self._thread: threading.Thread | None = None

    def __call__(self, events: Sequence[Any], merges: Sequence[Any]) -> None:
        """Act as an intake listener: a commit happened, publish soon."""
        self.wake.set()

    def publish_pending(self) -> int:
        """Publish what was committed since the last round; return how many messages.

        Returns 0 without reading when another process's relay holds the store.

        Raises:
            WorkerError: If the brokers did not acknowledge every message.
        """
        if not self._lock():
            return 0
        try:
            return self._publish()
        except BaseException:
            self._after = None  # read what was not confirmed again, from the saved position
            raise

    def _publish(self) -> int:
        if self._after is None:
            self._resume()
        assert self._after is not None  # noqa: S101 (set by _resume)
        rows, merges, self.more = self._feed.read_rows()
        seq_after, merge_after = self._after
        rows = self._unpublished(rows, seq_after)
        merges = [m for m in merges if int(m[-1]) > merge_after]
        for row in rows:
            self._send(row[3], encode_event(row), row[0])
        for gone, into, merge_id in merges:
            body = encode_merge(int(merge_id), gone, into)
            for pid in dict.fromkeys((into, gone)):
                self._send(pid, body, f"merge:{merge_id}")
        self._confirm()
        saved = {"feed": self._feed.state(), "after": list(self._after)}
        with self.store.transaction():
            write_meta(self.store, self._state_key, json.dumps(saved))
        count = len(rows) + len(merges)
        self.published += count
        return count

    def _unpublished(self, rows: list[Any], seq_after: int) -> list[Any]:
        """The rows above ``seq_after``, and those below it not applied before the workers.

        On PostgreSQL an event may draw a lower ``seq`` than the newest one the in-process
        engine applied and commit after it took its position: it is published when the
        handover's commit position does not cover it (read for such rows only).
        """
        low = [int(row[-1]) for row in rows if int(row[-1]) <= seq_after]
        position = self._handover.position if self._handover is not None else None
        if not low or position is None:
            return [row for row in rows if int(row[-1]) > seq_after]
        missing = position.missing()
        lacking = {
            int(found[0])
            for found in self.store.fetchall(
                f"SELECT seq FROM events WHERE seq = ANY(?) AND {missing.condition}",
                [low, *missing.params],
            )
        }
        return [row for row in rows if int(row[-1]) > seq_after or int(row[-1]) in lacking]

    def _resume(self) -> None:
        """Resume the feed from its saved position, or from the first row.

        From the first row, what was applied before the workers took over (``seq`` up to
        :func:`start_seq`) is not published, nor what a relay of an earlier version
        published by ``seq`` (its keys ``kafka.relay.seq:`` and ``kafka.relay.merge:``).
        """
        topic = self.target.topic
        legacy = read_meta(self.store, f"kafka.relay.seq:{topic}")
        self._handover = None if legacy else handover(self.store)
        saved = read_meta(self.store, self._state_key)
        if saved:
            found = json.loads(saved)
            self._feed.resume(found["feed"], listen=False)
            self._after = (int(found["after"][0]), int(found["after"][1]))
            return
        self._feed.resume(None, listen=False)  # woken by intake
        merge = read_meta(self.store, f"kafka.relay.merge:{topic}")
        first = int(legacy) if legacy else start_seq(self.store)
        self._after = (first, int(merge or 0))

    def _send(self, profile_id: str, body: bytes, key: str) -> None:
        part = partition_of(profile_id, self.partitions)
        while True:
            try:
                self._producer.produce(
                    self.target.topic, body, key=key, partition=part, on_delivery=self._delivered
                )
                return
            except BufferError:  # the local queue is full: let deliveries drain
                self._producer.poll(0.1)

    def _delivered(self, error: Any, _message: Any) -> None:
        if error is not None:
            self._failed.append(str(error))

    def _confirm(self) -> None:
        left = self._producer.flush(30)
        failed, self._failed = self._failed, []
        if left or failed:
            reason = failed[0] if failed else f"{left} messages unacknowledged after 30 s"
            raise WorkerError(f"publishing to Kafka topic {self.target.topic} failed: {reason}")

    def _lock(self) -> bool:
        if not self._locked:
            rows = self.store.fetchall(f"SELECT pg_try_advisory_lock({_LOCK})")
            self._locked = bool(rows[0][0])
        return self._locked

    def start(self) -> None:
        """Publish in a background thread, whenever woken and at least every second."""
        self._thread = threading.Thread(target=self._run, name="segmint-kafka-relay", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            self.wake.clear()
            try:
                self.publish_pending()
                while self.more:
                    self.publish_pending()
            except Exception:
                log.exception("publishing events to Kafka failed; retrying")
            self.wake.wait(1.0)

    def close(self) -> None:
        """Publish what is left, stop the thread and release the relay lock."""
        self.stop.set()
        self.wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        try:
            self.publish_pending()
            while self.more:
                self.publish_pending()
        finally:
            if self._locked:
                self.store.fetchall(f"SELECT pg_advisory_unlock({_LOCK})")
                self._locked = False
            self._producer.flush(10)
