"""The journey engine: triggers in, steps taken at their exact instants, messages out.

:meth:`JourneyEngine.tick` (what ``segmint journeys run`` and the server's timer call):

1. reads the membership changes and events recorded since its cursors (``meta``), in the
   order of their instants; before each, it takes every step due until that instant, so a
   timer and an event are handled in the order they happened;
2. enters profiles (trigger, re-entry policy, audience), ends instances that meet an event
   exit condition, and moves instances waiting for an event;
3. takes every step due until ``as_of``, each at its own instant: waits and timeouts end
   at ``step_since + duration`` exactly; exit rules are checked before every step.

Sending is idempotent. A send step's ledger row (:func:`ledger_campaign`: one per journey,
step and entry) is planned and claimed in committed transactions before SMTP, and the
instance moves past the step only after the ``sent`` mark. A process killed anywhere
resumes at the same step: a row found ``sent`` moves on, a row left ``attempting`` becomes
``uncertain`` and is not re-sent (at most once, like campaigns), any other row is sent.
A transient SMTP failure leaves the instance on its step, due again after the retry
policy's backoff: nobody is lost while the server is down.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from segmint.clock import Clock, FixedClock
from segmint.common import batched
from segmint.config.measure import VariantDef
from segmint.config.model import CampaignDef
from segmint.deliver.campaign import envelope_address, message_id_for
from segmint.deliver.compose import TemplateComposer
from segmint.deliver.consent import sync_trait_consents, unread_statements_sql
from segmint.deliver.engagement import Announce, announce_ledger
from segmint.deliver.errors import CampaignError, DeliveryError, HardBounce
from segmint.deliver.gate import ConsentGate, address_of
from segmint.deliver.ledger import (
    FINAL,
    Bounce,
    SendLedger,
    claim_many,
    record_templates,
    send_key,
    sent_many_at,
)
from segmint.deliver.links import LinkSigner
from segmint.deliver.policy import (
    Decision,
    DeliveryPolicy,
    Message,
    SendTimes,
    by_priority,
    ledger_history,
    longest_window,
)
from segmint.deliver.retry import RetryPolicy
from segmint.deliver.transport import EmailTransport, SmtpPool
from segmint.events import Event
from segmint.journeys.compiled import CompiledJourney, ledger_campaign
from segmint.journeys.conditions import Rules
from segmint.journeys.instances import ACTIVE, DONE, HistoryRow, Instance, Instances, instance_id
from segmint.journeys.lookup import PassLookup
from segmint.membership.changes import MembershipChange, read_changes
from segmint.personalize.errors import TemplateRenderError
from segmint.profiles import Profile, decode_traits, unseal
from segmint.store import read_meta, utcnow_naive, write_meta
from segmint.store.bulk import fetch_in
from segmint.traits import EVENT_COLUMNS, row_to_event
from segmint.workspace import Workspace

JOURNEY_RETRY = RetryPolicy(max_attempts=10, base_delay=30.0, factor=2.0, max_delay=3600.0)
"""A send step's backoff while the mail server fails: 30 s doubling to 1 h, ten attempts."""
EVENTS_CURSOR = "journeys.events_seq"
CHANGES_CURSOR = "journeys.changes_id"
STARTED = "journeys.started."
RESCAN = 1.0
"""Seconds between trigger reads of a listening engine that heard nothing (see listen)."""
NOT_CONFIGURED_RETRY = timedelta(minutes=1)
"""How long a send step waits when its email cannot be composed for want of configuration
(the link-signing secret): the instance stays on its step, and it goes once that is set."""
ANNOUNCE_EVERY = 1.0
"""Seconds between announcements of a listening engine (see _maybe_announce)."""
ANNOUNCE_GAP = timedelta(seconds=1)
"""A listening engine announces only when no step is due within this (see _maybe_announce)."""
ANNOUNCE_LATEST = 30.0
"""…or once this many seconds passed since its last announcement all the same."""
LEAD = 0.2
"""Seconds ahead of their instant a server prepares its steps (see :meth:`listen`)."""
PASS = 2000
"""Triggers applied in one pass at most (see _pass)."""
MAX_HOPS = 100  # steps one instance may take at one instant (a loop of branches ends here)
log = logging.getLogger(__name__)


@dataclass
class TickReport:
    """What one or more ticks did, counted by reason."""

    entered: Counter[str] = field(default_factory=Counter)
    steps: int = 0
    sent: Counter[str] = field(default_factory=Counter)
    resumed: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    delayed: Counter[str] = field(default_factory=Counter)
    exited: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary."""
        return {
            "entered": dict(sorted(self.entered.items())),
            "steps": self.steps,
            "sent": sum(self.sent.values()),
            "resumed": dict(sorted(self.resumed.items())),
            "skipped": dict(sorted(self.skipped.items())),
            "delayed": dict(sorted(self.delayed.items())),
            "exited": dict(sorted(self.exited.items())),
            "failed": dict(sorted(self.failed.items())),
        }


_Item = Event | MembershipChange
_T = TypeVar("_T")
_Go = tuple[Instance, datetime, Profile, str | None]  # a message: instance, instant, arm
_Ready = tuple[Instance, datetime, bytes, str, str, SendLedger, str]  # composed, to claim


@dataclass
class _Batch:  # what one round of steps writes
    touched: dict[str, Instance] = field(default_factory=dict)
    history: list[HistoryRow] = field(default_factory=list)
    sends: list[tuple[Instance, datetime]] = field(default_factory=list)
    marks: list[Callable[[], None]] = field(default_factory=list)
    refused: set[tuple[str, datetime]] = field(default_factory=set)
    fresh: set[str] = field(default_factory=set)  # send keys the ledger has no row of
    ahead: bool = False  # prepared before its instants (see JourneyEngine._stream)
    consent: tuple[Any, ...] = ()  # the consent statements it was decided on (_consent_mark)

    def settle(self) -> None:
        """Write the ledger marks waiting for a transaction (call inside one)."""
        marks = list(self.marks)  # (the list may be shared by a server's prepared rounds)
        self.marks.clear()
        for mark in marks:
            mark()


@dataclass
class _Window:  # a round of steps prepared ahead of their instants (see _stream)
    batch: _Batch
    ready: list[_Go]  # its messages, by instant (composed when handed over)
    last: datetime  # its latest instant: its moves are written once the clock passed it
    ids: set[str]  # its instances (not selected again while it is in flight)


def _held_back(
    items: list[tuple[datetime, tuple[int, int], _Item]], cursors: dict[str, int], as_of: datetime
) -> tuple[list[tuple[datetime, tuple[int, int], _Item]], dict[str, int]]:
    """The triggers up to ``as_of``, and cursors that stop before the first one after it.

    The triggers after the held-back position that were taken are read again by the next
    tick, which recognises them (see ``JourneyEngine.halt``).
    """
    later = [position for when, position, _ in items if when > as_of]
    if not later:
        return items, cursors
    kept = dict(cursors)
    events = [seq for seq, change in later if not change]
    changes = [change for _, change in later if change]
    if events:
        kept[EVENTS_CURSOR] = min(kept[EVENTS_CURSOR], min(events) - 1)
    if changes:
        kept[CHANGES_CURSOR] = min(kept[CHANGES_CURSOR], min(changes) - 1)
    return [item for item in items if item[0] <= as_of], kept


class JourneyEngine:
    """Runs the workspace's journeys.

    Args:
        workspace: The workspace (journeys, delivery policy, store, templates).
        clock: Dates the messages; ``tick`` takes its instant explicitly.
        transport: Builds the transport for a round of sends (the SMTP pool by default).
        retry: The backoff of a send step while the mail server fails.
        batch: Instances taken per round.
        pass_size: Triggers applied in one pass at most (1: each on its own, see ``_pass``).
        signer: Signs links (from ``email`` settings and ``SEGMINT_SECRET`` by default).
        announce: Submits ``Email Delivered`` and ``Email Bounced`` to intake, from the
            ledger after each round, like a campaign run (none: nothing is announced).
    """

    def __init__(
        self,
        workspace: Workspace,
        clock: Clock,
        *,
        transport: Callable[[], EmailTransport] | None = None,
        retry: RetryPolicy = JOURNEY_RETRY,
        batch: int = 2000,
        pass_size: int = PASS,
        signer: LinkSigner | None = None,
        announce: Announce | None = None,
    ) -> None:
        self.workspace = workspace
        self.announce = announce
        self._unannounced: set[str] = set()  # ledger campaigns with sends to announce
        self.store = workspace.store
        self.clock = clock
        ws = workspace.definition
        self.definition = ws
        topic = ws.consent.topics[0] if ws.consent.topics else "newsletter"
        self.journeys = {n: CompiledJourney(n, d, topic) for n, d in ws.journeys.items()}
        self.instances = Instances(self.store)
        texts = [t for j in self.journeys.values() for t in j.rules]
        self.rules = Rules(self.store, ws, texts) if texts else None
        self.transport = transport or (lambda: SmtpPool(ws.email.smtp))
        self.retry = retry
        self.batch = batch
        self.pass_size = max(1, pass_size)
        self._signer = signer
        self._unsigned_said: datetime | None = None  # when the missing secret was last logged
        self._composers: dict[tuple[str, str, str], TemplateComposer] = {}
        self._lock = threading.RLock()
        self.report = TickReport()
        self.ticks = 0
        """How many ticks ran (a server's first shows it is past its start)."""
        self.consent_reads = 0
        """How many times a server read consent again before a claim (see :meth:`_recheck`)."""
        self._listened = frozenset().union(*(j.events for j in self.journeys.values()))
        self._watched = frozenset(s for j in self.journeys.values() for s in j.trigger_segments)
        """The segments whose entries or exits start a journey."""
        self._recovered = False
        self._cursors: dict[str, int] = {}
        self._since: dict[str, tuple[int, int]] = {}
        self._listening = False
        self.lead = 0.0
        """Seconds ahead of their instant steps are prepared (see :meth:`listen`)."""
        self._windows: list[_Window] = []  # prepared, not all sent yet (see _stream)
        self._marks: list[Callable[[], None]] = []  # their sent marks, for any transaction
        self._dirty = True
        self._scanned = 0.0
        self._announced = time.monotonic()  # (a server announces a second after start)
        self._halted = threading.Event()  # a server stopping: see halt()

    # -- the public loop -------------------------------------------------------------------

    def tick(
        self, as_of: datetime, *, since: datetime | None = None, keep_later: bool = False
    ) -> TickReport:
        """Take the triggers recorded so far and every step due at or before ``as_of``.

        Args:
            as_of: The instant up to which steps are taken.
            since: Ignore triggers (and waits and exits) that happened before this instant
                (a backfill of old events need not start journeys).
            keep_later: Leave the triggers that happen after ``as_of`` for a later tick
                (``segmint journeys run --as-of`` an instant before events already stored:
                they have not happened yet then). Without it such a trigger is a clock
                running fast (a server's ``as_of`` is now) and counts at ``as_of``.
        """
        with self._lock:
            self._recover()
            early = self._listening and not self._dirty
            if early:
                # a server heard nothing new: what a periodic re-read may find is other
                # writers' (late by up to RESCAN s anyway); the steps due now go first
                self._take(as_of)
            scan = self._should_scan()
            if scan:
                self._follow_merges(as_of)
            items, cursors = self._triggers(since) if scan else ([], {})
            if keep_later:
                items, cursors = _held_back(items, cursors, as_of)
            todo = [
                (min(when, as_of), position, item)  # one stamped ahead of the clock counts now
                for when, position, item in items
                if since is None or when >= since
            ]
            if todo:
                self._drain()  # what a server prepared goes first: the triggers move instances
            start = 0
            while start < len(todo):
                if self._halted.is_set():  # the cursors stay: the next start reads the rest
                    return self.report  # (and finds the triggers applied: see _enter)
                start += self._pass(todo[start : start + self.pass_size])
            moved = {k: v for k, v in cursors.items() if self._cursors.get(k) != v}
            if moved:
                with self.store.transaction():
                    for key, value in moved.items():
                        write_meta(self.store, key, str(value))
                self._cursors.update(moved)
            if scan or not early:  # else nothing can have become due since the first advance
                self._take(as_of)
            self.ticks += 1
            return self.report

    def halt(self) -> None:
        """Make a tick under way return after its current pass (a server is stopping).

        Each pass commits on its own, and a trigger read again is recognised (see
        :meth:`_enter` and :meth:`_refuse`), so the next start takes what is left: a stop
        waits for one pass, not for a backlog of triggers or due steps.
        """
        self._halted.set()

    def warm(self) -> None:
        """Compile every send step's templates now, not when its first timer fires.

        A server calls this at start: the first message of a step would otherwise pay the
        template compilation (about a second for a few templates) after its due instant.
        Without the link-signing secret nothing is compiled: the server starts, and each due
        send reports the missing secret as before.
        """
        from segmint.deliver.errors import CampaignError

        try:
            for journey in self.journeys.values():
                for name, step in journey.steps.items():
                    if step.send is None:
                        continue
                    variants = (v for v in step.variants if isinstance(v, str))
                    for template in (step.send, *variants):
                        campaign = journey.campaign(name, template)
                        self._composer(journey.name, name, template, campaign)
        except CampaignError as exc:  # the server still starts; a due send says it again
            log.warning("journey emails cannot be composed yet: %s", exc)

    def listen(self, lead: float = 0.0) -> None:
        """Read triggers only when :meth:`heard` was called (or every :data:`RESCAN` s).

        For a server whose intake and membership changes call :meth:`heard`: a timer that
        fires then skips the trigger queries, so a step due now is not kept waiting by them
        (and before the periodic re-read, which finds only writers the server does not
        hear, the steps due are taken first).

        Args:
            lead: Prepare steps this many seconds ahead of their instant, on a clock that
                runs (see :meth:`_stream`): a message is then claimed and handed to the mail
                server at its instant, not after a round's reads and rendering.
        """
        self._listening = True
        self.lead = max(0.0, lead)

    def heard(self) -> None:
        """New events or membership changes were committed: the next tick reads them."""
        self._dirty = True

    def _should_scan(self) -> bool:
        if not self._listening or self._dirty:
            self._dirty = False
            self._scanned = time.monotonic()
            return True
        if time.monotonic() - self._scanned >= RESCAN:  # writers the server does not hear
            self._scanned = time.monotonic()
            return True
        return False

    def next_due(self) -> datetime | None:
        """When to tick: the earliest instant a step is due, less the lead (None: never)."""
        due = self.instances.next_due()
        return due - timedelta(seconds=self.lead) if due is not None and self.lead else due

    def advance(self, until: datetime, *, stoppable: bool = False) -> int:
        """Take every step due at or before ``until``, each at its own instant.

        With ``stoppable``, a :meth:`halt` ends it after the round under way (the rest stays
        due). A pass's advance is not: its triggers come after every step due before them.
        """
        done = 0
        with self._lock:
            self._drain()  # (a server's prepared steps first)
            while True:
                due = self.instances.due(until, self.batch)
                if not due:
                    self._maybe_announce()  # (and what a dead process left: _recover)
                    return done
                batch = _Batch()
                for inst in due:
                    assert inst.due is not None  # noqa: S101 (selected by due_at)
                    self._walk(inst, inst.due, batch)
                if batch.sends and (go := self._send(batch, until)):
                    self._deliver(go, batch)
                with self.store.transaction():  # the last messages' marks, and the moves
                    batch.settle()
                    self.instances.write(list(batch.touched.values()), batch.history)
                done += len(due)
                again = any(
                    i.status == ACTIVE and i.due is not None and i.due <= until
                    for i in batch.touched.values()
                )
                self._maybe_announce()
                if len(due) < self.batch and not again:
                    return done  # nothing else can be due: spare the query
                if stoppable and self._halted.is_set():
                    return done

    def _take(self, as_of: datetime) -> None:
        """Take the steps due (a server with a lead: prepared ahead, see :meth:`_stream`)."""
        if self.lead:
            self._stream()
        else:
            self.advance(as_of, stoppable=True)

    def _drain(self) -> None:
        """Send and write what is prepared (before triggers move instances)."""
        if self._windows:
            self._stream(prepare=False)

    def _stream(self, *, prepare: bool = True) -> None:
        """A server's advance: steps prepared ahead, each message sent at its instant.

        In a loop until nothing is due within the lead (or a trigger was heard: what is
        prepared is sent first; or a second passed: what is prepared waits in memory for
        the next call, while the server's other timers run): a message whose instant came
        is composed, claimed and handed over; else the steps due within :attr:`lead` are
        prepared as a round (read, walked, decided: what :meth:`advance` does before its
        claims), a few queries at a time; else it sleeps until the next instant.
        A round's moves and history are written once the clock passed its last instant,
        so nothing is recorded before it happened. Consent is read again before a claim
        if a statement was recorded since the round was decided (:meth:`_recheck`). A
        trigger heard while prepared messages wait for their instant (at most the lead) is
        read after them, as one heard during a round of :meth:`advance` is.
        """
        windows, marks = self._windows, self._marks  # (marks: any transaction settles them)
        preparing: Generator[None, None, _Window | None] | None = None
        nothing = False  # the last preparation found nothing to prepare yet: sleep first
        loop = asyncio.new_event_loop()
        transport = self.transport()
        size = 2 * max(1, self.definition.email.smtp.pool_size)
        started = time.monotonic()
        try:
            moved = (self.clock.now(), started)  # the clock's last reading, and since when
            while True:
                now = self.clock.now()
                if now != moved[0]:
                    moved = (now, time.monotonic())
                elif time.monotonic() - moved[1] > self.lead + 1.0:
                    now = datetime.max.replace(tzinfo=UTC)  # a clock that stopped: finish
                sending = next((w for w in windows if w.ready), None)
                if sending is not None and sending.ready[0][1] <= now:
                    count = 0
                    while count < min(size, len(sending.ready)):
                        if sending.ready[count][1] > now:
                            break
                        count += 1
                    chunk, sending.ready = sending.ready[:count], sending.ready[count:]
                    self._send_ready(chunk, sending, loop, transport)
                    continue
                if windows and not windows[0].ready and windows[0].last <= now:
                    done = windows.pop(0)
                    with self.store.transaction():
                        done.batch.settle()
                        self.instances.write(list(done.batch.touched.values()),
                                             done.batch.history)  # fmt: skip
                    continue
                if preparing is not None:  # one step of it, then what came due meanwhile
                    try:
                        next(preparing)
                    except StopIteration as prepared:
                        preparing = None
                        if prepared.value is not None:
                            windows.append(prepared.value)
                        else:
                            nothing = True
                    continue
                late = time.monotonic() - started >= RESCAN
                if prepare and not nothing and not self._dirty and not late and len(windows) < 3:
                    preparing = self._prepare(now, windows, marks)
                    continue
                if not windows or (prepare and late and not self._dirty):
                    break
                wake = min(w.ready[0][1] if w.ready else w.last for w in windows)
                time.sleep(max(0.0, min((wake - now).total_seconds(), self.lead / 4)))
                nothing = False
        finally:
            try:
                loop.run_until_complete(transport.close())
            finally:
                loop.close()
        if marks:  # the last messages' marks: written before the loop yields
            with self.store.transaction():
                _Batch(marks=marks).settle()
        self._maybe_announce()

    def _prepare(
        self, now: datetime, windows: Sequence[_Window], marks: list[Callable[[], None]]
    ) -> Generator[None, None, _Window | None]:
        """Prepare the steps due within the lead that no window holds; None if none.

        In steps of a few queries: between them, the caller sends what came due. Not
        before the first of them is due within half the lead (unless nothing else is
        prepared): a round then prepares several.
        """
        busy: set[str] = set().union(*(w.ids for w in windows))
        lead = timedelta(seconds=self.lead)
        due = [i for i in self.instances.due(now + lead, self.batch + len(busy))
               if i.instance_id not in busy][: self.batch]  # fmt: skip
        if not due or (windows and min(i.due or now for i in due) > now + lead / 2):
            return None
        batch = _Batch(marks=marks, ahead=True)
        last = max(i.due or now for i in due)
        for inst in due:
            assert inst.due is not None  # noqa: S101 (selected by due_at)
            self._walk(inst, inst.due, batch)
        pending = [(g[0], g[1]) for w in windows for g in w.ready]
        go = (yield from self._sending(batch, now + lead, pending)) if batch.sends else []
        if go and not self._can_sign(go, batch):
            go = []  # held, as in advance
        go.sort(key=lambda g: g[1])  # (stable: by priority within an instant)
        return _Window(batch, go, last, {i.instance_id for i in due})

    def _send_ready(
        self,
        chunk: Sequence[_Go],
        window: _Window,
        loop: asyncio.AbstractEventLoop,
        transport: EmailTransport,
    ) -> None:
        """Compose, claim and hand over a prepared window's messages whose instant came.

        (Composed now, not when prepared: a round's rendering would keep the messages due
        meanwhile waiting; a few messages' is short.)
        """
        refused = self._recheck(chunk, window.batch)
        go = [g for g in chunk if g[0].instance_id not in refused]
        if go:
            other: dict[str, str] = {}
            ready = self._compose(go, window.batch, other)
            self._hand_over(ready, other, window.batch, loop, transport)

    def _consent_mark(self) -> tuple[Any, ...]:
        """Where the consent statements stand (one query).

        The newest recorded statement of each kind, then the newest identify event that
        may state consent and is not recorded yet (:func:`unread_statements_sql`; None
        when there is none). Other events leave it as it is: a server's steady traffic
        does not make each claim read consent again.
        """
        unread, params = unread_statements_sql(self.definition.consent)
        return tuple(self.store.fetchall(
            "SELECT (SELECT max(id) FROM consents), (SELECT max(id) FROM address_consents), "
            "(SELECT count(*) FROM suppressions), (SELECT max(occurred_at) FROM suppressions), "
            f"{unread}",  # noqa: S608 (a fixed subquery)
            params,
        )[0])  # fmt: skip

    def _recheck(self, chunk: Sequence[_Go], batch: _Batch) -> set[str]:
        """The instances of ``chunk`` whose message consent refuses now (they are skipped).

        The window was decided on the consent of its preparation; if a statement was
        recorded since, or an identify event that may state consent is not recorded yet
        (it is, first), consent is read again for these recipients, at their instant.
        """
        mark = self._consent_mark()
        if mark[-1] is not None:  # an identify call may have stated consent: record it
            sync_trait_consents(self.store, self.definition.consent)
            mark = self._consent_mark()
        if mark[:-1] == batch.consent[:-1]:  # (what was recorded stated nothing new)
            return set()
        ws = self.definition
        batch.consent = mark
        self.consent_reads += 1
        at = max(r[1] for r in chunk)
        pids = [r[0].profile_id for r in chunk]
        gates: dict[str, ConsentGate] = {}
        refused: set[str] = set()
        for inst, when, profile, _ in chunk:
            topic = self._topic(inst)
            if topic not in gates:
                gates[topic] = ConsentGate(
                    self.store, ws.consent, topic, at, ws.email.email_trait,
                    global_holdout=ws.measure.global_holdout_percent, profile_ids=pids,
                )  # fmt: skip
            reason = gates[topic].check(profile)
            if reason is not None:
                refused.add(inst.instance_id)
                self.report.skipped[reason] += 1
                self._move(inst, self._after(inst), when, batch, "skipped", reason)
        return refused

    # -- triggers ----------------------------------------------------------------------------

    def _follow_merges(self, as_of: datetime) -> None:
        """Move the active instances of profiles merged away to the profile that survives.

        The survivor takes the instance over at its step, due instant and history (as its
        next entry of that journey, so re-entry rules count it), as Braze and Customer.io
        keep one journey per person; the old instance exits with reason ``moved``. If the
        survivor is already in that journey itself, the merged-away instance exits (reason
        ``merged``): one person, one passage, no
        second message. A send step the old profile was already sent (or may have been)
        is passed over, never sent again under the new id.
        """
        rows = self.store.fetchall(
            "SELECT i.instance_id FROM journey_instances i JOIN profiles p "
            "ON p.profile_id = i.profile_id "
            "WHERE i.status = 'active' AND p.merged_into IS NOT NULL"
        )
        if not rows:
            return
        self._drain()  # what a server prepared goes first
        from segmint.intake.identity import merge_roots

        roots = merge_roots(self.store)
        gone = [i for i in self.instances.of_profiles(roots) if i.journey in self.journeys]
        if not gone:
            return
        at = min(as_of, self.clock.now())
        batch = _Batch()
        survivors = {roots[i.profile_id] for i in gone}
        busy = {(i.journey, i.profile_id) for i in self.instances.of_profiles(survivors)}
        for inst in sorted(gone, key=lambda i: (i.entered_at, i.instance_id)):
            into = roots[inst.profile_id]
            if (inst.journey, into) in busy:
                self._end(inst, "merged", at, batch)
                continue
            entry = (self.instances.entries(inst.journey, [into]).get(into, (0, at))[0]) + 1
            iid = instance_id(inst.journey, into, entry)
            moved = Instance(iid, inst.journey, into, entry, inst.step, ACTIVE, inst.due,
                             inst.step_since, inst.entered_at)  # fmt: skip
            if self._sent_under(inst):
                moved.step = self._after(inst)
                moved.step_since, moved.due = at, at
                if moved.step is None:
                    self._end(inst, "completed", at, batch)
                    continue
            self._end(inst, "moved", at, batch)  # to the survivor: see its merged_in row
            batch.touched[moved.instance_id] = moved
            batch.history.append(HistoryRow(moved.instance_id, inst.journey, None, "merged_in",
                                            inst.instance_id, at))  # fmt: skip
            busy.add((inst.journey, into))
        with self.store.transaction():
            self.instances.write(list(batch.touched.values()), batch.history)

    def _sent_under(self, inst: Instance) -> bool:
        """Whether the instance's current send step was sent (or may have been) already."""
        step = self.journeys[inst.journey].steps.get(inst.step or "")
        if step is None or step.send is None:
            return False
        key = send_key(ledger_campaign(inst.journey, inst.step or "", inst.entry), inst.profile_id)
        return bool(self.store.fetchall(
            "SELECT 1 FROM sends WHERE send_key = ? AND status IN ('sent', 'uncertain', "
            "'attempting')",
            [key],
        ))  # fmt: skip

    def _started(self, seq: int, change: int) -> dict[str, tuple[int, int]]:
        """Per journey, the (event seq, change id) it listens after.

        Recorded the first time a tick sees the journey: the positions the ticks before it
        had read (0 before any tick), so a journey added to a live workspace reacts to what
        happens from then on, and a new workspace's first run to everything stored.
        """
        out = dict(self._since)
        for name in self.journeys:
            if name in out:
                continue
            found = read_meta(self.store, STARTED + name)
            if found is None:
                with self.store.transaction():
                    write_meta(self.store, STARTED + name, f"{seq}:{change}")
                out[name] = (seq, change)
            else:
                left, _, right = found.partition(":")
                out[name] = (int(left), int(right or 0))
        return out

    def _triggers(
        self, since: datetime | None = None
    ) -> tuple[list[tuple[datetime, tuple[int, int], _Item]], dict[str, int]]:
        """The triggers recorded after the cursors (those before ``since`` are not read)."""
        if not self.journeys:
            return [], {}
        after = int(read_meta(self.store, CHANGES_CURSOR) or 0)
        seq = int(read_meta(self.store, EVENTS_CURSOR) or 0)
        self._since = self._started(seq, after)
        # the changes of the segments journeys start on; the others' are read past (most
        # changes a busy server records: none becomes an object here)
        last = self.store.fetchall("SELECT coalesce(max(id), 0) FROM membership_changes")
        newest = int(last[0][0])
        watched = self._watched
        changes = (
            read_changes(self.store, after_id=after, upto_id=newest, segments=watched)
            if watched and newest > after
            else []
        )
        cursors = {CHANGES_CURSOR: max(after, newest)}
        items: list[tuple[datetime, tuple[int, int], _Item]] = [
            (c.occurred_at, (0, c.id or 0), c) for c in changes
        ]
        params: list[Any] = [seq]
        names = sorted(self._listened)
        marks = ", ".join("?" for _ in names) or "NULL"
        where = f"AND (event IN ({marks})"
        params += names
        ruled = sorted(n for n, j in self.journeys.items() if j.rules)
        if self.rules is not None and ruled:
            # any event may change a rule, but only for people in a journey with rules
            where += (
                " OR profile_id IN (SELECT profile_id FROM journey_instances WHERE "
                f"status = 'active' AND journey IN ({', '.join('?' for _ in ruled)}))"
            )
            params += ruled
        where += ")"
        if since is not None:
            where += ' AND "timestamp" >= ?'
            params.append(utcnow_naive(since))
        rows = self.store.fetchall(
            f"SELECT {EVENT_COLUMNS} FROM events WHERE seq > ? {where} ORDER BY seq",
            params,
        )
        top = self.store.fetchall("SELECT coalesce(max(seq), 0) FROM events")[0][0]
        cursors[EVENTS_CURSOR] = max(seq, int(top))
        for row in rows:
            event = row_to_event(row)
            if event.profile_id:
                items.append((event.timestamp, (int(row[-1]), 0), event))
        items.sort(key=lambda item: item[0])
        return items, cursors

    def _pass(self, todo: Sequence[tuple[datetime, tuple[int, int], _Item]]) -> int:
        """Apply the first triggers of ``todo`` in one pass; return how many it took.

        One at a time, each trigger would come after every step due until its instant
        (:meth:`advance`) and be applied in its own transaction. A pass gives the same
        result with a query per table and one transaction for many: it takes triggers
        while they are of distinct profiles (what one applies, no other reads) and, after
        its first trigger's instant, while no step is due by the next trigger's instant
        (so the steps one at a time would take in between are none). The steps a pass
        makes due at its last instant are taken at that instant, as one at a time would.
        """
        first = todo[0][0]
        self.advance(first)
        horizon = self.instances.next_due()  # after the advance: later than ``first``
        taken: list[tuple[datetime, tuple[int, int], _Item]] = []
        pids: set[str] = set()
        for entry in todo:
            pid = entry[2].profile_id
            if pid is None or pid in pids:
                break
            if entry[0] > first and horizon is not None and horizon <= entry[0]:
                break
            pids.add(pid)
            taken.append(entry)
        lookup = PassLookup.read(self.instances, pids)
        batch = _Batch()
        last, soonest, count = first, horizon, 0
        with self.store.transaction():
            for at, position, item in taken:
                if at > first and soonest is not None and soonest <= at:
                    break  # a step this pass made due comes first
                due = self._ahead(self._apply(item, position, at, lookup, batch), at, batch)
                if due is not None and (soonest is None or due < soonest):
                    soonest = due
                last, count = at, count + 1
            self._write(batch)
        self.advance(last)
        return count

    def _write(self, batch: _Batch) -> None:
        """Write a pass's instances and history.

        A trigger read again after a restart finds its ``refused`` row and adds none.
        """
        refused = {(h.instance_id, h.at) for h in batch.history if h.outcome == "refused"}
        seen = self.instances.refused(refused) if refused else set()
        history = [h for h in batch.history
                   if h.outcome != "refused" or (h.instance_id, h.at) not in seen]  # fmt: skip
        self.instances.write(list(batch.touched.values()), history)

    def _apply(
        self,
        item: _Item,
        position: tuple[int, int],
        at: datetime,
        lookup: PassLookup,
        batch: _Batch,
    ) -> list[Instance]:
        """Apply one trigger; return the instances it looked at or started."""
        pid = item.profile_id
        assert pid is not None  # noqa: S101
        mine: list[Instance] = []
        active = [i for i in lookup.active_of(pid) if i.journey in self.journeys]
        for inst in active:
            mine.append(inst)
            journey = self.journeys[inst.journey]
            if isinstance(item, Event):
                if at >= inst.entered_at and journey.exits_on(item):
                    self._end(inst, "exit_condition", at, batch)
                    continue
                waiting = journey.wait_events.get(inst.step or "")
                since = inst.step_since or inst.entered_at
                if waiting is not None and at >= since and waiting(item):
                    self._move(inst, journey.next_of(inst.step or ""), at, batch, "event")
                    continue
            if self.rules is not None and journey.rules:
                step = journey.steps.get(inst.step or "")
                if step is not None and step.send is not None:
                    # a held message (quiet hours, a cap, a retry's backoff) keeps its due
                    # instant: only the exit conditions are looked at again now
                    if any(self.rules.holds(r, pid, at) for r in journey.exit_rules):
                        self._end(inst, "exit_condition", at, batch)
                    continue
                inst.due = min(inst.due or at, at)  # rules are looked at again now
                batch.touched[inst.instance_id] = inst
        for journey in self.journeys.values():
            seq, change = self._since[journey.name]
            new = position[0] > seq if isinstance(item, Event) else position[1] > change
            if new and self._triggered(journey, item):
                entered = self._enter(journey, pid, at, lookup, batch)
                if entered is not None:
                    mine.append(entered)
        return mine

    def _ahead(self, mine: list[Instance], at: datetime, batch: _Batch) -> datetime | None:
        """Walk a trigger's instances due by its instant, up to a send; the earliest due.

        The steps before a send (a wait starting, a branch, a split) depend on nothing
        a later trigger of another profile changes, so the pass takes them now and goes
        on past the instant; a send is decided with its round (the pass's last
        :meth:`advance`), which walks on from the send step and counts it there.
        """
        for inst in mine:
            if inst.status == ACTIVE and inst.due is not None and inst.due <= at:
                self._walk(inst, inst.due, batch)
        if batch.sends:
            self.report.steps -= len(batch.sends)
            batch.sends.clear()
        dues = [i.due for i in mine if i.status == ACTIVE and i.due is not None]
        return min(dues) if dues else None

    @staticmethod
    def _triggered(journey: CompiledJourney, item: Event | MembershipChange) -> bool:
        trigger = journey.definition.trigger
        if isinstance(item, Event):
            return journey.trigger_event is not None and journey.trigger_event(item)
        if trigger.segment_entry is not None:
            return item.change == "enter" and item.segment == trigger.segment_entry
        return item.change == "exit" and item.segment == trigger.segment_exit

    def _enter(
        self, journey: CompiledJourney, pid: str, at: datetime, lookup: PassLookup, batch: _Batch
    ) -> Instance | None:
        latest = lookup.entry(journey.name, pid)
        if latest is not None and latest[1] == at:
            return None  # this very trigger, seen before a restart
        reason = self._refusal(journey, pid, at, latest, lookup)
        entry = 1 if latest is None else latest[0] + 1
        iid = instance_id(journey.name, pid, entry)
        if reason is not None:
            self._refuse(journey.name, iid, reason, at, batch)
            return None
        inst = Instance(iid, journey.name, pid, entry, journey.first, ACTIVE, at, at, at)
        batch.touched[iid] = inst
        batch.history.append(HistoryRow(iid, journey.name, None, "entered", None, at))
        self.report.entered["entered"] += 1
        return inst

    @staticmethod
    def _refusal(
        journey: CompiledJourney,
        pid: str,
        at: datetime,
        latest: tuple[int, datetime] | None,
        lookup: PassLookup,
    ) -> str | None:
        """Why the profile may not enter now (re-entry policy, audience), or None."""
        definition = journey.definition
        if latest is not None:
            entry, entered = latest
            if definition.reentry_after is None:
                return "once"
            current = instance_id(journey.name, pid, entry)
            if any(i.instance_id == current for i in lookup.active_of(pid)):
                return "active"
            if at < entered + definition.reentry_after:
                return "reentry_period"
        if definition.audience is not None and not lookup.member(definition.audience, pid):
            return "audience"
        return None

    def _refuse(self, journey: str, iid: str, reason: str, at: datetime, batch: _Batch) -> None:
        """Count a refused entry durably: a ``refused`` history row (once per trigger).

        Its instance id is the entry the profile would have made; a trigger read again
        after a restart finds its row and is not counted twice (see :meth:`_write`).
        """
        if (iid, at) not in batch.refused:
            batch.refused.add((iid, at))
            batch.history.append(HistoryRow(iid, journey, None, "refused", reason, at))
        self.report.entered[f"refused:{reason}"] += 1

    # -- steps -------------------------------------------------------------------------------

    def _walk(self, inst: Instance, at: datetime, batch: _Batch) -> None:
        """Take the instance's steps at ``at`` until it must wait (or a message is due)."""
        batch.touched[inst.instance_id] = inst
        for _ in range(MAX_HOPS):
            journey = self.journeys.get(inst.journey)
            if journey is None or inst.step not in journey.steps:
                self._end(inst, "definition_changed", at, batch)
                return
            if self.rules is not None and any(
                self.rules.holds(rule, inst.profile_id, at) for rule in journey.exit_rules
            ):
                self._end(inst, "exit_condition", at, batch)
                return
            name = inst.step
            step = journey.steps[name]
            since = inst.step_since or at
            self.report.steps += 1
            if step.wait is not None:
                end = since + step.wait
                if at < end:
                    inst.due = end
                    return
                at = end
                self._move(inst, journey.next_of(name), at, batch, "waited")
            elif step.wait_until is not None:
                assert step.timeout is not None  # noqa: S101 (the model requires it)
                rule = step.wait_until.rule
                if (
                    rule is not None
                    and self.rules is not None
                    and self.rules.holds(rule, inst.profile_id, at)
                ):
                    self._move(inst, journey.next_of(name), at, batch, "condition_met")
                elif at >= since + step.timeout:
                    at = since + step.timeout
                    target = step.on_timeout or journey.after[name]
                    self._move(inst, target, at, batch, "timeout")
                else:
                    inst.due = since + step.timeout
                    return
            elif step.branch is not None:
                target, label = step.default or journey.after[name], "default"
                for index, route in enumerate(step.branch):
                    if self._route_matches(route.rule, route.segment, inst.profile_id, at):
                        target, label = route.next, f"route{index + 1}"
                        break
                self._move(inst, target, at, batch, "branch", label)
            elif step.split is not None:
                bucket, edge = journey.split_bucket(inst.profile_id), 0.0
                chosen = step.split[-1]
                for route in step.split:
                    edge += route.percent or 0
                    if bucket < edge:
                        chosen = route
                        break
                self._move(inst, chosen.next, at, batch, "split", chosen.next or "end")
            elif step.exit is not None:
                self._end(inst, step.exit, at, batch)
                return
            else:  # send: decided together with the round's other messages
                batch.sends.append((inst, at))
                return
            if inst.status == DONE:
                return
        self._end(inst, "too_many_steps", at, batch)

    def _route_matches(self, rule: str | None, segment: str | None, pid: str, at: datetime) -> bool:
        if segment is not None:
            rows = self.store.fetchall(
                "SELECT 1 FROM memberships WHERE segment = ? AND profile_id = ?", [segment, pid]
            )
            return bool(rows)
        return rule is not None and self.rules is not None and self.rules.holds(rule, pid, at)

    def _move(
        self,
        inst: Instance,
        target: str | None,
        at: datetime,
        batch: _Batch,
        outcome: str,
        reason: str | None = None,
    ) -> None:
        batch.history.append(HistoryRow(inst.instance_id, inst.journey, inst.step, outcome,
                                        reason, at))  # fmt: skip
        batch.touched[inst.instance_id] = inst
        if target is None:
            self._end(inst, "completed", at, batch)
            return
        inst.step, inst.step_since, inst.due = target, at, at

    def _end(self, inst: Instance, reason: str, at: datetime, batch: _Batch) -> None:
        batch.history.append(HistoryRow(inst.instance_id, inst.journey, inst.step, "exited",
                                        reason, at))  # fmt: skip
        inst.status, inst.due, inst.exit_reason = DONE, None, reason
        batch.touched[inst.instance_id] = inst
        self.report.exited[reason] += 1

    # -- sending -----------------------------------------------------------------------------

    def _send(self, batch: _Batch, until: datetime) -> list[_Go]:
        """Decide the round's messages; return those to send (by instant and priority)."""
        return _finish(self._sending(batch, until))

    def _sending(
        self, batch: _Batch, until: datetime, pending: Sequence[tuple[Instance, datetime]] = ()
    ) -> Generator[None, None, list[_Go]]:
        """:meth:`_send` in steps of a few queries (a server sends what is due between).

        ``pending``: messages decided before and not sent yet (they count toward caps).
        """
        self._resume(batch)
        if not batch.sends:
            return []
        yield
        return (yield from self._deciding(batch, until, pending))

    def _resume(self, batch: _Batch) -> None:
        """Move on the instances whose message a previous run already sent (or may have)."""
        keys = {
            send_key(ledger_campaign(i.journey, i.step or "", i.entry), i.profile_id): (i, at)
            for i, at in batch.sends
        }
        found: dict[str, str] = dict(fetch_in(
            self.store, "SELECT send_key, status FROM sends WHERE send_key IN ({values})",
            sorted(keys),
        ))  # fmt: skip
        batch.fresh = set(keys) - set(found)  # claimed without a look (this engine's rows)
        done = {k: s for k, s in found.items() if s in FINAL}
        if not done:
            return
        for key, status in done.items():
            inst, at = keys[key]
            outcome = "sent" if status == "sent" else "uncertain"
            self.report.resumed[outcome] += 1
            self._move(inst, self._after(inst), at, batch, outcome, "resumed")
        batch.sends = [(i, at) for k, (i, at) in keys.items() if k not in done]

    def _deciding(
        self, batch: _Batch, until: datetime, pending: Sequence[tuple[Instance, datetime]]
    ) -> Generator[None, None, list[_Go]]:
        ws = self.definition
        pids = sorted({inst.profile_id for inst, _ in batch.sends})
        profiles = _load_profiles(self.workspace, pids)
        yield
        sync_trait_consents(self.store, ws.consent)
        if batch.ahead:  # (read before consent: a statement recorded meanwhile changes it)
            batch.consent = self._consent_mark()
        yield
        topics = {self.journeys[i.journey].topic(self.journeys[i.journey].steps[i.step or ""])
                  for i, _ in batch.sends}  # fmt: skip
        gates = {t: ConsentGate(self.store, ws.consent, t, until, ws.email.email_trait,
                             global_holdout=ws.measure.global_holdout_percent,
                             profile_ids=pids)
                 for t in sorted(topics)}  # fmt: skip
        yield
        earliest = min(at for _, at in batch.sends)
        history = ledger_history(self.store, pids, earliest - longest_window(ws.delivery))
        for inst, at in pending:
            history.add(inst.profile_id, at, self._topic(inst))
        optimal = {
            self.journeys[i.journey].segment
            for i, _ in batch.sends
            if self.journeys[i.journey].steps[i.step or ""].send_time == "optimal"
        }
        send_times = (
            SendTimes.from_store(
                self.store,
                until,
                ws.delivery.send_time_history,
                ws.delivery.send_time_prior,
                segments=sorted(s for s in optimal if s is not None),
            )  # fmt: skip
            if optimal
            else None
        )
        policy = DeliveryPolicy(
            ws.delivery, gates, history, timezone_trait=ws.email.timezone_trait,
            default_zone=ws.timezone, send_times=send_times,
        )  # fmt: skip
        messages: dict[int, tuple[Instance, datetime]] = {}
        queue: list[Message] = []
        for inst, at in batch.sends:
            journey = self.journeys[inst.journey]
            step = journey.steps[inst.step or ""]
            profile = profiles.get(inst.profile_id) or Profile(inst.profile_id)
            message = Message(
                profile, journey.topic(step), at, journey.definition.priority,
                first_due=inst.step_since, send_time=step.send_time,
                when_capped=step.when_capped or journey.definition.when_capped,
                segment=journey.segment,
            )  # fmt: skip
            messages[id(message)] = (inst, at)
            queue.append(message)
        arms = self._arms(batch.sends)
        go: list[_Go] = []
        now = self.clock.now()
        for message in by_priority(queue):
            inst, at = messages[id(message)]
            arm = arms.get(inst.instance_id)
            late = self.journeys[inst.journey].definition.late_after
            decision = (
                Decision("skip", at, "late")
                if late is not None and now - at > late
                else self._arm_decision(inst, at, arm, assigned=inst.instance_id in arms)
                or policy.decide(message)
            )
            if decision.action == "send":
                go.append((inst, at, message.profile, arm.name if arm else None))
            elif decision.action == "delay":
                inst.due = decision.at
                self.report.delayed[decision.reason or ""] += 1
                batch.history.append(HistoryRow(inst.instance_id, inst.journey, inst.step,
                                                "delayed", decision.reason, at))  # fmt: skip
            else:
                self.report.skipped[decision.reason or ""] += 1
                self._move(inst, self._after(inst), at, batch, "skipped", decision.reason)
        return go

    def _topic(self, inst: Instance) -> str:
        journey = self.journeys[inst.journey]
        return journey.topic(journey.steps[inst.step or ""])

    def _arms(self, sends: Sequence[tuple[Instance, datetime]]) -> dict[str, VariantDef | None]:
        """The experiment arm of each instance whose send step has arms.

        Assigned now, recorded and sticky; the recorded winner once the experiment has one.
        None for a profile recorded in an arm no longer among the step's variants (renamed
        or removed since): which message it stood for, or whether it was a holdout, is gone.
        """
        from segmint.config.measure import experiments_of
        from segmint.measure.assign import assign
        from segmint.measure.experiments import decide_winner

        groups: dict[str, list[tuple[Instance, datetime]]] = {}
        for inst, at in sends:
            step = self.journeys[inst.journey].steps[inst.step or ""]
            if any(isinstance(v, VariantDef) for v in step.variants):
                groups.setdefault(f"{inst.journey}.{inst.step}", []).append((inst, at))
        if not groups:
            return {}
        known = experiments_of(self.definition)
        out: dict[str, VariantDef | None] = {}
        for name, members in groups.items():
            exp = known[name][0]
            first = min(at for _, at in members)
            winner = decide_winner(self.store, self.definition, name, first)
            chosen = assign(self.store, name, exp.variants, [i.profile_id for i, _ in members],
                            first, winner=winner)  # fmt: skip
            by_name = {v.name: v for v in exp.variants}
            for inst, _ in members:
                out[inst.instance_id] = by_name.get(chosen[inst.profile_id])
        return out

    @staticmethod
    def _arm_decision(
        inst: Instance, at: datetime, arm: VariantDef | None, *, assigned: bool
    ) -> Decision | None:
        """A holdout arm skips the message; a send-time arm waits for its delay.

        A profile ``assigned`` to an arm no longer defined is skipped (``arm_removed``): it
        may have been the holdout, whose members must not get the message.
        """
        if arm is None:
            return Decision("skip", at, "arm_removed") if assigned else None
        if arm.holdout:
            return Decision("skip", at, "holdout")
        if arm.delay is not None:
            since = inst.step_since or at
            if at < since + arm.delay:
                return Decision("delay", since + arm.delay, "variant_delay")
        return None

    def _after(self, inst: Instance) -> str | None:
        return self.journeys[inst.journey].next_of(inst.step or "")

    def _deliver(
        self, go: list[tuple[Instance, datetime, Profile, str | None]], batch: _Batch
    ) -> None:
        """Claim, send and mark the messages, a few at a time.

        At most ``2 × pool_size`` rows are claimed and not yet marked at any moment: all a
        kill can leave ``uncertain``.
        """
        if not self._can_sign(go, batch):
            return
        size = 2 * max(1, self.definition.email.smtp.pool_size)
        # one event loop and one transport (its pooled connections) for the whole round
        loop = asyncio.new_event_loop()
        transport = self.transport()
        try:
            for chunk in batched(go, size):
                self._deliver_chunk(chunk, batch, loop, transport)
        finally:
            try:
                loop.run_until_complete(transport.close())
            finally:
                loop.close()

    def _can_sign(self, go: Sequence[_Go], batch: _Batch) -> bool:
        """Whether links can be signed; if not, hold the messages (counted, not lost).

        Without the secret no email can be composed: each instance stays on its send step,
        due again after :data:`NOT_CONFIGURED_RETRY`, with the reason ``not_configured`` in
        its history, while waits, exits and entries go on. The server says why once a
        retry interval, not once a message.
        """
        if self._signer is not None:
            return True
        try:
            self._signer = LinkSigner.from_email(self.definition.email)
        except CampaignError as exc:
            now = self.clock.now()
            if self._unsigned_said is None or now - self._unsigned_said >= NOT_CONFIGURED_RETRY:
                self._unsigned_said = now
                log.warning("%d journey message(s) held: %s", len(go), exc)
            for inst, at, _, _ in go:
                inst.due = max(now, at) + NOT_CONFIGURED_RETRY
                self.report.delayed["not_configured"] += 1
                batch.history.append(HistoryRow(inst.instance_id, inst.journey, inst.step,
                                                "delayed", "not_configured", at))  # fmt: skip
            return False
        return True

    def _deliver_chunk(
        self,
        go: Sequence[_Go],
        batch: _Batch,
        loop: asyncio.AbstractEventLoop,
        transport: EmailTransport,
    ) -> None:
        other: dict[str, str] = {}  # send key → the template, when not the step's own
        ready = self._compose(go, batch, other)
        self._hand_over(ready, other, batch, loop, transport)

    def _compose(self, go: Sequence[_Go], batch: _Batch, other: dict[str, str]) -> list[_Ready]:
        """Build the messages (a render error fails its step); note other templates."""
        ws = self.definition
        ready: list[_Ready] = []
        for inst, at, profile, arm in go:
            journey = self.journeys[inst.journey]
            name = inst.step or ""
            template = journey.template(journey.steps[name], inst.profile_id)
            campaign = journey.campaign(name, template)
            ledger = SendLedger(
                self.store, ledger_campaign(inst.journey, name, inst.entry), FixedClock(at),
                topic=campaign.topic, priority=campaign.priority,
            )  # fmt: skip
            address = address_of(profile, ws.email.email_trait) or ""
            message_id = message_id_for(send_key(ledger.campaign, inst.profile_id), campaign.sender)
            try:
                composer = self._composer(inst.journey, name, template, campaign)
                data = composer(profile, to=address, message_id=message_id, variant=arm,
                                campaign=ledger.campaign)  # fmt: skip
                if (sent_as := composer.template_of(arm)) != journey.steps[name].send:
                    other[send_key(ledger.campaign, inst.profile_id)] = sent_as
            except TemplateRenderError as exc:
                self.report.failed[f"render_error:{exc.reason}"] += 1
                self._move(inst, self._after(inst), at, batch, "failed",
                           f"render_error:{exc.reason}")  # fmt: skip
                continue
            sender = envelope_address(campaign.sender)
            ready.append((inst, at, data, address, sender, ledger, message_id))
        return ready

    def _hand_over(
        self,
        ready: Sequence[_Ready],
        other: dict[str, str],
        batch: _Batch,
        loop: asyncio.AbstractEventLoop,
        transport: EmailTransport,
    ) -> None:
        """Claim the messages (committed), send them, and leave their marks to ``batch``."""
        todo = []
        with self.store.transaction():  # the claims are committed before any SMTP
            batch.settle()  # (with the previous chunk's marks)
            rows = [(r[5].campaign, r[0].profile_id, r[5].topic, r[5].priority, r[3], r[6])
                    for r in ready]  # fmt: skip
            new = all(send_key(r[0], r[1]) in batch.fresh for r in rows)
            granted = claim_many(self.store, rows, self.clock.now(), new=new)
            for item in ready:
                if send_key(item[5].campaign, item[0].profile_id) in granted:
                    todo.append(item)
                    continue
                # sent, or uncertain (a killed run's claim, see _recover): never again
                self.report.resumed["uncertain"] += 1
                self._move(item[0], self._after(item[0]), item[1], batch, "uncertain", "resumed")
            record_templates(self.store, {k: t for k, t in other.items() if k in granted})
        if not todo:
            return
        messages = [(d, s, a) for _, _, d, a, s, _, _ in todo]
        results = loop.run_until_complete(self._transmit(transport, messages))
        batch.marks.append(lambda: self._mark(todo, results, batch))

    def _mark(
        self,
        todo: Sequence[tuple[Instance, datetime, bytes, str, str, SendLedger, str]],
        results: Sequence[DeliveryError | None],
        batch: _Batch,
    ) -> None:
        """Mark what the server accepted ``sent``, fail the rest; move the instances."""
        accepted: list[tuple[str, datetime]] = []
        for (inst, at, _, address, _, ledger, _), error in zip(todo, results, strict=True):
            if error is None:
                accepted.append((send_key(ledger.campaign, inst.profile_id), at))
                self._unannounced.add(ledger.campaign)
                self.report.sent["sent"] += 1
                self._move(inst, self._after(inst), at, batch, "sent")
            else:
                self._failed(inst, at, address, ledger, error, batch)
        sent_many_at(self.store, accepted)  # sent at each step's instant, in one statement

    def _failed(
        self,
        inst: Instance,
        at: datetime,
        address: str,
        ledger: SendLedger,
        error: DeliveryError,
        batch: _Batch,
    ) -> None:
        reason = error.reason if error.code is None else f"{error.reason}:{error.code}"
        self.report.failed[reason] += 1
        if isinstance(error, HardBounce):
            ledger.bounced(Bounce(inst.profile_id, address, reason, error.code, at))
            self._unannounced.add(ledger.campaign)
            self._move(inst, self._after(inst), at, batch, "failed", reason)
            return
        ledger.failed(inst.profile_id, reason)
        attempts = self._attempts(ledger, inst.profile_id)
        if self.retry.retryable(error, attempts):
            inst.due = max(self.clock.now(), at) + self.retry.backoff(attempts)
            batch.history.append(HistoryRow(inst.instance_id, inst.journey, inst.step,
                                            "retry", reason, at))  # fmt: skip
            return
        self._move(inst, self._after(inst), at, batch, "failed", reason)

    def _attempts(self, ledger: SendLedger, pid: str) -> int:
        rows = self.store.fetchall(
            "SELECT attempts FROM sends WHERE send_key = ?", [send_key(ledger.campaign, pid)]
        )
        return int(rows[0][0]) if rows else 1

    async def _transmit(
        self, transport: EmailTransport, messages: Sequence[tuple[bytes, str, str]]
    ) -> list[DeliveryError | None]:
        limit = asyncio.Semaphore(max(1, self.definition.email.smtp.pool_size))

        async def one(data: bytes, sender: str, address: str) -> DeliveryError | None:
            async with limit:
                try:
                    await transport.send(data, sender, [address])
                except DeliveryError as exc:
                    return exc
                return None

        return await asyncio.gather(*(one(*m) for m in messages))

    def _composer(
        self, journey: str, step: str, template: str, campaign: CampaignDef
    ) -> TemplateComposer:
        key = (journey, step, template)
        if key not in self._composers:
            if self._signer is None:
                self._signer = LinkSigner.from_email(self.definition.email)
            self._composers[key] = TemplateComposer(
                self.workspace, f"journey:{journey}:{step}", campaign, self._signer, self.clock
            )
        return self._composers[key]

    def _recover(self) -> None:
        """Once per engine: rows a killed process left ``attempting`` become ``uncertain``."""
        if self._recovered:
            return
        rows = self.store.fetchall(
            "SELECT DISTINCT campaign FROM sends WHERE status = 'attempting' "
            "AND campaign LIKE 'journey:%'"
        )
        for (campaign,) in rows:
            SendLedger(self.store, campaign, self.clock).recover()
        if self.announce is not None:  # what a dead process sent but did not announce
            self._unannounced |= {r[0] for r in self.store.fetchall(
                "SELECT DISTINCT campaign FROM sends WHERE campaign LIKE 'journey:%' AND "
                "((status = 'sent' AND NOT announced) OR (bounced_at IS NOT NULL "
                "AND NOT coalesce(bounce_announced, FALSE)))"
            )}  # fmt: skip
        self._recovered = True

    def _maybe_announce(self) -> None:
        """Announce now, or, in a listening server, at most every :data:`ANNOUNCE_EVERY` s.

        Announcing submits events through intake (and real-time membership reads them):
        a server that did it after every round would keep the next due step waiting, so a
        listening engine announces at most every :data:`ANNOUNCE_EVERY` s, and not while a
        step is due within :data:`ANNOUNCE_GAP` (unless :data:`ANNOUNCE_LATEST` s passed).
        The ledger remembers what is unannounced, so waiting loses nothing.
        """
        if not self._unannounced:
            return
        if self._listening:
            waited = time.monotonic() - self._announced
            if waited < ANNOUNCE_EVERY:
                return
            due = self.instances.next_due()
            if (
                waited < ANNOUNCE_LATEST
                and due is not None
                and due <= self.clock.now() + ANNOUNCE_GAP
            ):
                return  # a step is due about now: its message first
        self._announced = time.monotonic()
        self._announce()

    def _announce(self) -> None:
        """Announce the ledger's new deliveries and bounces of journey steps."""
        campaigns, self._unannounced = self._unannounced, set()
        if self.announce is None:
            return
        for campaign in sorted(campaigns):
            _, journey, step, _ = campaign.split(":", 3)
            compiled = self.journeys.get(journey)
            if compiled is None or step not in compiled.steps:
                continue  # a removed journey or step: its rows stay, unannounced
            definition = compiled.campaign(step, compiled.steps[step].send or "")
            ledger = SendLedger(self.store, campaign, self.clock)
            announce_ledger(self.store, ledger, definition, self.announce)


def _finish(steps: Generator[None, None, _T]) -> _T:
    """Run a generator of steps to its end; return its value."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]


def _load_profiles(workspace: Workspace, ids: Iterable[str]) -> dict[str, Profile]:
    """Many profiles' traits and segments, a query per table per chunk."""
    store = workspace.store
    types = {n: t.type for n, t in workspace.definition.traits.items() if t.type}
    ids = sorted(set(ids))
    traits: dict[str, Any] = {}
    segments: dict[str, set[str]] = {pid: set() for pid in ids}
    for pid, raw in fetch_in(
        store, 'SELECT profile_id, "values" FROM trait_values WHERE profile_id IN ({values})', ids
    ):
        traits[pid] = raw
    for pid, seg in fetch_in(
        store, "SELECT profile_id, segment FROM memberships WHERE profile_id IN ({values})", ids
    ):
        segments[pid].add(seg)
    return {
        # PII sealed at rest is opened here, in memory, for templates and the address
        pid: Profile(
            pid, unseal(store, decode_traits(traits.get(pid), types)), frozenset(segments[pid])
        )  # fmt: skip
        for pid in ids
    }
