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
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import orjson

from segmint.store import Store, read_meta, write_meta
from segmint.traits.state import EventBound

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

    def missing(self) -> EventBound:
        """The stored events not in: those a catch-up from this position applies."""
        condition = "((xid >= ?::xid8 AND seq <> ALL(?::bigint[])) OR message_id = ANY(?::text[]))"
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
