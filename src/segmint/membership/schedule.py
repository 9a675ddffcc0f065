"""The schedule of time transitions: for each profile, when its memberships may next change.

A rule such as ``last_purchase_at >= now() - interval '30 days'`` turns false with no new
event. After each evaluation the engine stores the profile's next possible change instant
in table ``schedule``; :meth:`Schedule.due` hands back every profile whose instant has come,
oldest first. Because the schedule lives in the store, a restarted engine still finds
(and fires, at their own instants) the transitions that fell due while it was down.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from segmint.clock import ensure_utc
from segmint.store import Store, from_store_time, utcnow_naive


class Schedule:
    """Table ``schedule``: profile → the instant it must be re-evaluated.

    Args:
        store: The store holding the table.
    """

    def __init__(self, store: Store) -> None:
        self.store = store

    def set_many(self, due: Mapping[str, datetime | None]) -> None:
        """Set (or, for None, clear) the due instant of each profile, in one transaction."""
        if not due:
            return
        ids = [(pid,) for pid in due]
        rows = [(pid, utcnow_naive(at)) for pid, at in due.items() if at is not None]
        with self.store.transaction():
            self.store.executemany("DELETE FROM schedule WHERE profile_id = ?", ids)
            self.store.executemany("INSERT INTO schedule (profile_id, due_at) VALUES (?, ?)", rows)

    def set(self, profile_id: str, at: datetime | None) -> None:
        """Set (or clear) one profile's due instant."""
        self.set_many({profile_id: at})

    def get(self, profile_id: str) -> datetime | None:
        """Return one profile's due instant, or None if nothing is scheduled."""
        rows = self.store.fetchall("SELECT due_at FROM schedule WHERE profile_id = ?", [profile_id])
        return _aware(rows[0][0]) if rows else None

    def due(self, as_of: datetime, limit: int | None = None) -> list[tuple[str, datetime]]:
        """Return the profiles due at or before ``as_of``, earliest first."""
        sql = (
            "SELECT profile_id, due_at FROM schedule WHERE due_at <= ? ORDER BY due_at, profile_id"
        )
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        rows = self.store.fetchall(sql, [utcnow_naive(as_of)])
        return [(pid, _aware(at)) for pid, at in rows]

    def next_due(self) -> datetime | None:
        """Return the earliest scheduled instant, or None if the schedule is empty."""
        rows = self.store.fetchall("SELECT min(due_at) FROM schedule")
        return _aware(rows[0][0]) if rows and rows[0][0] is not None else None

    def replace_all(self, due: Mapping[str, datetime]) -> None:
        """Replace the whole schedule (after a batch refresh)."""
        rows = [(pid, utcnow_naive(at)) for pid, at in due.items()]
        with self.store.transaction():
            self.store.execute("DELETE FROM schedule")
            self.store.executemany("INSERT INTO schedule (profile_id, due_at) VALUES (?, ?)", rows)

    def count(self) -> int:
        """Return how many profiles are scheduled."""
        return int(self.store.fetchall("SELECT count(*) FROM schedule")[0][0])


def _aware(value: datetime) -> datetime:
    return ensure_utc(from_store_time(value) or value)
