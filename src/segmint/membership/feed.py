"""A commit-ordered change feed: every stored event and merge, once, as its writer commits.

Several processes may write one store: ``segmint serve`` ×N, ``segmint consume``,
``segmint ingest``, a campaign's engagement events. A server's real-time engine must apply
what the others wrote, each event once. Reading ``WHERE seq > last`` is not enough: ``seq``
is drawn when a row is inserted, not when its transaction commits, so a transaction that
draws 10 and commits after another drew and committed 11 would be skipped by a reader that
already moved past 11.

PostgreSQL: each row carries the id of the transaction that wrote it (column ``xid``,
default ``pg_current_xact_id()``, migration 41). A read takes one snapshot and its
``pg_snapshot_xmin``: every transaction with a smaller id has finished, so its rows (if it
committed) are visible in that snapshot, and no row below that id can appear later. The
feed keeps a position ``low`` (every row with ``xid < low`` was read) and the keys of the
rows it read at or above ``low`` (the next query returns them again). Each read returns
the rows with ``xid >= low`` not read before, then moves ``low`` to the snapshot's xmin
and forgets the keys below it. A transaction still open (however long it sleeps before its
commit) keeps the xmin at or below its id, so its rows are read when it commits.

DuckDB: one process holds the file and every writing transaction, its own and those it
runs for other commands (:mod:`segmint.store.shared`), holds the store's transaction lock,
so transactions commit one at a time and a committed ``seq`` is never followed by a
smaller one; the feed reads ``WHERE seq > last``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from segmint.events import Event
from segmint.store import Store
from segmint.traits import EVENT_COLUMNS, CommitPosition, EventBound, row_to_event

CHUNK = 5000
"""Rows read at most per table and read (a backlog is read in several)."""


@dataclass(frozen=True)
class FeedMerge:
    """A profile merge read from the store (what the engine's ``process`` takes)."""

    from_profile: str
    into_profile: str


@dataclass(frozen=True)
class Heard:
    """Commit notices a wait of the feed received (PostgreSQL).

    Attributes:
        derived_by: The server process ids of the connections whose commit wrote what a
            real-time engine caches (memberships, the schedule, trait state and values).
    """

    derived_by: frozenset[int]


@dataclass(frozen=True)
class FeedBatch:
    """What one read of the feed returned, in commit order.

    Attributes:
        events: Events committed since the previous read and not returned before.
        merges: Profile merges committed since the previous read.
        more: True when a table had more rows than one read returns (read again at once).
    """

    events: list[Event]
    merges: list[FeedMerge]
    more: bool


@dataclass
class _Stream:
    """One table read in commit order: its position and the keys read at or above it."""

    table: str
    key: str
    columns: str
    low: int = 0
    seen: dict[int, int] = field(default_factory=dict)

    def read(self, store: Store, xmin: int | None, chunk: int) -> tuple[list[Any], bool]:
        """The rows not read before (their columns, then the key); True if truncated.

        Rows read before (at or above ``low``) are paged past, so a transaction left open
        for long (which holds ``low`` back) never hides the rows committed after it.
        """
        fresh: list[Any] = []
        after: tuple[int, int] | None = None
        while True:
            rows = self._page(store, xmin, after, chunk)
            for row in rows:
                key, order = int(row[-2]), int(row[-1])
                if key not in self.seen:
                    self.seen[key] = order
                    fresh.append(row[:-1])
            if rows:
                after = (int(rows[-1][-1]), int(rows[-1][-2]))
            if len(rows) < chunk or len(fresh) >= chunk:
                break
        more = len(rows) >= chunk
        self._advance(xmin, after[0] if after else None, more)
        return fresh, more

    def _page(
        self, store: Store, xmin: int | None, after: tuple[int, int] | None, chunk: int
    ) -> list[Any]:
        """Up to ``chunk`` rows from ``low`` on, past ``after`` (order, key), in order."""
        if xmin is None:  # DuckDB: committed keys only grow
            start = self.low if after is None else after[1] + 1
            return store.fetchall(
                f"SELECT {self.columns}, {self.key}, {self.key} FROM {self.table} "
                f"WHERE {self.key} >= ? ORDER BY {self.key} LIMIT ?",
                [start, chunk],
            )
        past = ""
        params: list[Any] = [str(self.low)]
        if after is not None:
            past = f" AND (xid, {self.key}) > (?::xid8, ?)"
            params += [str(after[0]), after[1]]
        return store.fetchall(
            f"SELECT {self.columns}, {self.key}, xid::text FROM {self.table} "
            f"WHERE xid >= ?::xid8{past} ORDER BY xid, {self.key} LIMIT ?",
            [*params, chunk],
        )

    def _advance(self, xmin: int | None, last: int | None, more: bool) -> None:
        if xmin is None:
            # rows of one key are one row: everything up to ``last`` was read
            target = self.low if last is None else last + 1
        elif more and last is not None:
            target = min(xmin, last)  # rows with the last xid may continue past the chunk
        else:
            target = xmin
        if target > self.low:
            self.low = target
            self.seen = {k: o for k, o in self.seen.items() if o >= target}


class ChangeFeed:
    """Reads the events and merges other writers committed, each once, in commit order.

    Args:
        store: A store of its own (on PostgreSQL the feed's reads hold one snapshot in a
            transaction; a server gives it a second connection).
        chunk: Rows read at most per table and call.
        owned: Close ``store`` with the feed (a connection opened for it).

    Call :meth:`start` once (it returns nothing of what is stored so far), or
    :meth:`resume` from a saved :meth:`state`, then :meth:`read` (or :meth:`read_rows`)
    repeatedly.
    """

    def __init__(
        self,
        store: Store,
        chunk: int = CHUNK,
        *,
        owned: bool = False,
        event_columns: str = EVENT_COLUMNS.removesuffix(", seq"),
    ) -> None:
        self.store = store
        self.owned = owned
        self.listening = False
        self.chunk = chunk
        self.postgres = store.dialect == "postgres"
        columns = "from_profile, into_profile"
        self._events = _Stream("events", "seq", event_columns)
        self._merges = _Stream("profile_merges", "id", columns)

    def _listen(self) -> None:
        listen = getattr(self.store, "listen", None)
        if listen is not None and not self.listening:  # PostgreSQL: writers notify at commit
            listen()
            self.listening = True

    def resume(self, state: dict[str, Any] | None, *, listen: bool = True) -> None:
        """Continue from a :meth:`state` saved earlier; from the first row when None.

        A process that must not miss a row across restarts (the Kafka relay) saves the
        state once what it read is safely handed on, and resumes from it. ``listen``:
        be notified of commits (for :meth:`wait`; the connection must be the feed's own).
        """
        if listen:
            self._listen()
        for name, stream in (("events", self._events), ("merges", self._merges)):
            low, seen = (state or {}).get(name, (0, {}))
            stream.low = int(low)
            stream.seen = {int(k): int(o) for k, o in dict(seen).items()}

    def state(self) -> dict[str, Any]:
        """The position as a JSON-ready dict, for :meth:`resume` (rows read are not in it)."""
        return {
            name: [stream.low, {str(k): o for k, o in stream.seen.items()}]
            for name, stream in (("events", self._events), ("merges", self._merges))
        }

    def start(self, *, listen: bool = True) -> None:
        """Begin after everything committed now (those are caught up another way).

        ``listen``: be notified of commits (for :meth:`wait`; the connection must be the
        feed's own).
        """
        if listen:
            self._listen()
        with self.store.transaction():
            xmin = self._xmin()
            for stream in (self._events, self._merges):
                if xmin is None:
                    top = self.store.fetchall(f"SELECT max({stream.key}) FROM {stream.table}")
                    stream.low = int(top[0][0] or 0) + 1
                else:
                    stream.low = xmin
                    rows = self.store.fetchall(
                        f"SELECT {stream.key}, xid::text FROM {stream.table} WHERE xid >= ?::xid8",
                        [str(xmin)],
                    )
                    stream.seen = {int(k): int(o) for k, o in rows}

    def read(self) -> FeedBatch:
        """The events and merges committed since the last read (none twice, none skipped)."""
        rows, merges, more = self.read_rows()
        events = [row_to_event(row) for row in rows]
        found = [FeedMerge(str(a), str(b)) for a, b, _ in merges]
        return FeedBatch(events, found, more)

    def read_rows(self) -> tuple[list[Any], list[Any], bool]:
        """What :meth:`read` returns, undecoded.

        Returns:
            Event rows (the feed's columns, then ``seq``), merge rows (``from_profile,
            into_profile, id``) and whether a table had more rows than one read returns.
        """
        with self.store.transaction():
            xmin = self._xmin()
            merges, more_merges = self._merges.read(self.store, xmin, self.chunk)
            rows, more_events = self._events.read(self.store, xmin, self.chunk)
        return rows, merges, more_events or more_merges

    def delivered(self) -> EventBound | None:
        """The stored events the reads so far returned or started after (None on DuckDB).

        What a rebuild of a profile may fold (the real-time engine's ``process``): on
        PostgreSQL the events of transactions below the position and those read at or
        above it, never one committed after the last read, whatever its ``seq``. On
        DuckDB a batch's highest ``seq`` decides (commits follow ``seq`` order).
        """
        if not self.postgres:
            return None
        stream = self._events
        return CommitPosition(stream.low, tuple(sorted(stream.seen))).bound()

    def wait(self, timeout: float) -> Heard | None:
        """Wait up to ``timeout`` seconds for a writer's commit notice (PostgreSQL).

        A notice only hastens the next read: a missed one costs at most ``timeout``.

        Returns:
            None when no notice came.
        """
        if not self.listening:
            return None
        notices = self.store.wait_notices(timeout)  # type: ignore[attr-defined]
        return Heard(frozenset(n.pid for n in notices if n.derived)) if notices else None

    def backlog(self) -> int:
        """Events committed and not yet read (counted by a query; for the lag figure)."""
        if self.postgres:
            found = self.store.fetchall(
                "SELECT count(*) FROM events WHERE xid >= ?::xid8", [str(self._events.low)]
            )
            return max(0, int(found[0][0]) - len(self._events.seen))
        found = self.store.fetchall(
            "SELECT count(*) FROM events WHERE seq >= ?", [self._events.low]
        )
        return int(found[0][0])

    @property
    def position(self) -> dict[str, Any]:
        """Where the feed stands (for status output): the low marks and keys held."""
        return {
            "events_low": self._events.low,
            "merges_low": self._merges.low,
            "held": len(self._events.seen) + len(self._merges.seen),
        }

    def close(self) -> None:
        """Close the feed's store if it was opened for the feed."""
        if self.owned:
            self.store.close()

    def _xmin(self) -> int | None:
        """PostgreSQL: the snapshot's xmin (the transaction's first statement); else None."""
        if not self.postgres:
            return None
        self.store.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        found = self.store.fetchall("SELECT pg_snapshot_xmin(pg_current_snapshot())::text")
        return int(found[0][0])


def merge_keys(merges: Sequence[Any]) -> set[tuple[str, str]]:
    """The (from, into) pairs of merges, to tell a server's own merges from others'."""
    return {(m.from_profile, m.into_profile) for m in merges}
