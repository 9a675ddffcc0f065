"""Which stored events the saved trait state reflects, as a commit-order position (PostgreSQL).

On PostgreSQL ``seq`` order is not commit order (see :mod:`segmint.membership.feed`): a
transaction may draw ``seq`` 100, another 101 and commit first. "The events up to ``seq``
101" then says nothing true about what a real-time engine applied: 100 may commit after
the engine saved 101, and a catch-up reading ``seq > 101`` would never apply it. A server
engine therefore also saves (:data:`APPLIED_KEY`) the position of the commit-ordered feed
it applied events from: every event of a transaction below ``low``, and the events with
the listed ``seq``, except the listed message ids (stored and read, not applied yet). A
starting engine catches up on every stored event outside it (:meth:`CommitPosition.missing`).
DuckDB commits in ``seq`` order and saves only ``seq`` (:data:`~segmint.traits.SEQ_KEY`).

Transaction ids belong to one cluster: a store dumped and restored into another (a new
server, a staging copy) is made readable in commit order again by :func:`adopt_restored`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import orjson

from segmint.store import Store, read_meta, write_meta
from segmint.traits.state import EventBound

log = logging.getLogger(__name__)

RESTORED_XID = 3
"""The transaction id :func:`adopt_restored` gives every restored row: below every snapshot
of the new cluster, as for a row committed long ago (3 is the first normal id)."""
RELAY_PREFIX = "kafka.relay.feed:"
"""Meta keys of the Kafka relay's saved feed positions (:mod:`segmint.scale.kafka`)."""
APPLIED_KEY = "trait_state.applied"
"""Meta key (PostgreSQL): the :class:`CommitPosition` the stored trait state reflects, as
JSON (written with each real-time checkpoint; absent: :data:`~segmint.traits.SEQ_KEY`
decides, as on DuckDB)."""


@dataclass(frozen=True)
class CommitPosition:
    """The events a commit-ordered reader of ``events`` delivered and its engine applied.

    Attributes:
        low: A transaction id: every event of a transaction below it is in.
        seen: The ``seq`` of events at or above ``low`` that are in.
        unapplied: Message ids of events within ``low`` and ``seen`` that are not in (the
            server's own events, stored and read, not yet through its listener).
    """

    low: int
    seen: tuple[int, ...] = ()
    unapplied: tuple[str, ...] = ()

    def bound(self) -> EventBound:
        """The events in, as a fold's bound (carrying this position)."""
        condition = "(xid < ?::xid8 OR seq = ANY(?::bigint[]))"
        params: tuple[object, ...] = (str(self.low), list(self.seen))
        if self.unapplied:
            condition += " AND message_id <> ALL(?::text[])"
            params += (list(self.unapplied),)
        return EventBound(condition, params, self)

    def missing(self, alias: str = "") -> EventBound:
        """The stored events not in: those a catch-up from this position applies.

        ``alias``: the name the query gives ``events`` (its columns are then qualified).
        """
        a = f"{alias}." if alias else ""
        condition = (
            f"(({a}xid >= ?::xid8 AND {a}seq <> ALL(?::bigint[])) "
            f"OR {a}message_id = ANY(?::text[]))"
        )
        return EventBound(condition, (str(self.low), list(self.seen), list(self.unapplied)))

    def dumps(self) -> str:
        """The position as JSON (``seen`` as ranges of consecutive ``seq``)."""
        body = {"low": self.low, "seen": list(_ranges(self.seen)), "unapplied": self.unapplied}
        return orjson.dumps(body).decode()

    @classmethod
    def loads(cls, text: str) -> CommitPosition:
        """Read a position written by :meth:`dumps`."""
        body = orjson.loads(text)
        seen = tuple(s for a, b in body["seen"] for s in range(int(a), int(b) + 1))
        return cls(int(body["low"]), seen, tuple(str(m) for m in body["unapplied"]))


def read_position(store: Store) -> CommitPosition | None:
    """The saved position of the stored trait state (None: none saved, or DuckDB)."""
    text = read_meta(store, APPLIED_KEY)
    return None if text is None else CommitPosition.loads(text)


def write_position(store: Store, position: CommitPosition | None) -> None:
    """Save ``position`` (None: forget the saved one; ``seq`` alone decides then)."""
    if position is None:
        store.execute("DELETE FROM meta WHERE key = ?", [APPLIED_KEY])
    else:
        write_meta(store, APPLIED_KEY, position.dumps())


def _ranges(seqs: Iterable[int]) -> Iterator[tuple[int, int]]:
    """Sorted ``seqs`` as (first, last) runs of consecutive numbers."""
    start = end = None
    for seq in sorted(seqs):
        if end is not None and seq == end + 1:
            end = seq
            continue
        if start is not None and end is not None:
            yield start, end
        start = end = seq
    if start is not None and end is not None:
        yield start, end


def adopt_restored(store: Store) -> int:
    """PostgreSQL: re-number the transaction ids of a store restored into another cluster.

    ``events.xid`` and ``profile_merges.xid`` hold the id of the transaction that wrote
    each row, in the cluster that wrote it. A dump restored into another cluster keeps
    them, while the new cluster's ids may be lower: rows written from then on would sort
    before the restored ones, and a saved position would take them for applied (never
    applying them). A stored id at or above the current snapshot's ``xmax`` (no
    transaction of this cluster has it yet) tells that case. Then, with writers held off,
    every such row gets :data:`RESTORED_XID`; the saved position is replaced by one that
    still names the stored events the state lacks (those outside the old position, and
    any written since the restore); the Kafka relay's saved feed positions are dropped
    (it publishes again from its start; workers apply each message id once), and the
    Kafka workers' watermarks keep their ``seq`` and lose their snapshot (one of the old
    cluster, which would take every event written since for applied).

    Called before a server's feed starts and by every catch-up; cheap when there is
    nothing to do (one indexed lookup per table).

    Returns:
        The number of rows re-numbered (0: nothing to do, or not PostgreSQL).
    """
    if store.dialect != "postgres" or not _restored(store):
        return 0
    with store.transaction():
        store.execute("LOCK TABLE events, profile_merges IN EXCLUSIVE MODE")  # writers wait
        if not _restored(store):  # another process adopted it meanwhile
            return 0
        xmin, xmax = (int(v) for v in store.fetchall(
            "SELECT pg_snapshot_xmin(pg_current_snapshot())::text, "
            "pg_snapshot_xmax(pg_current_snapshot())::text"
        )[0])  # fmt: skip
        saved = read_position(store)
        lacking: set[str] = set()
        if saved is not None:
            missing = saved.missing()
            lacking.update(str(row[0]) for row in store.fetchall(
                f"SELECT message_id FROM events WHERE xid >= ?::xid8 AND ({missing.condition})",
                [str(xmax), *missing.params],
            ))  # fmt: skip
            # written in this cluster since the restore: never applied under the old position
            lacking.update(str(row[0]) for row in store.fetchall(
                "SELECT message_id FROM events WHERE xid < ?::xid8 AND xid <> ?::xid8",
                [str(xmax), str(RESTORED_XID)],
            ))  # fmt: skip
        count = 0
        for table in ("events", "profile_merges"):
            found = store.fetchall(
                f"UPDATE {table} SET xid = ?::xid8 WHERE xid >= ?::xid8 RETURNING 1",
                [str(RESTORED_XID), str(xmax)],
            )
            count += len(found)
        if saved is not None:
            write_position(store, CommitPosition(xmin, (), tuple(sorted(lacking))))
        store.execute("DELETE FROM meta WHERE key LIKE ?", [RELAY_PREFIX + "%"])
        store.execute("UPDATE worker_applied SET snap = NULL WHERE snap IS NOT NULL")
    log.warning(
        "this store was restored from another PostgreSQL cluster: %d events and merges "
        "were given transaction id %d so that what is written from now on is read in "
        "commit order", count, RESTORED_XID,
    )  # fmt: skip
    return count


def _restored(store: Store) -> bool:
    """Whether a stored event or merge has a transaction id this cluster has not reached."""
    ahead = "xid >= pg_snapshot_xmax(pg_current_snapshot())"
    row = store.fetchall(
        f"SELECT EXISTS (SELECT 1 FROM events WHERE {ahead}) "
        f"OR EXISTS (SELECT 1 FROM profile_merges WHERE {ahead})"
    )[0]
    return bool(row[0])
