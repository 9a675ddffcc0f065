"""The intake pipeline: decode → validate → plan → dedupe → resolve identity → append.

:class:`Intake` is what every source goes through: the HTTP tracking API (through the
group-commit writer in :mod:`segmint.intake.groupcommit`), imports, webhooks and stream
consumers. One call to :meth:`Intake.commit` is one transaction: quarantine rows, identity
changes, merges and events are all written, or none is. After the commit, listeners (the
real-time membership engine) receive the stored events and the merges.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal, Protocol

from segmint.clock import Clock, SystemClock, ensure_utc
from segmint.events import Event
from segmint.intake.errors import PayloadError
from segmint.intake.identity import IdentityGraph, Merge
from segmint.intake.payloads import decode_message
from segmint.intake.quarantine import quarantine_row
from segmint.intake.results import Rejection, Submission, SubmitResult
from segmint.intake.writer import BatchWriter
from segmint.privacy.guard import hold_back_erased
from segmint.workspace import Workspace

log = logging.getLogger(__name__)

Listener = Callable[[Sequence[Event], Sequence[Merge]], None]
"""Called after each durable commit with the stored events and the merges it made."""

OnInvalid = Literal["raise", "reject", "quarantine"]


class CommitWatch(Protocol):
    """Told the message ids of each commit (see :meth:`Intake.watch_commits`)."""

    def claim(self, message_ids: Sequence[str]) -> None:
        """These messages are about to be written (before the transaction)."""
        ...

    def release(self, message_ids: Sequence[str]) -> None:
        """These claimed messages were not stored (duplicates, quarantined, a failure)."""
        ...


class Intake:
    """The pipeline over one workspace's store.

    Args:
        workspace: The workspace (its store, tracking plan and identifiers).
        clock: The clock read for ``received_at`` when a caller gives none.
    """

    def __init__(self, workspace: Workspace, clock: Clock | None = None) -> None:
        self.workspace = workspace
        self.store = workspace.store
        self.clock: Clock = clock or SystemClock()
        # Privacy (segmint.privacy): PII sealed before it is stored, emails kept hashed.
        self.privacy = workspace.privacy
        index = self.privacy.identity_index if self.privacy.encrypting else None
        self.graph = IdentityGraph(workspace.definition.identifiers, index)
        self._writer = BatchWriter(self.store, self.graph, self.privacy)
        self._lock = threading.RLock()
        self._listeners: list[Listener] = []
        self._watch: CommitWatch | None = None

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(events, merges)`` after each durable commit.

        Listeners run on the committing thread after the transaction; an exception in one is
        logged and does not undo the commit (the events are stored; a batch refresh heals).
        """
        self._listeners.append(listener)

    def watch_commits(self, watch: CommitWatch | None) -> None:
        """Tell ``watch`` which message ids each commit writes, before it writes them.

        A server's real time reads other processes' events from the store and must skip
        those its own listeners receive; claiming them before the commit leaves no instant
        where a stored event of this intake is not known as its own.
        """
        self._watch = watch

    def remove_listener(self, listener: Listener) -> None:
        """Stop calling ``listener``."""
        self._listeners.remove(listener)

    def decode(
        self,
        messages: Sequence[Any],
        *,
        source: str,
        received_at: datetime | None = None,
        invalid: OnInvalid = "raise",
        sent_at: Any = None,
    ) -> tuple[Submission, list[Rejection]]:
        """Validate raw messages into a :class:`Submission`.

        Raises:
            PayloadError: For the first malformed message when ``invalid="raise"``, its
                field prefixed with the message's index (``[3].userId``).
        """
        at = ensure_utc(received_at) if received_at else self.clock.now()
        submission = Submission([], source)
        rejected: list[Rejection] = []
        for index, raw in enumerate(messages):
            try:
                submission.messages.append(decode_message(raw, received_at=at, sent_at=sent_at))
            except PayloadError as exc:
                if invalid == "raise":
                    raise exc.within(f"[{index}]") from None
                if invalid == "reject":
                    rejected.append(Rejection(index, exc))
                else:
                    row = quarantine_row(at, source, raw, f"malformed: {exc}", exc.field)
                    submission.quarantine.append(row)
        return submission, rejected

    def submit(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        source: str,
        received_at: datetime | None = None,
        invalid: OnInvalid = "raise",
    ) -> SubmitResult:
        """Take in Segment-spec messages from ``source`` in one transaction.

        Args:
            messages: Segment-spec message dicts.
            source: The source name recorded on the events (``http``, ``import:contacts``).
            received_at: The arrival instant; the clock's now when omitted.
            invalid: What to do with a malformed message: ``raise`` a
                :class:`~segmint.intake.errors.PayloadError` and store nothing, ``reject`` it
                (listed in :attr:`SubmitResult.rejected`) or ``quarantine`` it.
        """
        submission, rejected = self.decode(
            messages, source=source, received_at=received_at, invalid=invalid
        )
        result = self.commit([submission])[0]
        if not rejected:
            return result
        return SubmitResult(**{**result.__dict__, "rejected": tuple(rejected)})

    def commit(
        self, submissions: Sequence[Submission], *, notify: bool = True, events: bool = True
    ) -> list[SubmitResult]:
        """Store several decoded submissions in one transaction.

        Args:
            submissions: Decoded messages, each with its source.
            notify: Call the listeners before returning; the group-commit writer passes
                False, answers the waiting requests first and then calls :meth:`notify`.
            events: Put the stored events in the results (the group-commit writer skips it
                when no listener is registered).
        """
        plan = self.workspace.definition.tracking_plan
        watch = self._watch
        if watch is None:
            with self._lock:
                hold_back_erased(self.privacy, submissions)
                results = self._writer.write(submissions, plan, events=events)
        else:
            with self._lock:
                hold_back_erased(self.privacy, submissions)
                ids = [m.message_id for sub in submissions for m in sub.messages]
                watch.claim(ids)
                try:
                    results = self._writer.write(submissions, plan, events=True)
                except BaseException:
                    watch.release(ids)
                    raise
            stored = {e.message_id for r in results for e in r.events}
            watch.release([i for i in ids if i not in stored])
        if notify:
            self.notify(results)
        return results

    @property
    def has_listeners(self) -> bool:
        """Whether any listener is registered."""
        return bool(self._listeners)

    def notify(self, results: Sequence[SubmitResult]) -> None:
        """Give the listeners the events and merges of committed ``results``."""
        events = [e for r in results for e in r.events]
        merges = [m for r in results for m in r.merges]
        if not (events or merges):
            return
        for listener in list(self._listeners):
            try:
                listener(events, merges)
            except Exception:
                log.exception("intake listener %r failed", listener)

    def replay(self, ids: Sequence[int] | None = None) -> SubmitResult:
        """Feed open quarantined messages through the pipeline again.

        Messages that now pass are stored and their quarantine rows marked ``replayed_at``;
        those that still fail stay open with their reason updated. A sealed message nobody
        can read any more (someone it names was erased) is skipped, its reason saying so,
        and counted in :attr:`SubmitResult.unreadable`.

        Raises:
            MasterKeyError: A message is sealed and no master key is configured.
        """
        from segmint.intake.quarantine import list_quarantine
        from segmint.privacy.errors import MasterKeyError

        items = list_quarantine(self.store, ids=ids)
        locked = [item.id for item in items if item.sealed == "no key"]
        if locked:
            raise MasterKeyError(
                f"{len(locked)} quarantined messages are sealed (first id {locked[0]}) and no "
                "master key is configured: set $SEGMINT_MASTER_KEY (or restore the key file) "
                "and replay again"
            )
        by_source: dict[str, Submission] = {}
        fixed: list[tuple[Any, ...]] = []
        unreadable = 0
        for item in items:
            if item.sealed is not None:
                fixed.append((ERASED_REASON, "payload", item.id))
                unreadable += 1
                continue
            source = item.source or "replay"
            sub = by_source.setdefault(source, Submission([], source, replay_ids=[]))
            try:
                message = decode_message(item.payload, received_at=item.received_at)
            except PayloadError as exc:
                fixed.append((f"malformed: {exc}", exc.field, item.id))
                continue
            sub.messages.append(message)
            assert sub.replay_ids is not None
            sub.replay_ids.append(item.id)
        self.store.executemany("UPDATE quarantine SET reason = ?, field = ? WHERE id = ?", fixed)
        return _combine(self.commit([s for s in by_source.values() if s.messages]), unreadable)


ERASED_REASON = (
    "erased: a person this message names was erased, so it can no longer be read; replay skips it"
)
"""The reason a replay gives a quarantined message nobody can read any more."""


def _combine(results: Sequence[SubmitResult], unreadable: int = 0) -> SubmitResult:
    return SubmitResult(
        unreadable=unreadable,
        accepted=sum(r.accepted for r in results),
        duplicates=sum(r.duplicates for r in results),
        quarantined=sum(r.quarantined for r in results),
        events=tuple(e for r in results for e in r.events),
        merges=tuple(m for r in results for m in r.merges),
    )


__all__ = [
    "CommitWatch",
    "Intake",
    "Listener",
    "Rejection",
    "Submission",
    "SubmitResult",
]
