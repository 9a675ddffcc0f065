"""The membership engine's Python API over a workspace; the CLI and the REST API use it.

>>> m = Membership(workspace)
>>> m.refresh(as_of)                       # batch: traits and every segment
>>> engine = m.realtime(clock)             # real time: give it to intake as a listener
>>> m.reconcile(as_of)                     # live vs batch, every difference

In a server, :func:`attach_realtime` wires everything: the engine listens to intake, a
background thread fires due time transitions and delivers webhooks every second, and an
optional Redis stream (``SEGMINT_CHANGES_REDIS_URL``) carries each change.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import cached_property
from typing import Any, Protocol

from segmint.clock import Clock
from segmint.common import wait_for_thread
from segmint.config.model import WorkspaceDef
from segmint.deliver.outbox import OutboxReport
from segmint.membership.batch import Difference, RefreshReport, reconcile, refresh
from segmint.membership.changes import MembershipChange, members_of, retire_removed
from segmint.membership.compiled import CompiledSegments
from segmint.membership.explain import explain_profile
from segmint.membership.feed import ChangeFeed
from segmint.membership.follow import Follower
from segmint.membership.hub import ChangeHub
from segmint.membership.insight import (
    list_segments,
    overlap,
    segment_info,
    show_segment,
    size_histories,
)
from segmint.membership.realtime import RealtimeEngine
from segmint.membership.redis_stream import RedisChangeStream
from segmint.membership.structure import SegmentSpec
from segmint.membership.webhooks import WebhookDispatcher, WebhookOutbox, outbox_status
from segmint.workspace import Workspace

REDIS_ENV = "SEGMINT_CHANGES_REDIS_URL"
POLL = 1.0
"""The longest the service's loop sleeps (seconds)."""
FAILED_PAUSE = 1.0
"""Seconds the timer loop waits after a failed pass before it tries again."""
CHECKPOINT_EVERY = 1.0
"""Seconds between writes of the server's real-time trait state."""
log = logging.getLogger(__name__)


class Membership:
    """Segments of one workspace: refresh, real time, reconcile, insight.

    Args:
        workspace: The workspace.
    """

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self.store = workspace.store
        self.hub = ChangeHub()

    @cached_property
    def compiled(self) -> CompiledSegments:
        """The workspace's segments, compiled (raises ConfigError for a broken rule)."""
        return CompiledSegments(self.workspace.definition)

    @property
    def outbox(self) -> WebhookOutbox | None:
        """The webhook outbox, when the workspace has webhooks."""
        hooks = self.workspace.definition.webhooks
        return WebhookOutbox(self.store, hooks) if hooks else None

    def refresh(self, as_of: datetime) -> RefreshReport:
        """Recompute traits and every segment at ``as_of``; record the changes."""
        outbox = self.outbox  # before the changes: a first refresh's changes are delivered
        report = refresh(self.store, self.compiled, as_of)
        if outbox is not None:
            outbox.enqueue_new(as_of)
        return report

    def reconcile(self, as_of: datetime) -> list[Difference]:
        """Every (segment, profile) where live memberships and a batch recompute differ."""
        return reconcile(self.store, self.compiled, as_of)

    def retire_removed(self, as_of: datetime) -> list[MembershipChange]:
        """Exit the members of segments no longer defined (cause ``definition_removed``)."""
        outbox = self.outbox  # before the changes: a first outbox starts at the newest
        with self.store.transaction():
            changes = retire_removed(self.store, frozenset(self.compiled.segments), as_of)
            if outbox is not None:
                outbox.enqueue_new(as_of)
        self.hub.publish(changes)
        return changes

    def realtime(
        self, clock: Clock, checkpoint_every: float = 0.0, *, recover: bool = True
    ) -> RealtimeEngine:
        """A real-time engine publishing to this object's hub and the webhook outbox.

        ``checkpoint_every``: seconds between writes of trait state (0: with every batch).
        ``recover``: drop trait state an engine stopped without saving now (False: at its
        catch-up, for a server that may not lead).
        """
        return RealtimeEngine(
            self.store, self.compiled, clock, hub=self.hub, outbox=self.outbox,
            checkpoint_every=checkpoint_every, recover=recover,
        )  # fmt: skip

    def segments(self, tag: str | None = None) -> list[dict[str, Any]]:
        """Every segment (optionally with ``tag``) with its definition and size.

        Archived segments are listed too, with ``"archived": true``.
        """
        archived = self.workspace.definition.archived_segments
        return list_segments(self.store, self.compiled.plan, tag, archived)

    def size_histories(self) -> dict[str, list[int]]:
        """Each segment's size at the end of every day it changed, oldest first."""
        found = size_histories(self.store, sorted(self.compiled.segments))
        return {name: [p.size for p in points] for name, points in found.items()}

    def segment(self, name: str, recent: int = 20) -> dict[str, Any]:
        """One segment: rule, size, size history and recent changes (``archived`` marked)."""
        archived = self.workspace.definition.archived_segments
        if name in archived:
            spec = SegmentSpec.from_def(name, archived[name])
            return segment_info(self.store, spec, recent) | {"archived": True}
        return show_segment(self.store, self.compiled.plan, name, recent) | {"archived": False}

    def overlap(
        self,
        *,
        segments: Sequence[str] = (),
        min_overlap: int = 0,
        top: int | None = None,
        exclusive_pairs: bool = False,
    ) -> list[dict[str, Any]]:
        """Pairs of segments: shared members and Jaccard index (see ``insight.overlap``)."""
        return overlap(
            self.store, self.compiled.plan, segments=segments, min_overlap=min_overlap,
            top=top, exclusive_pairs=exclusive_pairs,
        )  # fmt: skip

    def profile_segments(self, profile_id: str) -> list[str]:
        """The live memberships of one profile, sorted."""
        return sorted(members_of(self.store, [profile_id])[profile_id])

    def explain(self, profile_id: str, as_of: datetime) -> dict[str, Any]:
        """Why the profile is or is not in each segment (see :mod:`.explain`)."""
        return explain_profile(self.store, self.compiled, profile_id, as_of)

    def webhook_status(self) -> dict[str, Any]:
        """Outbox counts per webhook and the latest dead letters."""
        return outbox_status(self.store, webhooks=self.workspace.definition.webhooks)

    def deliver_webhooks(self, as_of: datetime) -> OutboxReport:
        """Deliver every webhook row due at ``as_of`` once (all of them, not one batch)."""
        dispatcher = WebhookDispatcher(self.store, self.workspace.definition.webhooks)
        try:
            return dispatcher.deliver_every_due(as_of)
        finally:
            dispatcher.close()


class Timer(Protocol):
    """Another stage's timed work run by the service's loop (journeys)."""

    def tick(self, as_of: datetime) -> object:
        """Do everything due at or before ``as_of``."""
        ...

    def next_due(self) -> datetime | None:
        """The earliest instant something is due (None: nothing scheduled)."""
        ...

    def halt(self) -> None:
        """Make a tick under way return soon (the server stops; the next start goes on)."""
        ...


class RealtimeService:
    """What :func:`attach_realtime` started; :meth:`close` stops it.

    One loop fires the schedule: the membership engine's time transitions, the webhook
    outbox, and the timers other stages add (:meth:`add_timer`). It sleeps until the
    earliest instant due (at most :data:`POLL` seconds) or until :meth:`wake` is called.
    These are duties of one server per store: of several on PostgreSQL only the leader
    (:attr:`leading`) runs them, and the next leader takes them over.
    """

    def __init__(self, membership: Membership, engine: RealtimeEngine, clock: Clock) -> None:
        self.membership = membership
        self.engine = engine
        self.clock = clock
        self.stop = threading.Event()
        self._wake = threading.Event()
        self.timers: list[Timer] = []
        hooks = membership.workspace.definition.webhooks
        self.dispatcher = WebhookDispatcher(membership.store, hooks) if hooks else None
        self.thread = threading.Thread(target=self._run, name="segmint-membership", daemon=True)
        self.follower: Follower | None = None
        """Applies other writers' events (set by :func:`attach_realtime`)."""

    def add_timer(self, timer: Timer) -> None:
        """Run ``timer.tick`` in the loop, at the instants its ``next_due`` names."""
        self.timers.append(timer)
        self.wake()

    def wake(self) -> None:
        """Run the loop now (new changes or events may have made something due)."""
        self._wake.set()

    def _run(self) -> None:
        failing: str | None = None  # the last failure, logged in full once
        while not self.stop.is_set():
            self._wake.clear()
            try:
                if self.leading:  # one server per store fires time, journeys and webhooks
                    self.engine.advance(self.clock.now())
                    for timer in self.timers:  # (a step due now waits for no checkpoint)
                        timer.tick(self.clock.now())
                self.engine.checkpoint()
                if self.leading and self.dispatcher is not None:
                    self.dispatcher.deliver_due(self.clock.now())
            except Exception as exc:
                if repr(exc) != failing:
                    log.exception("membership timer failed; retrying")
                else:
                    log.warning("membership timer failed again: %s", exc)
                failing = repr(exc)
                # what is overdue stays due: wait before the retry, not spin on it
                self._wake.wait(max(self._sleep(), FAILED_PAUSE))
                continue
            failing = None
            self._wake.wait(self._sleep())

    @property
    def leading(self) -> bool:
        """Whether this server runs the once-per-store duties (it applies real time)."""
        return self.follower is None or self.follower.leading

    def _sleep(self) -> float:
        """Seconds until the earliest due instant of the loop's work, at most POLL."""
        found = [self.engine.next_due(), *(t.next_due() for t in self.timers)]
        due = min((d for d in found if d is not None), default=None)
        if due is None:
            return POLL
        return max(0.0, min(POLL, (due - self.clock.now()).total_seconds()))

    def reload(self, definition: WorkspaceDef) -> None:
        """Recompile the segments of ``definition`` and hand them to the running engine.

        A workspace calls this after a save (:meth:`Workspace.on_definition
        <segmint.workspace.Workspace.on_definition>`); events after it are decided by the new
        rules, and the memberships the change affects are recomputed at once.
        """
        membership = self.membership
        membership.workspace.definition = definition
        membership.__dict__.pop("compiled", None)  # the cached compilation of the old text
        self.engine.reload(membership.compiled, self.clock.now())
        self.wake()

    def request_stop(self) -> None:
        """Stop taking duties: the loop ends after the pass under way (see :meth:`close`).

        Only sets flags, so a signal handler may call it: a server asked to stop sends no
        message and calls no webhook from then on, while it still answers requests.
        """
        self.stop.set()
        self._wake.set()
        for timer in self.timers:  # a backlog of journey triggers waits for the next start
            timer.halt()

    def close(self) -> None:
        """Stop the timer thread."""
        self.request_stop()
        if self.thread.is_alive():
            wait_for_thread(self.thread, "the timer's pass under way (time, journeys, webhooks)")
        if self.follower is not None:  # saved before another server may take the lead
            self.follower.close(save=self.engine.close)
        self.engine.close()
        if self.dispatcher is not None:
            self.dispatcher.close()


def attach_realtime(
    workspace: Workspace,
    intake: Any,
    clock: Clock,
    progress: Callable[[int, int], None] | None = None,
) -> RealtimeService:
    """Wire real-time membership into a server: listener, timer, webhooks, Redis stream.

    Args:
        workspace: The workspace.
        intake: The :class:`segmint.intake.pipeline.Intake` the server commits through.
        clock: The server's clock.
        progress: Called with (done, total) while catching up on stored events.
    """
    membership = Membership(workspace)
    # On PostgreSQL another server may lead: its unsaved mark is no stale state
    postgres = workspace.store.dialect == "postgres"
    engine = membership.realtime(clock, checkpoint_every=CHECKPOINT_EVERY, recover=not postgres)
    url = os.environ.get(REDIS_ENV)
    if url:
        membership.hub.subscribe(RedisChangeStream(workspace.store, url))
    service = RealtimeService(membership, engine, clock)
    store = workspace.store
    reopen = getattr(store, "reopen", None)  # PostgreSQL: the feed reads on its own connection
    feed = ChangeFeed(reopen(), owned=True) if reopen is not None else ChangeFeed(store)
    follower = Follower(engine, feed, clock, report=store)
    backend_pid = getattr(store, "backend_pid", None)
    if backend_pid is not None:  # PostgreSQL: the engine's own derived writes notify too
        follower.own_pids.add(backend_pid())
    # The leader (the one server on DuckDB) catches up on the events stored while no
    # engine ran, then follows the feed; another server stores events only, and takes
    # over when the leader stops.
    if follower.lead(clock.now(), progress):
        engine.advance(clock.now())  # whatever fell due while the server was down
    intake.add_listener(follower)
    intake.watch_commits(follower)
    watch_writes = getattr(store, "watch_writes", None)
    if watch_writes is not None:  # DuckDB: commands writing through this server
        watch_writes(follower.written_elsewhere)
    service.follower = follower
    follower.start()
    workspace.on_definition(service.reload)  # a save through the API or console applies now
    service.thread.start()
    return service
