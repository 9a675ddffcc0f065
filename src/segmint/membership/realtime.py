"""The real-time engine: each stored event updates its profile's memberships at once.

For a batch of events (one intake commit) at instant ``as_of`` the engine:

1. fires every scheduled time transition due at or before ``as_of``, each at its own
   instant, in order (so a profile leaves ``high_value`` exactly 30 days after its purchase);
2. handles profile merges: the merged-away profile leaves its segments, the survivor is
   rebuilt from its events;
3. folds each event into its profile's trait state, compares the new trait values with the
   previous ones, and re-decides only the units whose rules read a changed trait (plus the
   time-dependent ones and, through the structure, the units reading a changed segment);
4. schedules the profile's next possible change: the earliest of its time-dependent rules'
   next transitions and its windowed traits' next expiry;
5. writes memberships, changes, schedule and webhook outbox rows in one transaction, then
   hands the changes to the hub's subscribers. Trait state and values are written in the
   same transaction, or every ``checkpoint_every`` seconds (a server), so a busy profile's
   state is written once per interval, not once per event. Trait state is derived from the
   stored events: an engine that stopped without saving marks it (``meta``), and the next
   engine drops the stored state, which is then rebuilt from the events profile by profile.

Segment definitions may change between runs. :meth:`RealtimeEngine.catch_up` (which
``serve`` calls on start) compares them with those the stored memberships were decided
under: the members of removed segments exit (cause ``definition_removed``), and when a
segment was added or changed (its rule, group, priority, default or parent), or the traits
changed, every membership is recomputed in batch at the start instant. A profile the engine
evaluates before that also leaves the segments no longer defined.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from segmint.clock import Clock
from segmint.events import Event
from segmint.intake.identity import merge_chains, merge_roots
from segmint.membership.batch import refresh
from segmint.membership.changes import (
    ChangeKind,
    MembershipChange,
    diff_members,
    last_rules,
    read_changes,
    removed_cause,
    retire_removed,
    write_changes,
)
from segmint.membership.compiled import (
    CompiledSegments,
    definition_drift,
    record_definitions,
    stored_definitions,
)
from segmint.membership.feed import ChangeFeed
from segmint.membership.hub import ChangeHub
from segmint.membership.live import (
    Live,
    erased,
    erasure_mark,
    forget_many,
    load_many,
    lock_profiles,
    record_failures,
    save_schedule,
    save_states,
)
from segmint.membership.vector import MINIMUM, BatchDecider, batch_decider
from segmint.membership.webhooks import WebhookOutbox
from segmint.store import Store, from_store_time, read_meta, write_meta
from segmint.traits import (
    EVENT_COLUMNS,
    SEQ_KEY,
    UNSAVED_KEY,
    CommitPosition,
    EventBound,
    adopt_restored,
    drop_all_states,
    read_position,
    row_to_event,
    write_position,
)

_US = timedelta(microseconds=1)
CATCH_UP_CHUNK = 5000
log = logging.getLogger(__name__)


class MergeLike(Protocol):
    """A profile merge as intake reports it (:class:`segmint.intake.identity.Merge`)."""

    @property
    def from_profile(self) -> str:
        """The profile merged away."""
        ...

    @property
    def into_profile(self) -> str:
        """The surviving profile."""
        ...


@dataclass
class _Step:
    """One profile to decide at one instant, and why (the cause's base)."""

    pid: str
    live: Live
    at: datetime
    base: Mapping[str, Any]
    message_ids: list[str | None]
    timers_ready: bool = False
    """The profile's leaf transitions were just computed an instant before ``at``."""
    settled: bool = False
    """No event was applied to the profile since its values were last read (time moved)."""


@dataclass
class _Pending:
    """What one engine step will write in its transaction."""

    changes: list[MembershipChange] = field(default_factory=list)
    touched: dict[str, Live] = field(default_factory=dict)
    removed: set[str] = field(default_factory=set)
    base_seq: int | None = None
    failed: list[tuple[str, str | None, str]] = field(default_factory=list)

    def profiles(self) -> set[str]:
        """Every profile the step writes rows for."""
        found = set(self.touched) | self.removed | {f[0] for f in self.failed}
        found.update(c.profile_id for c in self.changes)
        return found

    def drop(self, gone: Collection[str]) -> None:
        """Write nothing for the profiles ``gone`` (erased meanwhile)."""
        for pid in gone:
            self.touched.pop(pid, None)
        self.changes = [c for c in self.changes if c.profile_id not in gone]
        self.failed = [f for f in self.failed if f[0] not in gone]


class RealtimeEngine:
    """Keeps memberships current, event by event and instant by instant.

    Args:
        store: The store.
        compiled: The workspace's compiled segments.
        clock: The clock read when the engine is used as an intake listener.
        hub: Where committed changes are published (a new hub if omitted).
        outbox: The webhook outbox, filled in the same transaction as the changes.
        checkpoint_every: Seconds between writes of trait state and values (0: with every
            batch); :meth:`checkpoint` is then called by a timer (serve's, every second),
            and a batch writes them itself when twice the interval has passed.
            Memberships, changes and the schedule are always written with each batch; the
            events are the source of truth for trait state, so state an engine did not save
            before it stopped is rebuilt from them when the next engine starts.
        checkpoint_rows: Write trait state at the latest when this many profiles are unsaved.
        owns: The profiles whose time transitions this engine fires (all when omitted). A
            partitioned worker (:mod:`segmint.scale.worker`) passes its partitions' profiles:
            another worker fires the rest.
        batch_minimum: Decide a step's profiles in one vectorised pass
            (:mod:`segmint.membership.vector`) from this many on; fewer are decided by the
            rules' Python closures, which answer one profile sooner.
    """

    def __init__(
        self,
        store: Store,
        compiled: CompiledSegments,
        clock: Clock,
        *,
        hub: ChangeHub | None = None,
        outbox: WebhookOutbox | None = None,
        checkpoint_every: float = 0.0,
        checkpoint_rows: int = 50_000,
        owns: Callable[[str], bool] | None = None,
        batch_minimum: int = MINIMUM,
        recover: bool = True,
    ) -> None:
        self.store = store
        self._owns = owns
        self.compiled = compiled
        self.clock = clock
        self.hub = hub or ChangeHub()
        self.outbox = outbox
        self._live: dict[str, Live] = {}
        self._heap: list[tuple[datetime, str]] | None = None
        self._lock = threading.RLock()
        self._all_units = frozenset(u.index for u in compiled.plan.units)
        self.batch_minimum = batch_minimum
        self._decider: BatchDecider | None = None  # built at the first step big enough
        self._decider_built = False
        self.checkpoint_every = checkpoint_every
        self.checkpoint_rows = checkpoint_rows
        self._unsaved: dict[str, Live] = {}
        self._saved_at = time.monotonic()
        self._marked = False
        self.stats: Counter[str] = Counter()
        """Evaluations by cause ("event", "time", "merge"), profile loads ("loads"), profiles
        set aside ("failed") and profiles forgotten because another process erased them
        ("erased")."""
        self._seq: int | None = None  # the latest event sequence number processed
        self._until: EventBound | None = None  # the events rebuilds fold (None: all)
        self._pending: frozenset[str] = frozenset()  # stored, to be applied: never folded
        self._postgres = store.dialect == "postgres"
        self._applied: CommitPosition | None = None  # PostgreSQL: what the next save reflects
        self._applied_set = False  # events were applied since the engine started
        self._holding = False  # a catch-up on PostgreSQL saves once, when it is done
        if recover:  # (a server on PostgreSQL that may not lead recovers in catch_up)
            self._recover()
        self._seq_known = read_meta(self.store, SEQ_KEY) is not None
        self._rules_removed: dict[str, str | None] = {}
        self._catching_up = False  # processing stored events (see ``catch_up``)
        # DuckDB: the erasures counted when the engine last checked its profiles
        self._erasures = 0 if self._postgres else erasure_mark(store)

    def __call__(self, events: Sequence[Event], merges: Sequence[Any] = ()) -> None:
        """Act as an intake listener: process the committed batch at the clock's now."""
        self.process(events, merges, self.clock.now())

    def process(
        self,
        events: Sequence[Event],
        merges: Sequence[MergeLike] = (),
        as_of: datetime | None = None,
        *,
        delivered: EventBound | None = None,
        unapplied: Collection[str] = (),
    ) -> list[MembershipChange]:
        """Apply stored events (and merges) at ``as_of``; return the committed changes.

        A profile the engine has not loaded and that has no stored trait state is rebuilt
        from its stored events: those it applied before, never one it has yet to apply.
        By default these are the events up to this batch's highest ``seq`` (right where
        transactions commit in ``seq`` order, and catching up by ``seq``). A caller
        reading other writers' commits in commit order passes its reader's position as
        ``delivered`` (:meth:`~segmint.membership.feed.ChangeFeed.delivered`), and in
        ``unapplied`` the message ids of stored events within it that it applies later.
        """
        at = as_of or self.clock.now()
        seqs = [e.seq for e in events if e.seq is not None]
        with self._lock:
            top = max(seqs) if seqs else None
            if delivered is not None:
                self._until, self._pending = delivered, frozenset(unapplied)
            else:
                whole = len(seqs) == len(events)
                self._until = EventBound.upto(top) if top is not None and whole else None
                self._pending = frozenset(unapplied)
            if top is not None and (self._seq is None or top > self._seq):
                self._seq = top
            self._note_applied(delivered, events, unapplied)
            pending = _Pending()
            if seqs and not self._seq_known:  # so that a crash from here on is caught up
                pending.base_seq = min(seqs) - 1
            self._fire(at, pending, events)
            roots = self._merge_all(merges, at, pending, {e.message_id for e in events})
            grouped: dict[str, list[Event]] = {}
            for event in events:
                grouped.setdefault(roots.get(event.profile_id, event.profile_id), []).append(event)
            self._ensure(list(grouped), {e.message_id for e in events})
            steps: list[_Step] = []
            for pid, batch in grouped.items():
                live = self._live[pid]
                mids: list[str | None] = [e.message_id for e in batch]
                try:
                    if live.fresh:  # the values before these events, for the causes
                        live.values = self.compiled.traits.values(live.state, at)
                    live.expiry_from = None  # the windows' next expiry moves with events
                    for event in batch:
                        self.compiled.traits.apply(live.state, event)
                except Exception as exc:  # one profile's failure must not stop the others
                    self._isolate(pid, mids, exc, pending)
                    continue
                cause = {"source": "event", "message_id": batch[-1].message_id}
                steps.append(_Step(pid, live, at, cause, mids))
            self._decide(steps, pending)
            return self._flush(pending, at)

    def _note_applied(
        self, delivered: EventBound | None, events: Sequence[Event], unapplied: Collection[str]
    ) -> None:
        """PostgreSQL: the commit position the state reflects once this batch is applied.

        That is the feed's position ``delivered``, less the stored events still to apply
        (``unapplied``, but for this batch's). Without a position (events not read from a
        change feed) none is saved and ``seq`` decides what a catch-up applies.
        """
        if not self._postgres:
            return
        position = delivered.position if delivered is not None else None
        if position is not None:
            waiting = set(unapplied).difference(e.message_id for e in events)
            position = replace(position, unapplied=tuple(sorted(waiting)))
        self._applied, self._applied_set = position, True

    def advance(self, as_of: datetime) -> list[MembershipChange]:
        """Fire every time transition due at or before ``as_of``; return the changes."""
        with self._lock:
            pending = _Pending()
            self._fire(as_of, pending)
            return self._flush(pending, as_of)

    def next_due(self) -> datetime | None:
        """The earliest scheduled time transition, or None."""
        with self._lock:
            heap = self._schedule()
            while heap and self._stale(heap[0]):
                heapq.heappop(heap)
            return heap[0][0] if heap else None

    def segments_of(self, profile_id: str) -> frozenset[str] | None:
        """The live memberships of a profile (None if the engine never saw it)."""
        with self._lock:
            self._ensure([profile_id], set())
            live = self._live[profile_id]
            return None if live.state.empty else live.members

    def invalidate(self) -> None:
        """Forget cached state (after a batch refresh rewrote memberships)."""
        with self._lock:
            self.checkpoint()
            self._live.clear()
            self._heap = None

    def _ensure(self, ids: Sequence[str], exclude: set[str], rebuild: Sequence[str] = ()) -> None:
        missing = [pid for pid in ids if pid not in self._live or pid in rebuild]
        if missing:
            skip = exclude | self._pending if self._pending else exclude
            loaded = load_many(self.store, self.compiled, missing, skip, rebuild, self._until)
            self._live.update(loaded)
            self.stats["loads"] += 1

    def _evaluate(
        self, pid: str, live: Live, at: datetime, base: Mapping[str, Any], pending: _Pending
    ) -> None:
        self._decide([_Step(pid, live, at, base, [])], pending, isolate=False)

    def _decide(self, steps: list[_Step], pending: _Pending, *, isolate: bool = True) -> None:
        """Decide every step's profile at its instant: values, memberships, changes, schedule.

        The memberships of a step with many profiles are decided in one vectorised pass
        (:class:`~segmint.membership.vector.BatchDecider`, every unit), those of a small one
        by the closures (only the units reading a changed trait, the time-dependent ones
        and those reading a changed segment). Both give the same answer: a unit not
        re-decided reads nothing that changed. A profile that fails is set aside (with
        ``isolate``; otherwise the error propagates).
        """
        compiled = self.compiled
        ready: list[tuple[_Step, dict[str, Any], set[str]]] = []
        for step in steps:
            try:
                self.stats[step.base["source"]] += 1
                old = step.live.values
                if step.settled:  # only what time moves is read again
                    values = compiled.traits.values_later(step.live.state, old, step.at)
                else:
                    values = compiled.traits.values(step.live.state, step.at)
                changed = {k for k, v in values.items() if k not in old or old[k] != v}
                ready.append((step, values, changed))
            except Exception as exc:
                if not isolate:
                    raise
                self._isolate(step.pid, step.message_ids, exc, pending)
        decided = self._vectorised(ready)
        for step, values, changed in ready:
            pid, live, at = step.pid, step.live, step.at
            try:
                members = decided.get(pid) if decided is not None else None
                if members is None:
                    dirty = (
                        self._all_units
                        if live.fresh
                        else compiled.units_for(changed) | compiled.timed_units
                    )
                    members = compiled.members(values, at, live.members, dirty)
                if members != live.members:
                    cause = _causes(compiled, step.base, changed, self._removed_rule)
                    pending.changes += diff_members(pid, live.members, members, at, cause)
                self._reschedule(pid, live, values, at, changed, step.timers_ready)
                live.values, live.members, live.fresh = values, members, False
                pending.touched[pid] = live
            except Exception as exc:
                if not isolate:
                    raise
                self._isolate(pid, step.message_ids, exc, pending)

    def _vectorised(
        self, ready: list[tuple[_Step, dict[str, Any], set[str]]]
    ) -> dict[str, frozenset[str]] | None:
        """Every unit of the ready profiles in one pass, or None (too few, or it failed)."""
        if not ready or len(ready) < self.batch_minimum:
            return None
        if not self._decider_built:
            self._decider, self._decider_built = batch_decider(self.compiled), True
        decider = self._decider
        if decider is None:
            return None
        try:
            return decider.decide([(s.pid, values, s.at) for s, values, _ in ready])
        except Exception:  # a value the batch cannot carry: each profile on its own
            log.warning("vectorised membership pass failed; deciding profile by profile",
                        exc_info=True)  # fmt: skip
            return None

    def _removed_rule(self, segment: str) -> str | None:
        """The last recorded rule of a segment no longer defined (looked up once)."""
        if segment not in self._rules_removed:
            self._rules_removed.update(last_rules(self.store, [segment]))
        return self._rules_removed[segment]

    def _reschedule(
        self,
        pid: str,
        live: Live,
        values: Mapping[str, Any],
        at: datetime,
        changed: set[str],
        ready: bool = False,
    ) -> None:
        # ``ready``: each leaf's next flip after an instant before ``at`` is known; one later
        # than ``at`` whose traits kept their values is still the next flip
        transitions = live.transitions
        fresh = live.fresh and not ready
        for index, timer in enumerate(self.compiled.timers):
            cached = transitions.get(index, at)
            if (
                fresh
                or (cached is not None and cached <= at)
                or not timer.traits.isdisjoint(changed)
            ):
                transitions[index] = timer.next(values, at)
        due = self._next_due(live, at)
        if due != live.due:
            live.due = due
            if due is not None:
                heapq.heappush(self._schedule(), (due, pid))

    def _fire(self, as_of: datetime, pending: _Pending, batch: Sequence[Event] = ()) -> None:
        # A profile loaded here is rebuilt without the ``batch`` events (they are applied
        # after the firing, not twice); catching up, one with events in the batch is decided
        # once with them. Due profiles are decided in rounds, each at its own instant, a
        # profile at most once per round (its next transition, if also due, in the next);
        # the changes are then put in time order, as firing one by one would have made them.
        exclude = {e.message_id for e in batch}
        profiles = {e.profile_id for e in batch}
        heap = self._schedule()
        self._preload(heap, as_of, exclude)
        start = len(pending.changes)
        while heap and heap[0][0] <= as_of:
            steps: list[_Step] = []
            later: list[tuple[datetime, str]] = []
            chosen: set[str] = set()
            while heap and heap[0][0] <= as_of:
                due, pid = heapq.heappop(heap)
                if self._owns is not None and not self._owns(pid):  # another worker's now
                    self._live.pop(pid, None)
                    continue
                if pid in chosen:
                    later.append((due, pid))
                    continue
                step = self._due_step(due, pid, exclude, profiles, pending)
                if step is not None:
                    chosen.add(pid)
                    steps.append(step)
            for entry in later:
                heapq.heappush(heap, entry)
            self._decide(steps, pending)
        if len(pending.changes) > start:
            fired = pending.changes[start:]
            fired.sort(key=lambda c: (c.occurred_at, c.profile_id))
            pending.changes[start:] = fired

    def _due_step(
        self, due: datetime, pid: str, exclude: set[str], profiles: set[str], pending: _Pending
    ) -> _Step | None:
        """The evaluation a popped schedule entry asks for, or None (stale, or postponed)."""
        self._ensure([pid], exclude)
        live = self._live[pid]
        if live.due != due:
            return None
        if live.fresh and pid in profiles and self._catching_up:
            # Its stored memberships may already reflect these stored events (a crash, a
            # batch refresh) while its trait state does not: decide every unit once they
            # are folded, at ``as_of``, rather than undo and redo memberships now.
            live.due = None
            return None
        if live.fresh:  # the values an instant before, for the causes
            before = due - _US
            live.values = self.compiled.traits.values(live.state, before)
            # A batch refresh writes schedule rows up to 1 ms early, and an engine leaves
            # a stored entry early when the profile's due instant moved later
            # (:func:`~segmint.membership.live.save_schedule`): when nothing can change
            # by ``due``, wait for the exact instant instead of deciding now.
            exact = self._earliest(live, live.values, before)
            if exact is not None and exact > due:
                live.due = exact
                heapq.heappush(self._schedule(), (exact, pid))
                pending.touched[pid] = live
                return None
            # Decide every unit (``fresh``): the stored memberships may come from a batch
            # refresh that saw events the stored trait state lacks (they are in this batch
            # or a later one), so "only what time changed" would keep stale members.
            live.due = None
            return _Step(pid, live, due, {"source": "time"}, [None], timers_ready=True)
        live.due = None
        return _Step(pid, live, due, {"source": "time"}, [None], settled=True)

    def _isolate(
        self, pid: str, message_ids: list[str | None], exc: Exception, pending: _Pending
    ) -> None:
        """Set a profile that failed aside: recorded, counted, rebuilt from events next time."""
        log.error("real time set profile %s aside: %r (see 'segmint status')", pid, exc)
        log.debug("real-time failure of profile %s", pid, exc_info=exc)
        self.stats["failed"] += 1
        self._live.pop(pid, None)
        self._unsaved.pop(pid, None)
        pending.touched.pop(pid, None)
        pending.changes = [c for c in pending.changes if c.profile_id != pid]
        error = f"{type(exc).__name__}: {exc}"
        pending.failed += [(pid, mid, error) for mid in message_ids]

    def _preload(
        self, heap: list[tuple[datetime, str]], as_of: datetime, exclude: set[str]
    ) -> None:
        """Load every profile due by ``as_of`` at once (a query per table, not per profile)."""
        due: list[tuple[datetime, str]] = []
        while heap and heap[0][0] <= as_of:
            due.append(heapq.heappop(heap))
        for entry in due:
            heapq.heappush(heap, entry)
        missing = list(dict.fromkeys(pid for _, pid in due if pid not in self._live))
        if missing:
            self._ensure(missing, exclude)

    def _earliest(self, live: Live, values: Mapping[str, Any], at: datetime) -> datetime | None:
        """The first instant after ``at`` at which any leaf or window of the profile flips.

        Each leaf's next flip is kept: it stays right until its traits change or it is due.
        """
        transitions = live.transitions
        for index, timer in enumerate(self.compiled.timers):
            transitions[index] = timer.next(values, at)
        return self._next_due(live, at)

    def _next_due(self, live: Live, at: datetime) -> datetime | None:
        """The earliest of the profile's cached leaf flips and its windows' next expiry."""
        found = [t for t in live.transitions.values() if t is not None]
        since = live.expiry_from
        if since is not None and since <= at and (live.expiry is None or live.expiry > at):
            expiry = live.expiry  # no event since, and nothing expired: still the next one
        else:
            expiry = live.expiry = self.compiled.traits.next_expiry(live.state, at)
            live.expiry_from = at
        if expiry is not None:
            found.append(expiry)
        return min(found, default=None)

    def _stale(self, entry: tuple[datetime, str]) -> bool:
        live = self._live.get(entry[1])
        return live is not None and live.due != entry[0]

    def _schedule(self) -> list[tuple[datetime, str]]:
        if self._heap is None:
            rows = self.store.fetchall("SELECT due_at, profile_id FROM schedule")
            owns = self._owns
            self._heap = [
                (from_store_time(at) or at, pid) for at, pid in rows if owns is None or owns(pid)
            ]
            heapq.heapify(self._heap)
        return self._heap

    def _merge_all(
        self, merges: Sequence[MergeLike], at: datetime, pending: _Pending, batch: set[str]
    ) -> dict[str, str]:
        roots = merge_chains({m.from_profile: m.into_profile for m in merges})
        for merge in merges:
            self._merge_one(merge.from_profile, roots[merge.from_profile], at, pending, batch)
        return roots

    def _merge_one(
        self, gone: str, into: str, at: datetime, pending: _Pending, batch: set[str]
    ) -> None:
        self._ensure([gone], batch)
        old = self._live.pop(gone)
        cause = {"source": "merge", "merged_into": into}
        pending.changes += diff_members(gone, old.members, frozenset(), at, lambda s, k: cause)
        pending.touched.pop(gone, None)
        pending.removed.add(gone)
        self._ensure([into], batch, rebuild=[into])
        live = self._live[into]
        self._evaluate(into, live, at, {"source": "merge", "merged_from": gone}, pending)

    def _flush(self, pending: _Pending, as_of: datetime) -> list[MembershipChange]:
        if not (pending.touched or pending.changes or pending.removed or pending.failed):
            return []
        with self.store.transaction():
            saving = self._checkpoint_due(len(self._unsaved.keys() | pending.touched.keys()))
            self._forget_erased(pending, saving)  # before writing rows an erasure deletes
            if pending.base_seq is not None:
                write_meta(self.store, SEQ_KEY, str(pending.base_seq))
                self._seq_known = True
            if pending.removed:
                forget_many(self.store, sorted(pending.removed))
                for pid in pending.removed:
                    self._unsaved.pop(pid, None)
            if pending.failed:
                record_failures(self.store, pending.failed, as_of)
            save_schedule(self.store, pending.touched, as_of, urgent=True)
            write_changes(self.store, pending.changes)
            if self.outbox is not None:
                self.outbox.enqueue_new(as_of)
            self._unsaved.update(pending.touched)
            if saving:  # (_forget_erased locked every profile it saves)
                self._save(as_of, locked=True)
            elif not self._marked:
                write_meta(self.store, UNSAVED_KEY, "1")
                self._marked = True
        self.hub.publish(pending.changes)
        return pending.changes

    def _forget_erased(self, pending: _Pending, saving: bool) -> None:
        """Drop from the step, and forget, the profiles erased since the engine read them.

        ``segmint privacy erase`` may run beside the engine, which may hold the person in
        memory (a time transition then falls due) or apply their events read before.
        PostgreSQL: the profiles the step writes for are locked first (shared, in id
        order): an erasure under way is waited for, one that starts waits for this commit
        and then deletes what it wrote. DuckDB: writers commit one at a time; when the
        store's erasure hint moved (:func:`~segmint.membership.live.erasure_mark`, kept in
        memory: no query) every profile held is checked.
        """
        store = self.store
        ids = pending.profiles() | (self._unsaved.keys() if saving else set())
        if self._postgres:
            gone = erased(store, ids, lock_profiles(store, ids))
        else:
            mark = erasure_mark(store)
            if mark == self._erasures:
                return
            self._erasures = mark
            gone = erased(store, ids | self._live.keys() | self._unsaved.keys())
        if gone:
            log.info("real time forgets %d profiles erased meanwhile", len(gone))
            self.stats["erased"] += len(gone)
            pending.drop(gone)
            for pid in gone:
                self._live.pop(pid, None)
                self._unsaved.pop(pid, None)

    def checkpoint(self, as_of: datetime | None = None) -> int:
        """Write the trait state and values not yet saved; return how many profiles."""
        with self._lock:
            count = len(self._unsaved)
            if self._holding:  # a catch-up that failed half-way: its state stays unsaved
                return 0
            if count or self._marked:
                with self.store.transaction():
                    self._save(as_of or self.clock.now())
            return count

    def close(self) -> None:
        """Save what is unsaved (a stop without it costs a rebuild of trait state on start)."""
        self.checkpoint()

    def _checkpoint_due(self, unsaved: int) -> bool:
        if self._holding:
            return False
        if self.checkpoint_every <= 0 or unsaved >= self.checkpoint_rows:
            return True
        # serve's timer saves every interval, off the event path; a batch saves only when
        # the timer is late (or when there is none)
        return time.monotonic() - self._saved_at >= 2 * self.checkpoint_every

    def _save(self, as_of: datetime, *, locked: bool = False) -> None:
        # DuckDB: with the erasure hint where the engine last checked all it holds, no
        # profile can have been erased meanwhile (see _forget_erased)
        unerased = not self._postgres and erasure_mark(self.store) == self._erasures
        dropped = save_states(
            self.store, self.compiled, self._unsaved, as_of, locked=locked, unerased=unerased
        )
        for gone in dropped:
            self._live.pop(gone, None)  # erased by another process: nothing to keep
        # the schedule entries left for later (passed, or no longer due)
        kept = {pid: live for pid, live in self._unsaved.items() if pid not in dropped}
        save_schedule(self.store, kept, as_of)
        if self._seq is not None:
            write_meta(self.store, SEQ_KEY, str(self._seq))
        if self._applied_set and (self._applied is not None or self._seq is not None):
            write_position(self.store, self._applied)
        self._unsaved = {}
        self._saved_at = time.monotonic()
        if self._marked:
            write_meta(self.store, UNSAVED_KEY, "0")
            self._marked = False

    def catch_up(
        self,
        as_of: datetime,
        chunk: int = CATCH_UP_CHUNK,
        progress: Callable[[int, int], None] | None = None,
        *,
        within: EventBound | None = None,
    ) -> int:
        """Process the events stored since the engine last saved; return how many.

        Events written while no engine ran (``segmint ingest``, ``segmint consume``, a
        Shopify backfill) or committed just before a crash change memberships now, at
        ``as_of``; profiles merged meanwhile leave their segments. A store no engine ever
        saved into starts from its newest event (run ``segmint refresh`` after a bulk
        import). ``progress(done, total)`` is called after each chunk. ``within``: only
        the events within this bound (a change feed started just before delivers the
        others, however their ``seq`` compares); on PostgreSQL without it, those
        committed when the catch-up starts.

        On PostgreSQL "since the engine last saved" is every stored event outside the
        saved commit position (:mod:`segmint.traits.position`), whatever its ``seq``: a
        transaction that drew a lower ``seq`` than the newest applied and committed after
        the save is applied now, an event the position covers is not applied twice. Such
        a catch-up saves once, when done (the position is then ``within``'s).
        """
        with self._lock:
            self._recover()
            adopt_restored(self.store)  # a store restored into another cluster
            self._sync_definitions(as_of)
            start = within if within is not None else self._committed_now()
            stored = read_meta(self.store, SEQ_KEY)
            if stored is None:
                self._start_fresh(start)
                return 0
            self._seq = max(self._seq or 0, int(stored))
            bound = start or EventBound("TRUE")
            saved = read_position(self.store) if self._postgres else None
            after, todo, applied = int(stored), bound, None
            if saved is not None:  # commit order, not seq, says what was applied
                missing = saved.missing()
                after, applied = 0, saved.bound()
                todo = EventBound(
                    f"({missing.condition}) AND ({bound.condition})",
                    (*missing.params, *bound.params),
                )
            position = start.position if start is not None else None
            self._holding = position is not None
            done = self._process_stored(
                as_of, chunk, progress, after, todo, _Folded(bound, applied)
            )
            if position is not None:  # every event committed at the start is applied
                self._applied, self._applied_set, self._holding = position, True, False
            if done:
                log.info("real time caught up on %d stored events", done)
            self.checkpoint(as_of)
            return done

    def _process_stored(
        self,
        as_of: datetime,
        chunk: int,
        progress: Callable[[int, int], None] | None,
        after: int,
        todo: EventBound,
        folded: _Folded,
    ) -> int:
        """Process the stored events within ``todo`` with ``seq`` above ``after``, by chunk."""
        merges: Sequence[MergeLike] = _pending_merges(self.store)
        where = f"seq > ? AND ({todo.condition})"
        total = self.store.fetchall(
            f"SELECT count(*) FROM events WHERE {where}", [after, *todo.params]
        )
        done = 0
        self._catching_up = True  # (left set if this raises: fires then only defer more)
        while True:
            found = self.store.fetchall(
                f"SELECT {EVENT_COLUMNS} FROM events WHERE {where} ORDER BY seq LIMIT ?",
                [after, *todo.params, chunk],
            )
            if not found and not merges:
                break
            events = [row_to_event(row) for row in found]
            self.process(events, merges, as_of, delivered=folded.upto(events))
            merges = ()
            done += len(events)
            if progress is not None:
                progress(done, int(total[0][0]))
            if not found:
                break
            after = int(found[-1][-1])
        self._catching_up = False
        return done

    def _committed_now(self) -> EventBound | None:
        """PostgreSQL: the events committed now (where a change feed started now begins)."""
        if not self._postgres:
            return None
        feed = ChangeFeed(self.store)
        feed.start(listen=False)
        return feed.delivered()

    def _start_fresh(self, start: EventBound | None) -> None:
        """A store no engine saved into: real time starts after the events stored now."""
        top = self.store.fetchall("SELECT coalesce(max(seq), 0) FROM events")[0][0]
        with self.store.transaction():
            write_meta(self.store, SEQ_KEY, str(top))
            if start is not None and start.position is not None:
                write_position(self.store, start.position)
        self._seq, self._seq_known = int(top), True

    def reload(self, compiled: CompiledSegments, as_of: datetime) -> None:
        """Take new definitions without a restart, as a server start would take them.

        The state held is saved under the old definitions, the cache is dropped, and the
        stored memberships are brought in line with the new ones at ``as_of`` (a batch
        recompute when a segment was added or changed, or the traits changed).
        """
        with self._lock:
            self.checkpoint(as_of)
            self.compiled = compiled
            self._all_units = frozenset(u.index for u in compiled.plan.units)
            self._live.clear()
            self._heap = None
            self._decider, self._decider_built = None, False  # built from the new rules
            self._sync_definitions(as_of)

    def _sync_definitions(self, as_of: datetime) -> None:
        """Bring the stored memberships in line with the segment definitions at ``as_of``.

        Removed segments' members exit; when a segment was added or changed, the traits
        changed, or a removed segment's rule moved with time (its schedule entries must go),
        a batch refresh recomputes every membership and the schedule instead. The changes
        go to the hub and the webhook outbox like the engine's own.
        """
        drift = definition_drift(stored_definitions(self.store), self.compiled)
        last = self.store.fetchall("SELECT coalesce(max(id), 0) FROM membership_changes")[0][0]
        with self.store.transaction():
            if drift.recompute:
                log.info(
                    "segment definitions changed (added or changed: %s; removed: %s): "
                    "recomputing memberships in batch",
                    ", ".join(sorted(drift.changed)) or "-",
                    ", ".join(sorted(drift.removed)) or "-",
                )
                refresh(self.store, self.compiled, as_of)
            else:
                retire_removed(self.store, frozenset(self.compiled.segments), as_of)
                record_definitions(self.store, self.compiled)
            if self.outbox is not None:
                self.outbox.enqueue_new(as_of)
        changes = read_changes(self.store, after_id=int(last))
        if changes or drift.recompute:  # memberships (and the schedule) changed under the cache
            self.invalidate()
        self.hub.publish(changes)

    def _recover(self) -> None:
        """Drop trait state an engine stopped without saving (it lags behind the events).

        Only where no other engine runs: the unsaved mark is also that of a leading server
        on the same PostgreSQL store, whose saved state is current (a second server's
        engine, which does not lead, must leave it alone; see ``recover``).
        """
        if read_meta(self.store, UNSAVED_KEY) == "1":
            log.warning("real-time trait state was not saved at the last stop; rebuilding it")
            with self.store.transaction():
                drop_all_states(self.store)
                write_meta(self.store, UNSAVED_KEY, "0")


@dataclass(frozen=True)
class _Folded:
    """What a rebuild folds while catching up: events applied before, and the catch-up's.

    The catch-up's are those up to a chunk's highest ``seq``, within its bound.

    Attributes:
        bound: The catch-up's bound (the events committed at its start, on PostgreSQL).
        applied: The events applied before it (its saved commit position), or None: by
            ``seq``, every event below the chunk (commits in ``seq`` order).
    """

    bound: EventBound
    applied: EventBound | None

    def upto(self, events: Sequence[Event]) -> EventBound | None:
        """The events a rebuild folds while ``events`` (a chunk) are applied."""
        top = max((e.seq for e in events if e.seq is not None), default=None)
        if top is None:
            return None
        bound, applied = self.bound, self.applied
        if applied is None:
            return EventBound(f"({bound.condition}) AND seq <= ?", (*bound.params, top))
        return EventBound(
            f"({bound.condition}) AND (({applied.condition}) OR seq <= ?)",
            (*bound.params, *applied.params, top),
        )


@dataclass(frozen=True)
class _Merge:
    from_profile: str
    into_profile: str


def _pending_merges(store: Store) -> list[_Merge]:
    """Profiles merged away that still hold memberships, trait state or a schedule entry."""
    roots = merge_roots(store)
    if not roots:
        return []
    holding = {
        row[0]
        for table in ("memberships", "trait_state", "schedule")
        for row in store.fetchall(
            f"SELECT DISTINCT t.profile_id FROM {table} t JOIN profiles p "
            "ON p.profile_id = t.profile_id WHERE p.merged_into IS NOT NULL"
        )
    }
    return [_Merge(gone, roots[gone]) for gone in sorted(holding)]


def _causes(
    compiled: CompiledSegments,
    base: Mapping[str, Any],
    changed: set[str],
    removed: Callable[[str], str | None],
) -> Any:
    def cause(segment: str, kind: ChangeKind) -> dict[str, Any]:
        seg = compiled.segments.get(segment)
        if seg is None:  # no longer defined: the profile leaves it
            return removed_cause(removed(segment))
        traits = [name for name in seg.sorted_traits if name in changed]
        return {**base, "rule": seg.spec.rule, "traits": traits}

    return cause
