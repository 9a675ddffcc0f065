"""Membership changes: the enter/exit records, and writing them with the memberships.

A change's ``cause`` is a small JSON object saying why it happened::

    {"source": "event" | "time" | "refresh" | "merge" | "definition_removed",
     "rule": "lifetime_value >= 1000",        # None for a group's default segment
     "traits": ["lifetime_value"],            # the traits the rule reads that changed
     "message_id": "…"}                       # the event, for source "event"

A segment deleted from ``segmint.yaml`` (or renamed: a removal and an addition) exits its
members with source ``definition_removed``, its last recorded rule and no traits
(:func:`retire_removed`, and the batch refresh and the real-time engine on their own paths).

Memberships and their changes are always written together, in one transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence, Set
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import orjson

from segmint.clock import ensure_utc
from segmint.common import in_lists
from segmint.store import Store, from_store_time, utcnow_naive
from segmint.store.bulk import delete_keys, insert_rows

ChangeKind = Literal["enter", "exit"]
CauseFor = Callable[[str, ChangeKind], Mapping[str, Any]]
"""Builds the cause of a change from the segment name and the kind of change."""


@dataclass(frozen=True, slots=True)
class MembershipChange:
    """One profile entering or leaving one segment.

    Attributes:
        segment: The segment.
        profile_id: The profile.
        change: ``enter`` or ``exit``.
        occurred_at: The instant of the change (aware UTC).
        cause: Why it happened (see the module docstring).
        id: The store's id of the change, once written and read back.
    """

    segment: str
    profile_id: str
    change: ChangeKind
    occurred_at: datetime
    cause: Mapping[str, Any] = field(default_factory=dict)
    id: int | None = None

    def to_json(self) -> dict[str, Any]:
        """Return the change as a JSON-ready dict (the webhook and stream payload)."""
        return {
            "id": self.id,
            "type": f"segment.{self.change}",
            "segment": self.segment,
            "profile_id": self.profile_id,
            "change": self.change,
            "occurred_at": self.occurred_at.isoformat(),
            "cause": dict(self.cause),
        }


def diff_members(
    profile_id: str, old: Set[str], new: Set[str], at: datetime, cause_for: CauseFor
) -> list[MembershipChange]:
    """Return the changes that turn ``old`` memberships into ``new`` ones at ``at``.

    Exits come before enters, each sorted by segment name, so the order is reproducible.
    """
    exits = [
        MembershipChange(s, profile_id, "exit", at, cause_for(s, "exit")) for s in sorted(old - new)
    ]
    enters = [
        MembershipChange(s, profile_id, "enter", at, cause_for(s, "enter"))
        for s in sorted(new - old)
    ]
    return exits + enters


def write_changes(store: Store, changes: Sequence[MembershipChange]) -> None:
    """Apply ``changes`` to ``memberships`` and append them to ``membership_changes``.

    Runs in one transaction (joining the caller's, if any).
    """
    if not changes:
        return
    naive: dict[datetime, datetime] = {}  # a batch's changes share a few instants
    for c in changes:
        if c.occurred_at not in naive:
            naive[c.occurred_at] = utcnow_naive(c.occurred_at)
    # One step may enter and leave a segment (a jump over both instants): the last change
    # of each pair, in order, decides whether the pair stays; only a pair whose first
    # change is an exit has a row to delete (an enter means it had none).
    last: dict[tuple[str, str], MembershipChange] = {}
    held: list[tuple[str, str]] = []
    for c in changes:
        key = (c.segment, c.profile_id)
        if key not in last and c.change == "exit":
            held.append(key)
        last[key] = c
    enters = [
        (c.segment, c.profile_id, naive[c.occurred_at])
        for c in last.values()
        if c.change == "enter"
    ]
    log = [
        (c.segment, c.profile_id, c.change, naive[c.occurred_at], _dumps(c.cause)) for c in changes
    ]
    keys = ("segment", "profile_id")
    with store.transaction():
        _delete_members(store, held)
        insert_rows(store, "memberships", (*keys, "entered_at"), enters)
        insert_rows(store, "membership_changes", (*keys, "change", "occurred_at", "cause"), log)


FEW_PROFILES = 8


def _delete_members(store: Store, pairs: Sequence[tuple[str, str]]) -> None:
    """Delete (segment, profile_id) pairs from ``memberships`` (none: nothing is run).

    On DuckDB, for a few profiles (one event): find the rows through the profile_id index,
    then delete them by row id (about 1 ms; a filter on both columns scans the table, 2 ms
    at 600k rows, and more with more). Otherwise one set-based statement for the batch.
    """
    if store.dialect != "duckdb" or len({pid for _, pid in pairs}) > FEW_PROFILES:
        delete_keys(store, "memberships", ("segment", "profile_id"), pairs)
        return
    by_profile: dict[str, set[str]] = {}
    for segment, pid in pairs:
        by_profile.setdefault(pid, set()).add(segment)
    for pid, segments in by_profile.items():
        rows = store.fetchall("SELECT rowid, segment FROM memberships WHERE profile_id = ?", [pid])
        found = [row_id for row_id, segment in rows if segment in segments]
        if found:
            marks = ", ".join("?" for _ in found)
            store.execute(f"DELETE FROM memberships WHERE rowid IN ({marks})", found)


REMOVED = "definition_removed"
"""The cause ``source`` of the exits of a segment no longer defined."""


def removed_cause(rule: str | None) -> dict[str, Any]:
    """The cause of an exit from a segment no longer defined (``rule``: its last known one)."""
    return {"source": REMOVED, "rule": rule, "traits": []}


def undefined_segments(store: Store, defined: Set[str]) -> list[str]:
    """The segments holding members in ``memberships`` that are not in ``defined``, sorted."""
    rows = store.fetchall("SELECT DISTINCT segment FROM memberships")
    return sorted(str(name) for (name,) in rows if name not in defined)


def last_rules(store: Store, segments: Iterable[str]) -> dict[str, str | None]:
    """The rule recorded with each segment's latest change (None when none names one)."""
    found: dict[str, str | None] = {}
    for name in segments:
        rows = store.fetchall(
            "SELECT cause FROM membership_changes WHERE segment = ? ORDER BY id DESC LIMIT 1",
            [name],
        )
        cause = _decode(rows[0][0]) if rows else {}
        rule = cause.get("rule")
        found[name] = rule if isinstance(rule, str) else None
    return found


def retire_removed(store: Store, defined: Set[str], as_of: datetime) -> list[MembershipChange]:
    """Exit every member of a segment not in ``defined``; return the changes written.

    Each exit is recorded at ``as_of`` with cause ``definition_removed``. Runs in one
    transaction (joining the caller's, if any).
    """
    with store.transaction():
        gone = undefined_segments(store, defined)
        if not gone:
            return []
        rules = last_rules(store, gone)
        changes: list[MembershipChange] = []
        for marks, chunk in in_lists(gone):
            rows = store.fetchall(
                f"SELECT segment, profile_id FROM memberships WHERE segment IN ({marks}) "
                "ORDER BY profile_id, segment",
                chunk,
            )
            changes += [
                MembershipChange(seg, pid, "exit", as_of, removed_cause(rules[seg]))
                for seg, pid in rows
            ]
        write_changes(store, changes)
    return changes


def _decode(raw: Any) -> dict[str, Any]:
    decoded = orjson.loads(raw) if isinstance(raw, str | bytes) else (raw or {})
    return decoded if isinstance(decoded, dict) else {}


def _dumps(value: Mapping[str, Any]) -> str:
    return orjson.dumps(value if type(value) is dict else dict(value), default=str).decode()


def members_of(store: Store, profile_ids: Iterable[str]) -> dict[str, set[str]]:
    """Return the current memberships of each of ``profile_ids`` (empty sets included)."""
    ids = list(dict.fromkeys(profile_ids))
    found: dict[str, set[str]] = {pid: set() for pid in ids}
    for marks, chunk in in_lists(ids):
        rows = store.fetchall(
            f"SELECT profile_id, segment FROM memberships WHERE profile_id IN ({marks})", chunk
        )
        for pid, segment in rows:
            found[pid].add(segment)
    return found


def all_members(store: Store) -> dict[str, set[str]]:
    """Return every profile's memberships (profiles in no segment are absent)."""
    found: dict[str, set[str]] = {}
    for pid, segment in store.fetchall("SELECT profile_id, segment FROM memberships"):
        found.setdefault(pid, set()).add(segment)
    return found


def read_changes(
    store: Store,
    *,
    segment: str | None = None,
    profile_id: str | None = None,
    after_id: int | None = None,
    limit: int | None = None,
    newest_first: bool = False,
    segments: Collection[str] | None = None,
    upto_id: int | None = None,
) -> list[MembershipChange]:
    """Read recorded changes, filtered and ordered by id.

    ``segments``: only changes of these segments; ``after_id`` and ``upto_id``: only those
    with ids in that range (exclusive, inclusive).
    """
    where: list[str] = []
    params: list[Any] = []
    for column, value in (("segment", segment), ("profile_id", profile_id)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    if segments is not None:
        names = sorted(segments)
        where.append(f"segment IN ({', '.join('?' for _ in names) or 'NULL'})")
        params.extend(names)
    if after_id is not None:
        where.append("id > ?")
        params.append(after_id)
    if upto_id is not None:
        where.append("id <= ?")
        params.append(upto_id)
    sql = "SELECT id, segment, profile_id, change, occurred_at, cause FROM membership_changes"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY id DESC" if newest_first else " ORDER BY id"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return [_row_to_change(row) for row in store.fetchall(sql, params)]


def _row_to_change(row: tuple[Any, ...]) -> MembershipChange:
    cid, segment, pid, change, occurred, cause = row
    decoded = _decode(cause)
    at = ensure_utc(from_store_time(occurred) or occurred)
    return MembershipChange(segment, pid, change, at, decoded, int(cid))
