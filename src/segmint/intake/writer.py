"""One intake transaction: plan check, identity resolution, merges, quarantine and events.

:class:`BatchWriter` turns decoded submissions into rows and writes them all in one
transaction. It is not thread-safe; :class:`segmint.intake.Intake` holds a lock around it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson
import pyarrow as pa

from segmint.config.model import TrackingPlan
from segmint.events import Event
from segmint.intake.identity import Changes, IdentityGraph, Merge
from segmint.intake.payloads import Message
from segmint.intake.plan import check_plan
from segmint.intake.quality import count_ignored_identifiers, count_repeated_ids
from segmint.intake.quarantine import (
    QUARANTINE_COLUMNS,
    open_message_ids,
    protect_rows,
    quarantine_row,
)
from segmint.intake.results import Submission, SubmitResult
from segmint.store import EVENT_SCHEMA, Store, utcnow_naive
from segmint.store.bulk import insert_rows

if TYPE_CHECKING:
    from segmint.privacy.protect import Privacy

_BUMP = (
    "UPDATE meta SET value = CAST(CAST(value AS BIGINT) + 1 AS TEXT) "
    "WHERE key = 'intake_generation' RETURNING value"
)


@dataclass(slots=True)
class _Pending:
    """A message resolved to a profile, waiting to be appended."""

    sub: int
    source: str
    message: Message
    profile_id: str
    replay_id: int | None


@dataclass
class _Batch:
    """What one transaction collects before writing."""

    size: int
    changes: Changes = field(default_factory=Changes)
    pending: list[_Pending] = field(default_factory=list)
    quarantine: list[tuple[Any, ...]] = field(default_factory=list)
    suspects: list[tuple[int, Message, str, str]] = field(default_factory=list)
    still_bad: list[tuple[str, str, int]] = field(default_factory=list)
    merges: list[list[Merge]] = field(default_factory=list)
    counts: list[list[int]] = field(default_factory=list)  # accepted, duplicates, quarantined
    events: list[list[Event]] = field(default_factory=list)
    ignored: list[tuple[str, datetime, str]] = field(default_factory=list)  # source, at, kind

    def __post_init__(self) -> None:
        self.merges = [[] for _ in range(self.size)]
        self.counts = [[0, 0, 0] for _ in range(self.size)]
        self.events = [[] for _ in range(self.size)]


class BatchWriter:
    """Writes submissions to the store, keeping the identity graph in step."""

    def __init__(self, store: Store, graph: IdentityGraph, privacy: Privacy | None = None) -> None:
        self.store = store
        self.graph = graph
        self.privacy = privacy
        self.generation: int | None = None
        self._want_events = True

    def write(
        self, submissions: Sequence[Submission], plan: TrackingPlan | None, *, events: bool = True
    ) -> list[SubmitResult]:
        """Write ``submissions`` in one transaction and return one result for each.

        Args:
            submissions: What to write.
            plan: The tracking plan to check track events against.
            events: Build the stored :class:`~segmint.events.Event` records for the results
                (skipped on the hot path when nobody listens).
        """
        self._want_events = events
        if self.privacy is not None:  # a sealed workspace run without its key: refuse
            self.privacy.require_key("storing input")
        try:
            with self.store.transaction():
                self._sync()
                batch = self._resolve(submissions, plan)
                self._write(batch)
                repeats = [c[1] for c in batch.counts]
                count_repeated_ids(self.store, zip(submissions, repeats, strict=True))
                count_ignored_identifiers(self.store, batch.ignored)
        except BaseException:
            self.generation = None  # the cache may hold uncommitted links: reload next time
            raise
        return [
            SubmitResult(c[0], c[1], c[2], tuple(e), tuple(m))
            for c, e, m in zip(batch.counts, batch.events, batch.merges, strict=True)
        ]

    def _sync(self) -> None:
        rows = self.store.fetchall(_BUMP)
        if not rows:
            self.store.execute("INSERT INTO meta VALUES ('intake_generation', '1')")
            rows = [("1",)]
        current = int(rows[0][0])
        if self.generation != current - 1:
            self.graph.load(self.store)
        self.generation = current

    def _resolve(self, submissions: Sequence[Submission], plan: TrackingPlan | None) -> _Batch:
        batch = _Batch(len(submissions))
        for index, sub in enumerate(submissions):
            batch.quarantine.extend(sub.quarantine)
            batch.counts[index][2] += len(sub.quarantine)
            if plan is None and sub.replay_ids is None:
                self._resolve_plain(batch, index, sub)
                continue
            for position, message in enumerate(sub.messages):
                replay_id = sub.replay_ids[position] if sub.replay_ids is not None else None
                self._one(batch, index, sub.source, message, replay_id, plan)
        return batch

    def _resolve_plain(self, batch: _Batch, index: int, sub: Submission) -> None:
        """The hot path of :meth:`_resolve`: no plan to check, nothing replayed."""
        resolve, changes, source = self.graph.resolve, batch.changes, sub.source
        merges, pending = changes.merges, batch.pending.append
        for message in sub.messages:
            before = len(merges)
            profile_id = resolve(message, changes)
            if len(merges) != before:
                batch.merges[index].extend(merges[before:])
            pending(_Pending(index, source, message, profile_id, None))

    def _one(
        self,
        batch: _Batch,
        index: int,
        source: str,
        message: Message,
        replay_id: int | None,
        plan: TrackingPlan | None,
    ) -> None:
        violations = check_plan(plan, message) if plan is not None else None
        if violations:
            # with PII encryption on, the reason (kept in the clear) names no value
            withhold = self.privacy is not None and self.privacy.encrypting
            reason = "; ".join(v.text(values=not withhold) for v in violations)
            if replay_id is not None:
                batch.still_bad.append((reason, violations[0].field, replay_id))
            else:
                batch.suspects.append((index, message, source, reason))
            return
        before = len(batch.changes.merges)
        profile_id = self.graph.resolve(message, batch.changes)
        batch.merges[index].extend(batch.changes.merges[before:])
        batch.pending.append(_Pending(index, source, message, profile_id, replay_id))

    def _write(self, batch: _Batch) -> None:
        self._write_identity(batch.changes)
        self._write_quarantine(batch)
        inserted = self._append(batch)
        conflicts = [c for c in batch.changes.conflicts if c.message_id in inserted]
        insert_rows(
            self.store,
            "identity_conflicts",
            ("kind", "value", "owner_profile", "claimant_profile", "message_id", "occurred_at"),
            [
                (
                    c.kind,
                    c.value,
                    c.owner_profile,
                    c.claimant_profile,
                    c.message_id,
                    utcnow_naive(c.occurred_at),
                )  # fmt: skip
                for c in conflicts
            ],
        )
        done = [(p.message.received_at, p.replay_id) for p in batch.pending if p.replay_id]
        self.store.executemany(
            "UPDATE quarantine SET replayed_at = ? WHERE id = ?",
            [(utcnow_naive(at), rid) for at, rid in done],
        )
        self.store.executemany(
            "UPDATE quarantine SET reason = ?, field = ? WHERE id = ?", batch.still_bad
        )

    def _write_identity(self, changes: Changes) -> None:
        for merge in changes.merges:
            if merge.from_profile not in changes.new_profiles:
                self._move(merge)
            self.store.execute(
                "INSERT INTO profile_merges (from_profile, into_profile, occurred_at, reason) "
                "VALUES (?, ?, ?, ?)",
                [merge.from_profile, merge.into_profile, utcnow_naive(merge.occurred_at),
                 merge.reason],
            )  # fmt: skip
        graph = self.graph
        profiles = [
            (pid, utcnow_naive(at), utcnow_naive(at), graph.merged_into.get(pid))
            for pid, at in changes.new_profiles.items()
        ]
        insert_rows(
            self.store, "profiles", ("profile_id", "created_at", "updated_at", "merged_into"),
            profiles,
        )  # fmt: skip
        identities = [
            (kind, value, graph.owner[(kind, value)], utcnow_naive(at))
            for (kind, value), at in changes.new_identities.items()
        ]
        insert_rows(
            self.store, "identities", ("kind", "value", "profile_id", "first_seen_at"), identities
        )

    def _move(self, merge: Merge) -> None:
        params = [merge.into_profile, merge.from_profile]
        self.store.execute("UPDATE identities SET profile_id = ? WHERE profile_id = ?", params)
        self.store.execute("UPDATE events SET profile_id = ? WHERE profile_id = ?", params)
        self.store.execute(
            "UPDATE profiles SET merged_into = ?, updated_at = ? WHERE profile_id = ?",
            [merge.into_profile, utcnow_naive(merge.occurred_at), merge.from_profile],
        )

    def _write_quarantine(self, batch: _Batch) -> None:
        ids = [m.message_id for _, m, _, _ in batch.suspects]
        known = open_message_ids(self.store, ids) | _stored(self.store, ids)
        for index, message, source, reason in batch.suspects:
            if message.message_id in known:
                batch.counts[index][1] += 1
                continue
            known.add(message.message_id)
            field = reason.split(":", 1)[0]
            batch.quarantine.append(
                quarantine_row(message.received_at, source, message.payload, reason, field)
            )
            batch.counts[index][2] += 1
        if not batch.quarantine:
            return
        identifiers = self.graph.identifiers
        rows = protect_rows(batch.quarantine, self.privacy, identifiers)
        if self.privacy is not None:
            self.privacy.flush()  # new subject keys reach the vault before the rows commit
        insert_rows(self.store, "quarantine", QUARANTINE_COLUMNS, rows)

    def _append(self, batch: _Batch) -> set[str]:
        seen: set[str] = set()
        unique: list[_Pending] = []
        for item in batch.pending:
            if item.message.message_id in seen:
                batch.counts[item.sub][1] += 1
                continue
            seen.add(item.message.message_id)
            item.profile_id = self.graph.root(item.profile_id)
            unique.append(item)
        if not unique:
            return set()
        if self.privacy is not None:  # stored (and handed on) minimised, PII sealed
            self.privacy.prepare({item.profile_id for item in unique})
            protect = self.privacy.protect
            for item in unique:
                protect(item.profile_id, item.message)
            self.privacy.flush()  # new profile keys reach the vault before events commit
        returned = self.store.append_events(_table(unique), returning=True)
        inserted = returned if isinstance(returned, dict) else {}
        for item in unique:
            seq = inserted.get(item.message.message_id)
            if seq is not None:
                batch.counts[item.sub][0] += 1
                for kind in batch.changes.ignored.get(item.message.message_id, ()):
                    batch.ignored.append((item.source, item.message.received_at, kind))
                if self._want_events:
                    batch.events[item.sub].append(_event(item, seq))
            else:
                batch.counts[item.sub][1] += 1
        return set(inserted)


def _stored(store: Store, message_ids: Sequence[str]) -> set[str]:
    if not message_ids:
        return set()
    marks = ", ".join("?" for _ in message_ids)
    rows = store.fetchall(
        f"SELECT message_id FROM events WHERE message_id IN ({marks})", list(message_ids)
    )
    return {r[0] for r in rows}


def _event(item: _Pending, seq: int) -> Event:
    m = item.message
    return Event(
        message_id=m.message_id,
        type=m.type,
        event=m.event,
        profile_id=item.profile_id,
        timestamp=m.timestamp,
        properties=m.properties,
        traits=m.traits,
        user_id=m.user_id,
        anonymous_id=m.anonymous_id,
        received_at=m.received_at,
        seq=seq,
    )


def _json(value: dict[str, Any]) -> str:
    return orjson.dumps(value, default=str).decode() if value else "{}"


def _table(items: Sequence[_Pending]) -> pa.Table:
    msgs = [i.message for i in items]
    columns = {
        "message_id": [m.message_id for m in msgs],
        "type": [m.type for m in msgs],
        "event": [m.event for m in msgs],
        "profile_id": [i.profile_id for i in items],
        "user_id": [m.user_id for m in msgs],
        "anonymous_id": [m.anonymous_id for m in msgs],
        # Arrow turns aware datetimes into naive UTC itself.
        "timestamp": [m.timestamp for m in msgs],
        "received_at": [m.received_at for m in msgs],
        "source": [i.source for i in items],
        "properties": [_json(m.properties) for m in msgs],
        "traits": [_json(m.traits) for m in msgs],
        "context": [_json(m.context) for m in msgs],
    }
    return pa.table(columns, schema=EVENT_SCHEMA)
