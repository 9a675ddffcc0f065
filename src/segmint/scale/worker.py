"""``segmint worker``: real time for some partitions of the event topic, in a consumer group.

Each worker consumes the topic that :class:`~segmint.scale.kafka.EventRelay` fills, as a
member of one Kafka consumer group, and runs the real-time engine
(:class:`~segmint.membership.realtime.RealtimeEngine`) for the profiles of the partitions
it is assigned; every worker shares the PostgreSQL store. A message only says "this
profile has new events" (or "these two profiles merged"): what is applied is read from the
store, so a worker is safe against redelivery, reordering and rebalances.

Idempotence: ``worker_applied`` holds, per profile, the ``seq`` up to which its events are
applied, written in the transaction that writes its memberships and trait state (the
engine saves trait state with every batch here). A batch runs in one ``REPEATABLE READ``
transaction (one snapshot of the store):

1. the batch's profiles are locked (``FOR SHARE``; a merge committing meanwhile waits) and
   events of profiles merged away since are left to the survivor's worker;
2. their watermarks are locked (``FOR UPDATE``: a worker that lost the partition in a
   rebalance and is still finishing a batch serialises with the new owner);
3. every stored event of those profiles not yet applied is applied, in ``seq`` order (the
   messages' events and any the topic delivers later or delivered twice), and the
   watermark moves to the batch's snapshot (``pg_current_snapshot()``). "Applied" is
   "visible in the watermark's snapshot" (``pg_visible_in_snapshot`` of the event's
   transaction id, column ``xid``), not "below a ``seq``": a transaction that took a lower
   ``seq`` and commits after a higher one is still applied when it lands. (A watermark
   written before the snapshot was kept, ``snap`` NULL, falls back to ``seq``.) The
   engine's rebuild of a profile from the store (a new profile, a merge's survivor)
   therefore folds exactly the events of the snapshot.

Offsets are committed after the transaction: a worker killed mid-batch (``kill -9``) leaves
nothing applied and its messages are delivered again, to it or to another member; killed
between the commit and the offset commit, the redelivered messages find their events
below the watermark and apply nothing. A rebalance closes the engine (its cache) and opens
a new one for the new assignment; a conflict with another worker's transaction (a
serialisation failure, a deadlock) rolls back and retries the batch with a fresh engine.

Merges reach the partitions of both profiles: the survivor's worker exits the merged-away
profile and rebuilds the survivor from all its events; the other stops firing the
merged-away profile's time transitions. Each batch also locks (``FOR SHARE``) the profiles
whose time transitions fall due in it, so a merge of one of them commits after the batch
and the survivor's worker sees what the batch decided.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from segmint.clock import Clock
from segmint.events import Event
from segmint.intake.identity import survivor
from segmint.membership.realtime import RealtimeEngine
from segmint.membership.service import Membership
from segmint.scale.kafka import (
    RELAY_COLUMNS,
    Handover,
    KafkaTopic,
    WorkerError,
    handover,
    partition_of,
    require_postgres,
)
from segmint.store import Store, utcnow_naive
from segmint.store.bulk import delete_keys, upsert_rows
from segmint.traits import row_to_event
from segmint.workspace import Workspace


def pending(start: Handover) -> tuple[str, list[Any]]:
    """SQL (and its parameters) true for an event ``e`` not applied yet.

    Its profile's watermark ``w`` is LEFT JOINed: not visible in the watermark's snapshot;
    below a watermark kept without one, above its ``seq``; for a profile without one, not
    applied before the workers took over (``start``: :func:`~segmint.scale.kafka.handover`).
    """
    before, params = start.pending("e")
    sql = (
        "CASE WHEN w.snap IS NOT NULL "
        "THEN NOT pg_visible_in_snapshot(e.xid, CAST(w.snap AS pg_snapshot)) "
        f"WHEN w.seq IS NOT NULL THEN e.seq > w.seq ELSE {before} END"
    )
    return sql, params


log = logging.getLogger(__name__)

STALL_ENV = "SEGMINT_WORKER_STALL"
"""Fault injection for tests: seconds to wait inside each batch's transaction, before its
commit (a worker killed then dies mid-batch)."""
RETRIES = 8


@dataclass(frozen=True)
class Merged:
    """A profile merge as the engine takes it."""

    from_profile: str
    into_profile: str


@dataclass
class WorkerReport:
    """What a worker did (``segmint worker --format json``).

    Attributes:
        received: Messages read from the topic.
        applied: Events applied to real time (each once, whatever was redelivered).
        merges: Merges applied.
        batches: Transactions committed.
        retries: Batches rolled back and retried (conflicts with another worker).
        rebalances: Assignments received.
        skipped: Messages that were not the relay's (not JSON, no profile).
        partitions: The partitions assigned at the end.
    """

    received: int = 0
    applied: int = 0
    merges: int = 0
    batches: int = 0
    retries: int = 0
    rebalances: int = 0
    skipped: int = 0
    partitions: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The report as plain data."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


class PartitionWorker:
    """One member of the workers' consumer group.

    Args:
        workspace: The workspace (its store must be PostgreSQL).
        target: The topic and group.
        clock: The clock the engine decides at.
        batch_size: Messages read per batch.
        name: This member's client id.
    """

    def __init__(
        self,
        workspace: Workspace,
        target: KafkaTopic,
        clock: Clock,
        *,
        batch_size: int = 2000,
        name: str | None = None,
    ) -> None:
        require_postgres(workspace.store)
        self.store: Store = workspace.store
        self.membership = Membership(workspace)
        self.target = target
        self.clock = clock
        self.batch_size = batch_size
        self.name = name or f"segmint-worker-{os.getpid()}"
        self.report = WorkerReport()
        self.partitions = target.ensure()
        self.start = handover(self.store)
        self._assigned: set[int] = set()
        self._gone: set[str] = set()  # merged away: another worker decides their survivor
        self._written: dict[str, tuple[int, str]] = {}  # the watermarks this engine wrote
        self._engine: RealtimeEngine | None = None
        self._stall = float(os.environ.get(STALL_ENV) or 0)
        self._consumer = self._subscribe()

    def _subscribe(self) -> Any:
        from confluent_kafka import Consumer

        settings = self.target.client(**{
            "group.id": self.target.group,
            "client.id": self.name,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        })  # fmt: skip
        consumer = Consumer(settings)
        consumer.subscribe(
            [self.target.topic], on_assign=self._on_assign, on_revoke=self._on_revoke
        )
        return consumer

    def owns(self, profile_id: str) -> bool:
        """Whether this worker decides ``profile_id`` (its partition is assigned here)."""
        if profile_id in self._gone:
            return False
        return partition_of(profile_id, self.partitions) in self._assigned

    def _on_assign(self, _consumer: Any, partitions: Sequence[Any]) -> None:
        self._assigned |= {p.partition for p in partitions}
        self.report.rebalances += 1
        self._reset()
        log.info("%s assigned partitions %s", self.name, sorted(self._assigned))

    def _on_revoke(self, _consumer: Any, partitions: Sequence[Any]) -> None:
        self._assigned -= {p.partition for p in partitions}
        self._reset()

    def _reset(self) -> None:
        """Drop the engine and its cache (another worker may write these profiles now)."""
        if self._engine is not None:
            try:
                self._engine.close()
            except Exception:  # its batches are committed; the close only saves
                log.exception("closing the real-time engine failed")
        self._engine = None
        self._written.clear()

    @property
    def engine(self) -> RealtimeEngine:
        """The real-time engine for the current assignment (opened on first use)."""
        if self._engine is None:
            self._engine = RealtimeEngine(
                self.store,
                self.membership.compiled,
                self.clock,
                hub=self.membership.hub,
                owns=self.owns,
            )
        return self._engine

    def run(
        self,
        stop: threading.Event | None = None,
        *,
        idle_timeout: float | None = None,
        poll: float = 0.5,
    ) -> WorkerReport:
        """Consume until ``stop`` is set (or ``idle_timeout`` seconds pass without a message).

        Between batches, time transitions that fell due are fired.
        """
        stop = stop or threading.Event()
        idle_since = time.monotonic()
        try:
            while not stop.is_set():
                messages = self._read(poll)
                if messages:
                    self._handle(messages)
                    idle_since = time.monotonic()
                elif idle_timeout is not None and time.monotonic() - idle_since >= idle_timeout:
                    break
                self._advance()
        finally:
            self.report.partitions = sorted(self._assigned)
            self.close()
        return self.report

    def _read(self, poll: float) -> list[Any]:
        from confluent_kafka import KafkaError

        found = []
        for msg in self._consumer.consume(num_messages=self.batch_size, timeout=poll):
            error = msg.error()
            if error is None:
                found.append(msg)
            elif error.code() != KafkaError._PARTITION_EOF and not error.retriable():
                raise WorkerError(f"Kafka error on {self.target.topic}: {error.str()}")
        return found

    def _handle(self, messages: Sequence[Any]) -> None:
        self.report.received += len(messages)
        profiles: set[str] = set()
        merges: list[tuple[str, str]] = []
        for msg in messages:
            try:
                body = orjson.loads(msg.value() or b"null")
                if body.get("kind") == "merge":
                    merges.append((str(body["from"]), str(body["into"])))
                else:
                    profiles.add(str(body["profile_id"]))
            except (orjson.JSONDecodeError, AttributeError, KeyError):
                # not the relay's: skipped (the events it applies are read from the store)
                self.report.skipped += 1
                log.warning("skipped message %s:%s: not an event or merge of segmint's relay",
                            msg.partition(), msg.offset())  # fmt: skip
        self._retrying(lambda: self._apply(profiles, merges))
        self._commit(messages)

    def _retrying(self, step: Any) -> None:
        for attempt in range(RETRIES):
            try:
                step()
                return
            except Exception as exc:
                self._reset()  # the engine's cache may hold what was rolled back
                if attempt == RETRIES - 1 or not _conflict(exc):
                    raise
                self.report.retries += 1
                log.info("batch conflicted with another worker (%s); retrying", exc)
                time.sleep(0.05 * (attempt + 1))

    def _apply(self, profiles: set[str], merges: Sequence[tuple[str, str]]) -> None:
        store = self.store
        at = self.clock.now()
        with store.transaction():
            store.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            mine = self._merges(merges)
            roots = sorted(self._live(profiles | {m.into_profile for m in mine}))
            top, snap = store.fetchall(
                "SELECT coalesce(max(seq), 0), pg_current_snapshot()::text FROM events"
            )[0]
            events = self._pending(roots)
            self._lock_due(at)
            if events or mine:
                self.engine.process(events, mine, at)
            marks = [(pid, int(top), str(snap)) for pid in roots]
            upsert_rows(store, "worker_applied", ("profile_id", "seq", "snap"), ("profile_id",),
                        marks)  # fmt: skip
            gone = [(m.from_profile,) for m in mine]
            delete_keys(store, "worker_applied", ("profile_id",), gone)
            if self._stall:
                log.warning(
                    "%s stalls %.1f s inside a batch (%s)", self.name, self._stall, STALL_ENV
                )
                time.sleep(self._stall)
        self._written.update((pid, (seq, snap)) for pid, seq, snap in marks)
        self.report.applied += len(events)
        self.report.merges += len(mine)
        self.report.batches += 1

    def _merges(self, merges: Sequence[tuple[str, str]]) -> list[Merged]:
        """The merges whose survivor this worker decides; remember the others' gone profiles."""
        mine = []
        for gone, into in dict.fromkeys(merges):
            root = survivor(self.store, into) or into
            if self.owns(root):
                mine.append(Merged(gone, root))
            self._gone.add(gone)
        return mine

    def _live(self, profiles: Iterable[str]) -> list[str]:
        """Lock the profiles; return those not merged away (their survivor's worker has them)."""
        rows = self.store.fetchall(
            "SELECT profile_id, merged_into FROM profiles WHERE profile_id = ANY(?) "
            "ORDER BY profile_id FOR SHARE",
            [sorted(profiles)],
        )
        merged = {pid for pid, into in rows if into is not None}
        self._gone |= merged
        return [pid for pid in profiles if pid not in merged]

    def _pending(self, roots: Sequence[str]) -> list[Event]:
        """The stored events of ``roots`` not applied yet (see the module), in ``seq`` order."""
        marks = {
            pid: (seq, snap)
            for pid, seq, snap in self.store.fetchall(
                "SELECT profile_id, seq, snap FROM worker_applied WHERE profile_id = ANY(?) "
                "ORDER BY profile_id FOR UPDATE",
                [list(roots)],
            )
        }
        stale = [p for p in roots if p in self._written and marks.get(p) != self._written[p]]
        if stale:  # another worker applied events of profiles this engine holds in cache
            self._reset()
        condition, params = pending(self.start)
        rows = self.store.fetchall(
            f"SELECT {RELAY_COLUMNS} FROM (SELECT e.* FROM events e "
            "LEFT JOIN worker_applied w ON w.profile_id = e.profile_id "
            f"WHERE e.profile_id = ANY(?) AND {condition}) pending ORDER BY seq",
            [list(roots), *params],
        )
        # Without their seq: a rebuild from the store (a new profile, a merge's survivor)
        # then folds every event of the snapshot, all of which are applied once it commits.
        return [row_to_event((*row[:-1], None)) for row in rows]

    def _lock_due(self, at: datetime) -> None:
        """Lock the profiles whose time transitions fall due by ``at``; skip merged ones.

        A merge of one of them commits after this transaction, so its survivor's worker
        sees (and exits) what this batch decides for it.
        """
        rows = self.store.fetchall(
            "SELECT p.profile_id, p.merged_into FROM schedule s JOIN profiles p "
            "ON p.profile_id = s.profile_id WHERE s.due_at <= ? "
            "ORDER BY p.profile_id FOR SHARE OF p",
            [utcnow_naive(at)],
        )
        self._gone |= {pid for pid, into in rows if into is not None}

    def _advance(self) -> None:
        if not self._assigned:
            return
        engine = self.engine
        due = engine.next_due()
        now = self.clock.now()
        if due is None or due > now:
            return

        def fire() -> None:
            with self.store.transaction():
                self._lock_due(now)
                self.engine.advance(now)

        self._retrying(fire)

    def _commit(self, messages: Sequence[Any]) -> None:
        from confluent_kafka import KafkaException, TopicPartition

        last: dict[int, int] = {}
        for msg in messages:
            last[msg.partition()] = max(last.get(msg.partition(), -1), msg.offset())
        offsets = [TopicPartition(self.target.topic, p, o + 1) for p, o in last.items()]
        try:
            self._consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:  # revoked meanwhile: the new owner skips them
            log.info("offset commit failed (%s); the messages will be delivered again", exc)

    def close(self) -> None:
        """Save, leave the group (a rebalance hands the partitions over) and close."""
        self._reset()
        self._consumer.close()


def _conflict(exc: BaseException) -> bool:
    """Whether ``exc`` (or its cause) is a transaction conflict worth a retry."""
    import psycopg

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(
            seen,
            psycopg.errors.SerializationFailure
            | psycopg.errors.DeadlockDetected
            | psycopg.errors.UniqueViolation
            | psycopg.errors.LockNotAvailable,
        ):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def worker_lag(store: Store) -> dict[str, Any]:
    """Events stored and not yet applied by the workers, and the oldest one's ``seq``."""
    condition, params = pending(handover(store))
    rows = store.fetchall(
        "SELECT count(*), min(e.seq) FROM events e LEFT JOIN worker_applied w "
        f"ON w.profile_id = e.profile_id WHERE {condition}",
        params,
    )
    count, oldest = rows[0]
    return {"pending_events": int(count), "oldest_pending_seq": oldest}
