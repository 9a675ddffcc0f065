"""Journey instances and their history, in the store (tables of migration 20).

An instance is one profile's passage through one journey (``entry`` counts its entries):
its current ``step``, the instant the step is ``due``, and since when it is on that step
(``step_since``: waits and timeouts count from it). Every transition, skip, delay and exit
is a ``journey_history`` row written in the transaction that moves the instance, so the
history is exactly what happened and the counts of ``journeys show`` are GROUP BYs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from segmint.clock import ensure_utc
from segmint.common import in_lists
from segmint.store import Store, from_store_time, utcnow_naive
from segmint.store.bulk import insert_rows, upsert_rows

ACTIVE = "active"
DONE = "done"
_COLUMNS = (
    "instance_id, journey, profile_id, entry, step, status, due_at, step_since, entered_at, "
    "exit_reason"
)


def instance_id(journey: str, profile_id: str, entry: int) -> str:
    """The id of a profile's ``entry``-th passage through ``journey``."""
    return f"{journey}:{profile_id}:{entry}"


@dataclass
class Instance:
    """One profile in one journey.

    Attributes:
        instance_id: ``journey:profile:entry``.
        journey: The journey's name.
        profile_id: The profile.
        entry: 1 for the first entry, 2 for a re-entry …
        step: The current step's name (None once done).
        status: ``active`` or ``done``.
        due: When the current step is next looked at.
        step_since: When the instance reached the current step.
        entered_at: When it entered the journey.
        exit_reason: Why it ended (``completed``, ``exit_condition``, an ``exit`` step's
            reason, ``definition_changed`` …).
    """

    instance_id: str
    journey: str
    profile_id: str
    entry: int
    step: str | None
    status: str
    due: datetime | None
    step_since: datetime | None
    entered_at: datetime
    exit_reason: str | None = None


@dataclass(frozen=True)
class HistoryRow:
    """One line of an instance's history: a step taken, a skip, a delay, an exit."""

    instance_id: str
    journey: str
    step: str | None
    outcome: str
    reason: str | None
    at: datetime


def _aware(value: object) -> datetime | None:
    if value is None:
        return None
    found = from_store_time(value)  # type: ignore[arg-type]
    return ensure_utc(found) if found is not None else None


def _row(row: Sequence[object]) -> Instance:
    iid, journey, pid, entry, step, status, due, since, entered, reason = row
    entered_at = _aware(entered)
    assert entered_at is not None  # noqa: S101 (NOT NULL)
    return Instance(
        str(iid), str(journey), str(pid), int(entry), step, str(status),  # type: ignore[arg-type, call-overload]
        _aware(due), _aware(since), entered_at, reason,  # type: ignore[arg-type]
    )  # fmt: skip


class Instances:
    """Reads and writes journey instances and history.

    Args:
        store: The store holding the tables.
    """

    def __init__(self, store: Store) -> None:
        self.store = store

    def due(self, until: datetime, limit: int) -> list[Instance]:
        """Active instances due at or before ``until``, earliest first."""
        rows = self.store.fetchall(
            f"SELECT {_COLUMNS} FROM journey_instances WHERE status = 'active' "
            f"AND due_at <= ? ORDER BY due_at, instance_id LIMIT {int(limit)}",
            [utcnow_naive(until)],
        )
        return [_row(r) for r in rows]

    def next_due(self) -> datetime | None:
        """The earliest due instant of an active instance."""
        rows = self.store.fetchall(
            "SELECT min(due_at) FROM journey_instances WHERE status = 'active'"
        )
        return _aware(rows[0][0]) if rows else None

    def of_profiles(self, profile_ids: Iterable[str], *, active: bool = True) -> list[Instance]:
        """The (active) instances of these profiles."""
        out: list[Instance] = []
        status = "AND status = 'active'" if active else ""
        for marks, chunk in in_lists(sorted(set(profile_ids))):
            out += [
                _row(r)
                for r in self.store.fetchall(
                    f"SELECT {_COLUMNS} FROM journey_instances WHERE profile_id IN ({marks}) "
                    f"{status} ORDER BY entered_at, instance_id",
                    list(chunk),
                )
            ]
        return out

    def entries(self, journey: str, profile_ids: Iterable[str]) -> dict[str, tuple[int, datetime]]:
        """Per profile, its latest entry number and instant in ``journey``."""
        out: dict[str, tuple[int, datetime]] = {}
        for marks, chunk in in_lists(sorted(set(profile_ids))):
            for pid, entry, at in self.store.fetchall(
                "SELECT profile_id, entry, entered_at FROM journey_instances "
                f"WHERE journey = ? AND profile_id IN ({marks})",
                [journey, *chunk],
            ):
                when = _aware(at)
                assert when is not None  # noqa: S101
                if pid not in out or int(entry) > out[pid][0]:
                    out[pid] = (int(entry), when)
        return out

    def refused(self, rows: Iterable[tuple[str, datetime]]) -> set[tuple[str, datetime]]:
        """Which of these (instance id, instant) pairs have a ``refused`` history row."""
        wanted = set(rows)
        found: set[tuple[str, datetime]] = set()
        for marks, chunk in in_lists(sorted({iid for iid, _ in wanted})):
            for iid, at in self.store.fetchall(
                "SELECT instance_id, occurred_at FROM journey_history WHERE outcome = "
                f"'refused' AND instance_id IN ({marks})",
                list(chunk),
            ):
                when = _aware(at)
                if when is not None and (str(iid), when) in wanted:
                    found.add((str(iid), when))
        return found

    def write(self, instances: Sequence[Instance], history: Sequence[HistoryRow]) -> None:
        """Upsert ``instances`` and append ``history`` (call inside a transaction)."""
        upsert_rows(
            self.store, "journey_instances", _COLUMNS.split(", "), ["instance_id"],
            [
                (
                    i.instance_id, i.journey, i.profile_id, i.entry, i.step, i.status,
                    utcnow_naive(i.due) if i.due else None,
                    utcnow_naive(i.step_since) if i.step_since else None,
                    utcnow_naive(i.entered_at), i.exit_reason,
                )
                for i in instances
            ],
        )  # fmt: skip
        insert_rows(
            self.store, "journey_history",
            ["instance_id", "journey", "step", "outcome", "reason", "occurred_at"],
            [(h.instance_id, h.journey, h.step, h.outcome, h.reason, utcnow_naive(h.at))
             for h in history],
        )  # fmt: skip

    def history(self, instance: str) -> list[HistoryRow]:
        """One instance's history, in order."""
        rows = self.store.fetchall(
            "SELECT instance_id, journey, step, outcome, reason, occurred_at FROM journey_history "
            "WHERE instance_id = ? ORDER BY id",
            [instance],
        )
        out = []
        for iid, journey, step, outcome, reason, at in rows:
            when = _aware(at)
            assert when is not None  # noqa: S101
            out.append(HistoryRow(iid, journey, step, outcome, reason, when))
        return out
