"""Read-side view of a profile: its trait values and segment memberships.

Trait values live in ``trait_values.values`` as JSON, written by the batch refresh and by the
real-time engine. Timestamps are ISO 8601 strings there; :func:`load_profile` revives them
when given the trait types.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from segmint.clock import parse_instant
from segmint.store import Store


@dataclass(frozen=True)
class Profile:
    """One profile's traits and segments, as personalisation and lookups see them."""

    profile_id: str
    traits: dict[str, Any] = field(default_factory=dict)
    segments: frozenset[str] = frozenset()


def decode_traits(raw: Any, types: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Decode a ``trait_values.values`` cell, reviving timestamps named in ``types``."""
    if raw is None:
        return {}
    values: dict[str, Any] = orjson.loads(raw) if isinstance(raw, str | bytes) else dict(raw)
    for name, kind in (types or {}).items():
        value = values.get(name)
        if kind == "timestamp" and isinstance(value, str):
            values[name] = parse_instant(value)
    return values


def load_profile(
    store: Store, profile_id: str, types: Mapping[str, str] | None = None
) -> Profile | None:
    """Return a profile's traits and segments, or None if the profile is unknown."""
    rows = store.fetchall('SELECT "values" FROM trait_values WHERE profile_id = ?', [profile_id])
    known = rows or store.fetchall("SELECT 1 FROM profiles WHERE profile_id = ?", [profile_id])
    if not known:
        return None
    segments = store.fetchall("SELECT segment FROM memberships WHERE profile_id = ?", [profile_id])
    traits = decode_traits(rows[0][0], types) if rows else {}
    return Profile(profile_id, traits, frozenset(s for (s,) in segments))


def segment_members(
    store: Store, segment: str, types: Mapping[str, str] | None = None, limit: int | None = None
) -> Iterator[Profile]:
    """Yield the current members of ``segment`` with their traits and segments."""
    sql = (
        'SELECT m.profile_id, t."values" FROM memberships m '
        "LEFT JOIN trait_values t ON t.profile_id = m.profile_id "
        "WHERE m.segment = ? ORDER BY m.profile_id"
    )
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    rows = store.fetchall(sql, [segment])
    ids = [r[0] for r in rows]
    memberships: dict[str, set[str]] = {pid: set() for pid in ids}
    if ids:
        marks = ", ".join("?" for _ in ids)
        for pid, seg in store.fetchall(
            f"SELECT profile_id, segment FROM memberships WHERE profile_id IN ({marks})", ids
        ):
            memberships[pid].add(seg)
    for pid, raw in rows:
        yield Profile(pid, decode_traits(raw, types), frozenset(memberships[pid]))


IDENTITY_PREFERENCE = ("user_id", "email", "anonymous_id")
"""The identity kinds a bare reference is tried as, in order, when it is not a profile id."""


def resolve_profile_ref(store: Store, ref: str) -> str | None:
    """Find the profile a person-facing reference names.

    ``ref`` may be a profile id (``p_…``), ``KIND:VALUE`` (``user_id:42``,
    ``email:ada@example.com``, any identity kind), or a bare user id, email or anonymous id
    (tried in :data:`IDENTITY_PREFERENCE` order).

    Returns:
        The profile id, or None if nothing matches.
    """
    if store.fetchall("SELECT 1 FROM profiles WHERE profile_id = ?", [ref]):
        return ref
    kind, sep, value = ref.partition(":")
    candidates = [(kind, value)] if sep else [(k, ref) for k in IDENTITY_PREFERENCE]
    for kind, value in candidates:
        rows = store.fetchall(
            "SELECT profile_id FROM identities WHERE kind = ? AND value = ?", [kind, value]
        )
        if rows:
            return str(rows[0][0])
    return None


def merge_roots(store: Store) -> dict[str, str]:
    """Every profile merged away, mapped to the profile that survives it (chains followed)."""
    merged: dict[str, str] = {
        str(pid): str(into)
        for pid, into in store.fetchall(
            "SELECT profile_id, merged_into FROM profiles WHERE merged_into IS NOT NULL"
        )
    }
    roots: dict[str, str] = {}
    for gone in merged:
        into, seen = merged[gone], {gone}
        while into in merged and into not in seen:
            seen.add(into)
            into = merged[into]
        roots[gone] = into
    return roots
