"""The demo's refresh and segment-table steps.

The refresh is the membership engine's batch refresh and the table reads its insight
(``Membership.refresh``, ``.segments``, ``.overlap``: what ``segmint refresh``, ``segments
list`` and ``segments overlap`` run). The demo adds one view only it can give: which
segment each generated archetype landed in, found through the intake's identity table.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from typing import Any

from rich.table import Table

from segmint.demo.archetypes import ARCHETYPE_NAMES
from segmint.demo.stage import DemoContext, count, need

LIFECYCLE = "lifecycle"
MIN_OVERLAP = 0.05
"""Overlaps below this share of a segment are not notable."""


def refresh_segments(ctx: DemoContext) -> str:
    """Run the batch refresh at the demo's ``as_of``; return a one-line summary."""
    (membership_class,) = need("segmint.membership.service", "Membership")
    started = time.perf_counter()
    with ctx.console.status("Computing traits and segments for every profile…"):
        report = membership_class(ctx.ws).refresh(ctx.options.as_of)
    seconds = time.perf_counter() - started
    ctx.facts["refresh"] = {
        "seconds": round(seconds, 1),
        "profiles": report.profiles,
        "entered": report.entered,
        "exited": report.exited,
    }
    return (
        f"{count(report.profiles, 'profile')}: traits computed and {report.entered:,} segment "
        f"entries recorded at {ctx.options.as_of:%Y-%m-%d %H:%M} UTC"
    )


def count_profiles(ctx: DemoContext) -> int:
    """Profiles that exist (merged-away profiles are not counted)."""
    rows = ctx.ws.store.fetchall("SELECT count(*) FROM profiles WHERE merged_into IS NULL")
    return int(rows[0][0])


def segment_table(ctx: DemoContext) -> str:
    """Print each segment's size, share and notable overlaps, then archetypes by segment."""
    (membership_class,) = need("segmint.membership.service", "Membership")
    membership = membership_class(ctx.ws)
    store = ctx.ws.store
    segments: list[dict[str, Any]] = membership.segments()
    pairs: list[dict[str, Any]] = membership.overlap()
    profiles = count_profiles(ctx)
    ctx.console.print(_sizes_table(segments, pairs, profiles))
    lifecycle = [s["name"] for s in segments if s["group"] == LIFECYCLE]
    crosstab = archetype_crosstab(ctx, lifecycle)
    if crosstab:
        ctx.console.print(_crosstab_table(crosstab, lifecycle))
    ctx.facts["landing"] = {arch: dict(counts) for arch, counts in crosstab.items()}
    ctx.facts["segments"] = {s["name"]: s["size"] for s in segments}
    vip = store.fetchall(
        "SELECT i.value FROM memberships m JOIN identities i ON i.profile_id = m.profile_id "
        "WHERE m.segment = 'vip' AND i.kind = 'user_id' ORDER BY i.value LIMIT 1"
    )
    if vip:
        ctx.facts["example_profile"] = vip[0][0]
    members = sum(s["size"] for s in segments if s["group"] == LIFECYCLE)
    return f"{len(segments)} segments over {count(profiles, 'profile')}; {members:,} in lifecycle"


def notable_overlaps(name: str, pairs: list[dict[str, Any]], size: int, top: int = 2) -> str:
    """The segments sharing the most of ``name``'s members, as ``62% in engaged_readers``."""
    if not size:
        return ""
    shared = []
    for pair in pairs:
        if name in (pair["a"], pair["b"]) and pair["both"]:
            other = pair["b"] if pair["a"] == name else pair["a"]
            shared.append((pair["both"] / size, other))
    shared.sort(reverse=True)
    notable = [(share, other) for share, other in shared[:top] if share >= MIN_OVERLAP]
    return ", ".join(f"{share:.0%} in {other}" for share, other in notable)


def _sizes_table(segments: list[dict[str, Any]], pairs: list[dict[str, Any]], total: int) -> Table:
    table = Table(title="Segments at the end of the demo year", title_justify="left")
    for column, justify in (("segment", "left"), ("group", "left"), ("members", "right")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    table.add_column("share", justify="right")
    table.add_column("notable overlaps")
    ordered = sorted(segments, key=lambda s: (s["group"] is None, s["group"] or "", -s["size"]))
    for seg in ordered:
        share = seg["size"] / total if total else 0.0
        table.add_row(
            seg["name"],
            seg["group"] or "",
            f"{seg['size']:,}",
            f"{share:.1%}",
            notable_overlaps(seg["name"], pairs, seg["size"]),
        )
    return table


def archetype_crosstab(ctx: DemoContext, lifecycle: list[str]) -> dict[str, Counter[str]]:
    """Count, per generated archetype, the lifecycle segment its profiles ended in."""
    store = ctx.ws.store
    owner = {
        value: pid
        for value, pid in store.fetchall(
            "SELECT value, profile_id FROM identities WHERE kind IN ('user_id', 'anonymous_id')"
        )
    }
    segment_of = {
        pid: seg
        for seg, pid in store.fetchall("SELECT segment, profile_id FROM memberships")
        if seg in lifecycle
    }
    placed: dict[str, set[str]] = defaultdict(set)
    for ident, archetype in ctx.archetypes.items():
        if ident in owner:
            placed[archetype].add(owner[ident])
    return {
        arch: Counter(segment_of.get(pid, "(none)") for pid in placed[arch])
        for arch in ARCHETYPE_NAMES
        if placed.get(arch)
    }


def _crosstab_table(crosstab: dict[str, Counter[str]], lifecycle: list[str]) -> Table:
    table = Table(
        title="Where each generated archetype landed in the lifecycle group", title_justify="left"
    )
    table.add_column("archetype")
    table.add_column("profiles", justify="right")
    table.add_column("lifecycle segment (share of the archetype)")
    for arch, counts in crosstab.items():
        total = sum(counts.values())
        landed = [
            f"[bold]{name} {n / total:.0%}[/bold]"
            if n / total >= 0.5
            else f"{name} {n / total:.0%}"
            for name, n in counts.most_common(3)
            if n / total >= 0.01
        ]
        table.add_row(arch, f"{total:,}", ", ".join(landed))
    return table
