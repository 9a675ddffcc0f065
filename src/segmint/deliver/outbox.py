"""A durable outbox: rows written with the producer's transaction, delivered with retries.

A producer (the membership webhooks today; journeys later) writes one row per message
inside the transaction that records why the message exists, so a message is never lost
nor invented by a crash. A dispatcher later hands each due row to a sender and records
the outcome::

    pending ─► delivered
       │ ▲
       │ └── failed, marked Transient, attempts left: next_attempt_at = as_of + backoff
       ├─► dead (with last_error)   failed, not marked Transient, or attempts used up
       └─► dropped (with last_error) the person it concerns was erased (ErasedProfileError)

Retrying is decided by :meth:`~segmint.deliver.retry.RetryPolicy.retryable`, which looks
only at the error's Transient / Terminal mark. Delivery is at least once: a crash between a
send and its mark sends the row again, so receivers de-duplicate by the row id.

An outbox table has these columns (its migration creates it)::

    id (serial), <destination> TEXT, payload TEXT, status TEXT, attempts INTEGER,
    next_attempt_at TIMESTAMP, last_error TEXT, created_at TIMESTAMP, delivered_at TIMESTAMP

Every decision takes ``as_of`` from the caller, so tests drive an outbox with a fixed clock.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from segmint.deliver.retry import RetryPolicy
from segmint.errors import SegmintError
from segmint.privacy.errors import ErasedProfileError
from segmint.store import Store, from_store_time, utcnow_naive

_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]*")


@dataclass(frozen=True)
class OutboxRow:
    """One due message.

    Attributes:
        id: The row id (receivers de-duplicate by it).
        destination: Where it goes (a webhook's name, a journey step …).
        payload: The message body.
        attempts: Attempts already made.
    """

    id: int
    destination: str
    payload: str
    attempts: int


Sender = Callable[[OutboxRow, datetime], None]
"""Delivers one row at an instant; raises an error marked Transient or Terminal on failure."""


@dataclass
class OutboxReport:
    """What one :meth:`Outbox.deliver_due` pass did."""

    delivered: int = 0
    retried: int = 0
    dead: int = 0
    dropped: int = 0


class Outbox:
    """The rows of one outbox table.

    Args:
        store: The store holding the table.
        table: The table's name.
        destination: The name of its destination column.

    Raises:
        ValueError: If a name is not a plain lower-case SQL identifier.
    """

    def __init__(self, store: Store, table: str, destination: str = "destination") -> None:
        for name in (table, destination):
            if not _IDENTIFIER.fullmatch(name):
                raise ValueError(f"not a plain SQL identifier: {name!r}")
        self.store = store
        self.table = table
        self.destination = destination

    def enqueue(self, messages: Iterable[tuple[str, str]], as_of: datetime) -> int:
        """Add (destination, payload) rows due at ``as_of``; return how many.

        Call it inside the transaction that records why the messages exist.
        """
        at = utcnow_naive(as_of)
        rows = [(dest, payload, "pending", 0, at, None, at) for dest, payload in messages]
        self.store.executemany(
            f"INSERT INTO {self.table} ({self.destination}, payload, status, attempts, "
            "next_attempt_at, last_error, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        return len(rows)

    def due(self, as_of: datetime, limit: int = 100) -> list[OutboxRow]:
        """Return up to ``limit`` pending rows due at ``as_of``, the earliest first."""
        rows = self.store.fetchall(
            f"SELECT id, {self.destination}, payload, attempts FROM {self.table} "
            "WHERE status = 'pending' AND next_attempt_at <= ? "
            f"ORDER BY next_attempt_at, id LIMIT {int(limit)}",
            [utcnow_naive(as_of)],
        )
        return [OutboxRow(int(i), d, p, int(a)) for i, d, p, a in rows]

    def deliver_due(
        self,
        as_of: datetime,
        send: Sender,
        policy: Callable[[str], RetryPolicy],
        limit: int = 100,
    ) -> OutboxReport:
        """Try each row due at ``as_of`` once and record the outcome.

        Args:
            as_of: The instant of the pass (what is due; the next attempt's base).
            send: Delivers one row; raises an error marked Transient or Terminal (an
                unmarked error counts as terminal: recorded and dead-lettered, so one
                broken row cannot block the rows behind it).
            policy: The retry policy for a destination.
            limit: The most rows tried in this pass.

        Returns:
            Counts of rows delivered, left to retry, dead-lettered, and dropped (the
            sender raised :class:`~segmint.privacy.errors.ErasedProfileError`: the person
            the row concerns was erased, so it is neither sent nor retried).
        """
        report = OutboxReport()
        for row in self.due(as_of, limit):
            try:
                send(row, as_of)
            except ErasedProfileError as exc:  # nobody to send it about any more
                self._mark(row.id, "dropped", row.attempts, f"dropped: {exc}", as_of)
                report.dropped += 1
                continue
            except Exception as exc:
                self._failed(row, exc, policy(row.destination), as_of, report)
                continue
            self._mark(row.id, "delivered", row.attempts + 1, None, as_of, delivered=True)
            report.delivered += 1
        return report

    def deliver_every_due(
        self,
        as_of: datetime,
        send: Sender,
        policy: Callable[[str], RetryPolicy],
        batch: int = 100,
    ) -> OutboxReport:
        """Try every row due at ``as_of`` once, in passes of ``batch`` rows.

        A row tried leaves what is due at ``as_of`` (delivered, dead, dropped, or pending
        with its next attempt later), so the passes end once the rows due at the start
        were each tried once (see :meth:`deliver_due` for the arguments).
        """
        total = OutboxReport()
        left = self.due_count(as_of)
        while left > 0:
            report = self.deliver_due(as_of, send, policy, min(batch, left))
            tried = report.delivered + report.retried + report.dead + report.dropped
            if not tried:
                break
            left -= tried
            total.delivered += report.delivered
            total.retried += report.retried
            total.dead += report.dead
            total.dropped += report.dropped
        return total

    def due_count(self, as_of: datetime) -> int:
        """How many pending rows are due at ``as_of``."""
        rows = self.store.fetchall(
            f"SELECT count(*) FROM {self.table} WHERE status = 'pending' AND next_attempt_at <= ?",
            [utcnow_naive(as_of)],
        )
        return int(rows[0][0])

    def _failed(
        self, row: OutboxRow, exc: Exception, policy: RetryPolicy, as_of: datetime,
        report: OutboxReport,
    ) -> None:  # fmt: skip
        attempts, error = row.attempts + 1, _describe(exc)
        if policy.retryable(exc, attempts):
            self._mark(row.id, "pending", attempts, error, as_of + policy.backoff(attempts))
            report.retried += 1
        else:
            self._mark(row.id, "dead", attempts, error, as_of)
            report.dead += 1

    def _mark(
        self, row_id: int, status: str, attempts: int, error: str | None, at: datetime,
        *, delivered: bool = False,
    ) -> None:  # fmt: skip
        stamp = utcnow_naive(at)
        self.store.execute(
            f"UPDATE {self.table} SET status = ?, attempts = ?, last_error = ?, "
            "next_attempt_at = ?, delivered_at = ? WHERE id = ?",
            [status, attempts, error, stamp, stamp if delivered else None, row_id],
        )

    def status(self, dead_limit: int = 20) -> dict[str, Any]:
        """Summarise the table: per destination, counts by status and the next attempt due.

        Returns:
            ``{"destinations": {name: {"pending", "delivered", "dead", "next_attempt_at"?}},
            "dead_letters": [{"id", "destination", "attempts", "last_error", "payload"}]}``
            with the latest ``dead_limit`` dead rows, newest first.
        """
        found: dict[str, dict[str, Any]] = {}
        rows = self.store.fetchall(
            f"SELECT {self.destination}, status, count(*), min(next_attempt_at) "
            f"FROM {self.table} GROUP BY 1, 2 ORDER BY 1, 2"
        )
        for name, status, count, first_due in rows:
            entry = found.setdefault(name, {"pending": 0, "delivered": 0, "dead": 0})
            entry[status] = int(count)
            if status == "pending":
                entry["next_attempt_at"] = from_store_time(first_due)
        dead = self.store.fetchall(
            f"SELECT id, {self.destination}, attempts, last_error, payload FROM {self.table} "
            f"WHERE status = 'dead' ORDER BY id DESC LIMIT {int(dead_limit)}"
        )
        letters = [
            {"id": int(i), "destination": d, "attempts": int(a), "last_error": e, "payload": p}
            for i, d, a, e, p in dead
        ]
        return {"destinations": found, "dead_letters": letters}


def _describe(exc: Exception) -> str:
    """Our errors say what went wrong; anything else is named by its class too."""
    return str(exc) if isinstance(exc, SegmintError) else f"{type(exc).__name__}: {exc}"
