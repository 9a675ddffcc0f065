"""Insight into segments: sizes, size history, recent changes and pairwise overlap.

Every figure is read from ``memberships`` and ``membership_changes``. Since memberships
only ever change through recorded changes, a segment's size at any instant is the running
sum of its enters minus its exits up to that instant.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import combinations
from typing import Any

from segmint.config.model import SegmentDef
from segmint.membership.changes import MembershipChange, read_changes
from segmint.membership.errors import MembershipError, UnknownSegmentError
from segmint.membership.structure import SegmentPlan, SegmentSpec
from segmint.store import Store, from_store_time


@dataclass(frozen=True)
class SizePoint:
    """A segment's size at the end of one day that saw changes."""

    day: datetime
    entered: int
    exited: int
    size: int


def segment_sizes(store: Store) -> dict[str, int]:
    """Return the member count of every segment that has members."""
    rows = store.fetchall("SELECT segment, count(*) FROM memberships GROUP BY segment")
    return {name: int(count) for name, count in rows}


def describe(spec: SegmentSpec, size: int) -> dict[str, Any]:
    """Return one segment's definition and size as a JSON-ready dict."""
    return {
        "name": spec.name,
        "rule": spec.rule,
        "group": spec.group,
        "priority": spec.priority,
        "default": spec.default,
        "parent": spec.parent,
        "tags": list(spec.tags),
        "description": spec.description,
        "size": size,
    }


def list_segments(
    store: Store,
    plan: SegmentPlan,
    tag: str | None = None,
    archived: Mapping[str, SegmentDef] | None = None,
) -> list[dict[str, Any]]:
    """Return every segment (optionally only those tagged ``tag``) with its size.

    ``archived`` segments (``archived: true``, evaluated by nothing) are listed too, marked
    ``"archived": true``, with the members they still hold until the next refresh.
    """
    sizes = segment_sizes(store)
    specs = [(s, False) for s in plan.specs.values()]
    specs += [(SegmentSpec.from_def(n, d), True) for n, d in (archived or {}).items()]
    return [
        describe(s, sizes.get(s.name, 0)) | {"archived": flag}
        for s, flag in sorted(specs, key=lambda pair: pair[0].name)
        if tag is None or tag in s.tags
    ]


def size_history(store: Store, segment: str) -> list[SizePoint]:
    """Return the segment's size at the end of each day on which it changed."""
    return size_histories(store, [segment]).get(segment, [])


def size_histories(
    store: Store, segments: Sequence[str] | None = None
) -> dict[str, list[SizePoint]]:
    """Return each segment's (all, or those named) :func:`size_history`, in one query."""
    where, params = "", []
    if segments is not None:
        where = (
            f"WHERE segment IN ({', '.join('?' for _ in segments)}) "
            if segments
            else "WHERE false "
        )
        params = list(segments)
    rows = store.fetchall(
        "SELECT segment, CAST(occurred_at AS DATE) AS day, "
        "sum(CASE WHEN change = 'enter' THEN 1 ELSE 0 END), "
        "sum(CASE WHEN change = 'exit' THEN 1 ELSE 0 END) "
        f"FROM membership_changes {where}GROUP BY segment, day ORDER BY segment, day",
        params,
    )
    found: dict[str, list[SizePoint]] = {}
    for segment, day, entered, exited in rows:
        points = found.setdefault(str(segment), [])
        size = (points[-1].size if points else 0) + int(entered) - int(exited)
        at = datetime(day.year, day.month, day.day)
        points.append(SizePoint(from_store_time(at) or at, int(entered), int(exited), size))
    return found


def show_segment(store: Store, plan: SegmentPlan, name: str, recent: int = 20) -> dict[str, Any]:
    """Return one segment's rule, size, size history and most recent changes.

    Raises:
        UnknownSegmentError: If the segment is not defined (saying so when it was once).
    """
    if name not in plan.specs:
        _not_defined(store, plan, name)
    return segment_info(store, plan.spec(name), recent)


def segment_info(store: Store, spec: SegmentSpec, recent: int = 20) -> dict[str, Any]:
    """One segment's definition, size, size history and most recent changes.

    Any segment with a spec: a defined one, or an archived one (evaluated by nothing).
    """
    name = spec.name
    info = describe(spec, segment_sizes(store).get(name, 0))
    info["history"] = [p.__dict__ for p in size_history(store, name)]
    changes: Sequence[MembershipChange] = read_changes(
        store, segment=name, newest_first=True, limit=recent
    )
    info["recent_changes"] = [c.to_json() for c in changes]
    return info


def _not_defined(store: Store, plan: SegmentPlan, name: str) -> None:
    rows = store.fetchall(
        "SELECT count(*), max(occurred_at) FROM membership_changes WHERE segment = ?", [name]
    )
    count, last = rows[0]
    if not count:
        plan.spec(name)  # unknown, with a suggestion
    at = from_store_time(last) or last
    held = segment_sizes(store).get(name, 0)
    members = (
        f"its {held} members exit at the next refresh, rebuild or serve start"
        if held
        else "it has no members"
    )
    raise UnknownSegmentError(
        f"segment '{name}' is no longer defined in segmint.yaml ({int(count)} recorded "
        f"changes, the last at {at.isoformat().replace('+00:00', 'Z')}); {members}"
    )


def overlap(
    store: Store,
    plan: SegmentPlan,
    *,
    segments: Sequence[str] = (),
    min_overlap: int = 0,
    top: int | None = None,
    exclusive_pairs: bool = False,
) -> list[dict[str, Any]]:
    """Return pairs of segments with their shared member count and Jaccard index.

    Two segments of one exclusive group never share a member, so their pairs are left out
    unless ``exclusive_pairs``.

    Args:
        store: The store.
        plan: The workspace's segments.
        segments: Only pairs of which at least one segment is named here (all when empty).
        min_overlap: Only pairs sharing at least this many members.
        top: Only the ``top`` pairs sharing the most members, most first (ties by Jaccard
            index, then by name); otherwise pairs come sorted by name.
        exclusive_pairs: Also list pairs of segments of one exclusive group.

    Raises:
        UnknownSegmentError: If a name in ``segments`` is not defined (with a suggestion).
        MembershipError: If ``min_overlap`` or ``top`` is negative.
    """
    for name in segments:
        if name not in plan.specs:
            _not_defined(store, plan, name)  # (saying so when it was once)
    if min_overlap < 0 or (top is not None and top < 0):
        raise MembershipError("--min-overlap and --top take a count of 0 or more")
    sizes = segment_sizes(store)
    rows = store.fetchall(
        "SELECT a.segment, b.segment, count(*) FROM memberships a "
        "JOIN memberships b ON a.profile_id = b.profile_id AND a.segment < b.segment "
        "GROUP BY a.segment, b.segment"
    )
    shared = {(a, b): int(n) for a, b, n in rows}
    named = set(segments)
    pairs: list[dict[str, Any]] = []
    for a, b in combinations(sorted(plan.specs), 2):
        group = plan.specs[a].group
        if not exclusive_pairs and group is not None and group == plan.specs[b].group:
            continue
        if named and not named & {a, b}:
            continue
        both = shared.get((a, b), 0)
        if both < min_overlap:
            continue
        union = sizes.get(a, 0) + sizes.get(b, 0) - both
        pairs.append(
            {"a": a, "b": b, "size_a": sizes.get(a, 0), "size_b": sizes.get(b, 0),
             "both": both, "jaccard": both / union if union else 0.0}
        )  # fmt: skip
    if top is not None:
        pairs.sort(key=lambda p: (-p["both"], -p["jaccard"], p["a"], p["b"]))
        pairs = pairs[:top]
    return pairs
