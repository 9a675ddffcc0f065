"""A server's real time follows every writer of its store, and says how far behind it is.

The server's own intake hands its committed events to the engine at once (the listener
path). Everything else that writes the store (``segmint ingest`` or ``campaign send`` run
beside the server, ``segmint consume``, other servers on PostgreSQL) is read from the
:class:`~segmint.membership.feed.ChangeFeed` by a :class:`Follower` thread, which applies
what its own intake did not write. To tell the two apart without a race, the intake
*claims* the message ids of a commit before writing them (:meth:`Follower.claim`) and
releases those it did not store; the feed skips (and forgets) a claimed id.

Lag is what was committed (or accepted by the server's intake) and not yet applied: the
events of the batch the engine is working on, the feed's rows read and not yet applied
and, when the feed is behind by more than one read, the rows it has not read. Its seconds
say how long the oldest of those has waited. A server publishes it every second in
``meta`` (key ``realtime.lag.<host>:<pid>``) for ``segmint status``, and its API answers
503 when it passes a threshold (:mod:`segmint.api.backpressure`).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from functools import partial
from typing import Any, Protocol

from segmint.clock import Clock
from segmint.common import wait_for_thread
from segmint.events import Event
from segmint.membership.feed import ChangeFeed, FeedMerge, Heard, merge_keys
from segmint.store import Store, read_meta, write_meta
from segmint.traits import EventBound, adopt_restored

LAG_KEY = "realtime.lag."
"""Prefix of the ``meta`` keys where running servers publish their lag."""
INTERVAL = 0.1
"""Seconds between reads of the feed when nothing wakes it."""
REPORT_EVERY = 1.0
"""Seconds between publications of the lag in ``meta``."""
STALE_AFTER = 10.0
"""A published lag older than this many seconds is from a server that stopped."""
log = logging.getLogger(__name__)


class Applier(Protocol):
    """The real-time engine as the follower uses it."""

    def __call__(self, events: Sequence[Event], merges: Sequence[Any] = ()) -> None:
        """Apply the server's own committed batch at the clock's now."""
        ...

    def process(
        self,
        events: Sequence[Event],
        merges: Sequence[Any] = (),
        as_of: datetime | None = None,
        *,
        delivered: EventBound | None = None,
        unapplied: Collection[str] = (),
    ) -> Any:
        """Apply stored events and merges at ``as_of`` (rebuilds fold ``delivered``)."""
        ...

    def invalidate(self) -> None:
        """Forget cached memberships and state (another process rewrote them)."""
        ...

    def catch_up(
        self,
        as_of: datetime,
        *,
        progress: Callable[[int, int], None] | None = None,
        within: EventBound | None = None,
    ) -> int:
        """Apply the events stored since the engine's last save."""
        ...


class Leadership:
    """Which one of several servers on one PostgreSQL store applies events in real time.

    Memberships, changes and trait state are shared by every server of a store: one engine
    applies each event, and fires time transitions, or changes would be recorded twice. The
    leader holds a session advisory lock (per schema) on the feed's own connection; when
    it stops or dies, PostgreSQL frees the lock and another server takes over. The others
    store events only (they reach real time through the leader's feed within a second).
    The real-time leader also runs the once-per-store duties that follow memberships (the
    membership loop's timers, journeys and webhooks).

    Args:
        store: A connection of the leadership's own (the lock lives as long as it).
        role: What is led: ``realtime``, or ``duties`` for what every server may run
            whatever its role (``all``, ``intake``, ``--no-realtime``): retention.
    """

    def __init__(self, store: Store, role: str = "realtime") -> None:
        self.store = store
        self.held = store.dialect != "postgres"  # DuckDB: the one server is the leader
        self._keys = f"hashtext('segmint.{role}.leader'), hashtext(current_schema())"

    def try_take(self) -> bool:
        """Take the lead if it is free; return whether this server leads."""
        if not self.held:
            found = self.store.fetchall(f"SELECT pg_try_advisory_lock({self._keys})")
            self.held = bool(found[0][0])
        return self.held


@dataclass(frozen=True)
class Lag:
    """How far real time is behind the stored (and accepted) events.

    Attributes:
        events: Events committed or accepted and not yet applied.
        seconds: How long the oldest of them has waited (0 when none waits).
        applied: Events of other writers this server applied so far.
    """

    events: int
    seconds: float
    applied: int

    def as_dict(self) -> dict[str, Any]:
        """The figures as a JSON-ready dict."""
        return {**asdict(self), "seconds": round(self.seconds, 3)}


class Follower:
    """Applies other writers' events to the engine and tracks the lag.

    Args:
        engine: The real-time engine.
        feed: A change feed on a store connection of its own (its leadership lock too).
        clock: The clock whose now the feed's events are applied at.
        report: The store the lag is published in (None: not published).
        interval: Seconds between reads when nothing wakes the follower.
        monotonic: The clock lag seconds are measured with (a test may move it).
    """

    def __init__(
        self,
        engine: Applier,
        feed: ChangeFeed,
        clock: Clock,
        *,
        report: Store | None = None,
        interval: float = INTERVAL,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.feed = feed
        self.clock = clock
        self.report = report
        self.interval = interval
        self.monotonic = monotonic
        self.key = f"{LAG_KEY}{socket.gethostname()}:{os.getpid()}"
        self._lock = threading.Lock()
        self._quiet = threading.Condition(self._lock)  # notified as own events are applied
        self._gate = threading.RLock()  # held while others' events are read and applied
        self._unapplied: set[str] = set()  # own events claimed, not yet through the listener
        self._foreign = True  # others' events may wait in the feed (DuckDB: told per write)
        self._own: set[str] = set()
        self._own_merges: set[tuple[str, str]] = set()
        self._running = 0  # events of the batch the engine works on (own or fed)
        self._running_since: float | None = None
        self._behind = 0  # rows committed and not yet read (when a read was truncated)
        self._behind_since: float | None = None
        self._retry: tuple[list[Event], list[FeedMerge]] | None = None
        self.applied = 0
        self._invalidate = False
        self._started = False
        self.leadership = Leadership(feed.store)
        self.floor = 0
        """Events with ``seq`` up to this one were applied by the engine's catch-up (DuckDB)."""
        self.own_pids: set[int] = set()
        """The server connections the engine writes through (PostgreSQL; their notices of
        derived writes are the engine's own)."""
        self._reported = 0.0
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="segmint-feed", daemon=True)

    # --- the server's own intake -----------------------------------------------------

    def claim(self, message_ids: Iterable[str]) -> None:
        """The intake is about to write these messages (its listener applies them).

        Waits while the feed applies a batch: the engine rebuilds a profile it has not
        loaded from the stored events, so no event of this server may be stored and not
        yet applied while it applies others' (it would be folded twice).
        """
        with self._gate, self._lock:
            self._own.update(message_ids)
            self._unapplied.update(message_ids)

    def release(self, message_ids: Iterable[str]) -> None:
        """The intake did not store these (duplicates, quarantined, a failed commit)."""
        with self._lock:
            self._own.difference_update(message_ids)
            self._unapplied.difference_update(message_ids)
            self._quiet.notify_all()

    def __call__(self, events: Sequence[Event], merges: Sequence[Any] = ()) -> None:
        """Intake listener: apply the server's own committed batch at once (if it leads).

        Others' events committed before it are applied first (a profile the engine
        rebuilds from the store would otherwise fold them, and the feed apply them again).
        A server that does not lead leaves its events to the leader's feed.
        """
        ids = [e.message_id for e in events]
        try:
            if not self.leading:
                with self._lock:
                    self._own.difference_update(ids)
                return
            with self._gate:
                if self.feed.postgres or self._foreign:
                    self._follow()
                with self._lock:
                    self._own_merges.update(merge_keys(merges))
                self._apply_batch(list(events), list(merges))
        finally:
            with self._lock:
                self._unapplied.difference_update(ids)
                self._quiet.notify_all()

    @property
    def leading(self) -> bool:
        """Whether this server applies events (always on DuckDB; one server on PostgreSQL).

        True once it took the lead and caught up (its own events meanwhile come from the feed).
        """
        return self._started

    def lead(self, as_of: datetime, progress: Callable[[int, int], None] | None = None) -> bool:
        """Take the lead if free: catch up on the stored events, then follow the feed.

        Returns whether this server leads. The feed starts before the catch-up, which
        applies the events committed by the feed's start; the feed delivers the others
        (PostgreSQL, by its commit-order position), or skips those the catch-up applied
        (DuckDB, by ``seq``: commits follow ``seq`` order there). So what other processes
        commit meanwhile is applied once, by one or the other.
        """
        if self._started or not self.leadership.try_take():
            return self._started
        adopt_restored(self.feed.store)  # before the feed reads transaction ids
        self.feed.start()
        started = self.feed.delivered()
        self.engine.catch_up(as_of, progress=progress, within=started)
        self.floor = self.saved_seq() if started is None else 0
        self._started = True
        return True

    def saved_seq(self) -> int:
        """The engine's saved position (the newest event its catch-up applied)."""
        from segmint.traits import SEQ_KEY

        return int(read_meta(self.feed.store, SEQ_KEY) or 0)

    # --- the feed ------------------------------------------------------------------------

    def start(self) -> Follower:
        """Start following in a thread (taking the lead when it is free)."""
        self._thread.start()
        return self

    def wake(self) -> None:
        """Read the feed now (another process said it committed)."""
        self._wake.set()

    def written_elsewhere(self, derived: bool) -> None:
        """Another process committed a write; ``derived``: memberships or state too.

        Then the engine's cached memberships may be stale (a ``segmint refresh``): it
        forgets them before applying more.
        """
        if derived:
            self._invalidate = True
        self._foreign = True
        self._wake.set()

    def heard(self, notices: Heard | None) -> None:
        """React to the commit notices of a wait of the feed.

        A connection other than the engine's own that wrote derived rows (``segmint
        refresh`` or ``privacy erase`` run beside the server, on PostgreSQL) may have
        rewritten what the engine caches: it forgets its cache before applying more.
        """
        if notices is not None and notices.derived_by - self.own_pids:
            self.written_elsewhere(True)

    def step(self) -> int:
        """Read the feed once and apply what other writers committed; return how many events.

        Runs when none of this server's own stored events waits for its listener (0 if
        that does not happen within a second). A batch the engine failed to apply is kept
        and tried again before reading on.
        """
        if not self.lead(self.clock.now()):
            return 0  # another server applies the events
        deadline = self.monotonic() + 1.0
        while True:
            with self._lock:
                self._quiet.wait_for(lambda: not self._unapplied, timeout=self.interval)
            with self._gate:  # no own write starts while this one reads and applies
                with self._lock:
                    busy = bool(self._unapplied)
                if not busy:
                    return self._follow()
            if self.monotonic() > deadline or self._stop.is_set():
                return 0

    def _follow(self) -> int:
        """Apply a batch kept from a failed try, then read the feed and apply what it returns.

        The read always happens (when the kept batch now applies): the engine's rebuilds
        fold what the feed delivered, and the server's own batch that follows must be in it.
        """
        if self._invalidate:
            self._invalidate = False
            self.engine.invalidate()
        done = 0
        if self._retry is not None:
            done += self._apply_fed(*self._retry)
        self._foreign = False
        batch = self.feed.read()
        self._note_behind(batch.more)
        with self._lock:
            events = [
                e
                for e in batch.events
                if not self._is_own(e.message_id) and (e.seq or 0) > self.floor
            ]
            merges = [m for m in batch.merges if not self._is_own_merge(m)]
        return done + self._apply_fed(events, merges)

    def _apply_fed(self, events: list[Event], merges: list[FeedMerge]) -> int:
        """Apply other writers' events and merges (kept to retry if the engine fails)."""
        self._retry = (events, merges)
        if events or merges:
            self._apply_batch(events, merges)
            self.applied += len(events)
        self._retry = None
        return len(events)

    def _apply_batch(self, events: list[Event], merges: Sequence[Any]) -> None:
        """Apply a batch at the clock's now; rebuilds fold what the feed delivered.

        Stored events the engine has yet to apply are left out of a rebuild: the server's
        own claimed and not yet applied (this batch's, if its own) and, on DuckDB, those
        after this batch's highest ``seq``.
        """
        delivered = self.feed.delivered()
        with self._lock:
            unapplied = frozenset(self._unapplied)
        now = self.clock.now()
        work = partial(
            self.engine.process, events, merges, now, delivered=delivered, unapplied=unapplied
        )
        self._apply(work, len(events))

    def lag(self) -> Lag:
        """The current lag."""
        now = self.monotonic()
        with self._lock:
            events = self._running + self._behind
            since = [t for t in (self._running_since, self._behind_since) if t is not None]
        seconds = max(0.0, now - min(since)) if since else 0.0
        return Lag(events, seconds, self.applied)

    def close(self, save: Callable[[], object] | None = None) -> None:
        """Stop reading (after the read under way) and withdraw the published lag.

        ``save``: the engine's final save, run once reading stopped and before the lead is
        released: the next leader catches up from what it saves (were the lead released
        first, it could catch up on events this save then writes as applied).
        """
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            wait_for_thread(self._thread, "real time to finish the batch it is applying")
        if save is not None:
            save()
        self.feed.close()  # (its connection held the leadership lock: freed)
        if self.report is not None:
            try:
                with self.report.transaction():
                    self.report.execute("DELETE FROM meta WHERE key = ?", [self.key])
            except Exception:  # the store may be gone at a stop; the report goes stale
                log.debug("could not withdraw the published lag", exc_info=True)

    def _is_own(self, message_id: str) -> bool:
        if message_id in self._own:
            self._own.discard(message_id)
            return True
        return False

    def _is_own_merge(self, merge: FeedMerge) -> bool:
        pair = (merge.from_profile, merge.into_profile)
        if pair in self._own_merges:
            self._own_merges.discard(pair)
            return True
        return False

    def _apply(self, work: Callable[[], object], count: int) -> None:
        with self._lock:
            self._running += count
            if self._running_since is None:
                self._running_since = self.monotonic()
        try:
            work()
        finally:
            with self._lock:
                self._running -= count
                if not self._running:
                    self._running_since = None

    def _note_behind(self, more: bool) -> None:
        behind = self.feed.backlog() if more else 0
        with self._lock:
            self._behind = behind
            if not behind:
                self._behind_since = None
            elif self._behind_since is None:
                self._behind_since = self.monotonic()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                self.step()
            except Exception:
                log.exception("real time could not apply other writers' events; retrying")
            self._publish()
            if self._behind:
                continue
            if self.feed.listening:  # PostgreSQL: until a writer commits, or the interval
                self.heard(self.feed.wait(self.interval))
            else:
                self._wake.wait(self.interval)

    def _publish(self) -> None:
        if self.report is None or self.monotonic() - self._reported < REPORT_EVERY:
            return
        self._reported = self.monotonic()
        body = {**self.lag().as_dict(), "leading": self.leading,
                "at": self.clock.now().isoformat()}  # fmt: skip
        try:
            with self.report.transaction():
                write_meta(self.report, self.key, json.dumps(body))
        except Exception:  # a busy or lost store: the next second tries again
            log.debug("could not publish the real-time lag", exc_info=True)


def published_lags(store: Store, now: datetime) -> list[dict[str, Any]]:
    """The lag each running server published (stale reports marked ``running: false``)."""
    rows = store.fetchall("SELECT key, value FROM meta WHERE key LIKE ?", [LAG_KEY + "%"])
    found = []
    for key, value in sorted(rows):
        try:
            body = json.loads(value)
            age = (now - datetime.fromisoformat(body["at"])).total_seconds()
        except (ValueError, KeyError, TypeError):
            continue
        server = str(key).removeprefix(LAG_KEY)
        running = age <= STALE_AFTER and not _gone_here(server)
        found.append({"server": server, **body, "running": running})
    return found


def _gone_here(server: str) -> bool:
    """Whether ``server`` (``host:pid``) ran on this machine and its process has ended.

    A server killed (``kill -9``) leaves its last report, fresh for up to
    :data:`STALE_AFTER` seconds: on its own machine the process says at once that it is gone.
    """
    host, _, pid = server.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # another user's process: alive
        return False
    return False


def realtime_status(store: Store, now: datetime) -> dict[str, Any]:
    """Real-time lag for ``segmint status``: each server's report and the stored backlog."""
    return {
        "servers": published_lags(store, now),
        "stored_since_checkpoint": unapplied_since_checkpoint(store),
    }


def unapplied_since_checkpoint(store: Store) -> int:
    """Events stored after the last real-time checkpoint (the lag when no server runs).

    On PostgreSQL, with a saved commit position, those outside it (whatever their ``seq``).
    """
    from segmint.traits import SEQ_KEY, read_position

    saved = read_meta(store, SEQ_KEY)
    if saved is None:
        return 0
    position = read_position(store)
    if position is not None:
        missing = position.missing()
        sql = f"SELECT count(*) FROM events WHERE {missing.condition}"
        return int(store.fetchall(sql, list(missing.params))[0][0])
    newest = int(store.fetchall("SELECT coalesce(max(seq), 0) FROM events")[0][0])
    return max(0, newest - int(saved))
