"""Read-side view of a profile: its trait values and segment memberships.

Trait values live in ``trait_values.values`` as JSON, written by the batch refresh and by the
real-time engine. Timestamps are ISO 8601 strings there; :func:`load_profile` revives them
when given the trait types.

Which profile an id a person typed names (user id, email, ``KIND:VALUE``, a merged profile's
id) is intake's answer: :func:`segmint.intake.identity.resolve_person`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from segmint.clock import parse_instant
from segmint.common import in_lists
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
    traits = unseal(store, decode_traits(rows[0][0], types)) if rows else {}
    return Profile(profile_id, traits, frozenset(s for (s,) in segments))


def unseal(store: Store, values: dict[str, Any]) -> dict[str, Any]:
    """Trait values with PII opened for use in memory (templates, the delivery address).

    With a master key configured (``segmint.privacy``), PII is stored sealed; the workspace
    hangs its privacy settings on the store, and this is where reads for people open them.
    """
    privacy = getattr(store, "privacy", None)
    return values if privacy is None else privacy.unseal_values(values)


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
    for marks, chunk in in_lists(ids):
        for pid, seg in store.fetchall(
            f"SELECT profile_id, segment FROM memberships WHERE profile_id IN ({marks})",
            list(chunk),
        ):
            memberships[pid].add(seg)
    for pid, raw in rows:
        yield Profile(pid, unseal(store, decode_traits(raw, types)), frozenset(memberships[pid]))
