"""``segmint segments lint``: segments that cost more than they give.

Findings, each naming the segment and what to do:

- ``near_duplicate``: two segments whose members overlap with a Jaccard index at or above
  the threshold (0.9), from the live memberships (:meth:`Membership.overlap`); pairs of
  one exclusive group never share members and are not compared;
- ``unused``: nothing uses the segment: no campaign, journey (trigger, audience, branch,
  rule), webhook, other segment (``parent``, ``in_segment``), experiment (through its
  campaign), template (its name quoted in a template, or the ``email.group`` it belongs to);
- ``idle``: only campaigns and journeys use it, and none of them has sent anything in the
  last N days before ``as_of`` (the send ledger);
- ``empty`` / ``everyone``: it holds no profile, or every profile (live memberships);
- ``simpler_rule``: its rule has a cheaper equivalent (:func:`segmint.rules.simplify`);
- ``expired``: its ``lifespan`` ended before ``as_of``: it holds nobody; archive it.

Nothing is changed; the command exits 1 when it finds something.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from segmint.config.model import WorkspaceDef
from segmint.rules import RuleError, dependencies, parse, simplify
from segmint.store import Store, from_store_time
from segmint.workspace import Workspace

JACCARD = 0.9
UNUSED_DAYS = 30
_SEGMENT_KEYS = frozenset({"segment", "segment_entry", "segment_exit", "audience", "segments"})
_SENDERS = frozenset({"campaign", "journey"})


@dataclass(frozen=True)
class Finding:
    """One thing ``segments lint`` found.

    Attributes:
        segment: The segment (the first of a pair for ``near_duplicate``).
        code: What kind of finding (see the module docs).
        message: What is wrong, in words.
        hint: What to do about it.
        details: Data for scripts (the other segment, sizes, the simpler rule…).
    """

    segment: str
    code: str
    message: str
    hint: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The finding as JSON-ready data."""
        return {"segment": self.segment, "code": self.code, "message": self.message,
                "hint": self.hint, "details": self.details}  # fmt: skip


def lint_segments(
    workspace: Workspace,
    as_of: datetime,
    *,
    jaccard: float = JACCARD,
    unused_days: int = UNUSED_DAYS,
) -> list[Finding]:
    """Every finding for the workspace's segments at ``as_of``, by segment then code."""
    from segmint.membership.service import Membership

    definition = workspace.definition
    found = list(_rules(definition, as_of))
    users = segment_users(definition, workspace.templates_dir)
    found += _usage(workspace.store, definition, users, as_of, unused_days)
    membership = Membership(workspace)
    found += _sizes(workspace.store, definition)
    for pair in membership.overlap(min_overlap=1):
        if pair["jaccard"] >= jaccard:
            shared = f"{pair['both']:,} shared of {pair['size_a']:,} and {pair['size_b']:,}"
            message = f"near duplicate of '{pair['b']}': Jaccard {pair['jaccard']:.3f} ({shared})"
            hint = "keep one of the two, or tell them apart in the rule"
            found.append(Finding(pair["a"], "near_duplicate", message, hint, dict(pair)))
    return sorted(found, key=lambda f: (f.segment, f.code))


def _rules(definition: WorkspaceDef, as_of: datetime) -> Iterator[Finding]:
    for name, seg in definition.segments.items():
        end = seg.ends_at
        if end is not None and end <= as_of:
            when = end.isoformat().replace("+00:00", "Z")
            yield Finding(name, "expired", f"its lifespan ended at {when}: it holds nobody",
                          "set 'archived: true' (its history stays) or remove it",
                          {"ended_at": when})  # fmt: skip
        if seg.rule is None:
            continue
        try:
            simpler, steps = simplify(parse(seg.rule))
        except RuleError:
            continue  # the loader reports broken rules
        if steps:
            what = "; ".join(f"{s.before} → {s.after} ({s.reason})" for s in steps)
            yield Finding(name, "simpler_rule", f"a cheaper rule does the same: {what}",
                          f'rule: "{simpler}"', {"rule": seg.rule, "simpler": str(simpler),
                          "steps": [s.__dict__ for s in steps]})  # fmt: skip


def segment_users(definition: WorkspaceDef, templates_dir: Path) -> dict[str, set[tuple[str, str]]]:
    """Who uses each segment: ``{segment: {(kind, name)}}``.

    Kinds: campaign, journey, webhook, segment, experiment, template, email.group.
    """
    users: dict[str, set[tuple[str, str]]] = {n: set() for n in definition.segments}

    def add(segment: str, who: tuple[str, str]) -> None:
        if segment in users:
            users[segment].add(who)

    sections = (("campaign", definition.campaigns), ("journey", definition.journeys),
                ("webhook", definition.webhooks))  # fmt: skip
    for kind, models in sections:
        for owner, model in models.items():
            for segment in _references(model):
                add(segment, (kind, owner))
    for owner, seg in definition.segments.items():
        for segment in _references(seg):
            if segment != owner:
                add(segment, ("segment", owner))
    for experiment, spec in definition.experiments.items():
        campaign = definition.campaigns.get(spec.campaign)
        if campaign is not None:
            add(campaign.segment, ("experiment", experiment))
    group = definition.email.group
    for name, seg in definition.segments.items():
        if group is not None and seg.group == group:
            add(name, ("email.group", group))
    for path in sorted(templates_dir.glob("*.htm*")) if templates_dir.is_dir() else ():
        text = path.read_text(encoding="utf-8", errors="replace")
        for name in definition.segments:
            if re.search(rf"""['"]{re.escape(name)}['"]""", text):
                add(name, ("template", path.name))
    return users


def _references(model: BaseModel) -> Iterator[str]:
    """Segment names a definition names: its segment keys, and ``in_segment`` in its rules."""
    for key in type(model).model_fields:
        value = getattr(model, key)
        if key in _SEGMENT_KEYS and isinstance(value, str):
            yield value
        elif key in _SEGMENT_KEYS and isinstance(value, tuple):
            yield from (v for v in value if isinstance(v, str))
        elif key == "rule" and isinstance(value, str):
            try:
                yield from dependencies(parse(value)).segments
            except RuleError:
                continue
        elif key == "parent" and isinstance(value, str):
            yield value
        else:
            yield from _nested(value)


def _nested(value: Any) -> Iterator[str]:
    if isinstance(value, BaseModel):
        yield from _references(value)
    elif isinstance(value, tuple | list):
        for item in value:
            yield from _nested(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _nested(item)


def _usage(
    store: Store,
    definition: WorkspaceDef,
    users: dict[str, set[tuple[str, str]]],
    as_of: datetime,
    days: int,
) -> Iterator[Finding]:
    since = as_of - timedelta(days=days)
    last = _last_sends(store)
    for name, who in sorted(users.items()):
        if not who:
            yield Finding(name, "unused", "nothing uses it (no campaign, journey, webhook, "
                          "template, experiment or other segment)",
                          "set 'archived: true' if it is no longer needed")  # fmt: skip
            continue
        if any(kind not in _SENDERS for kind, _ in who):
            continue
        latest = max((last[u] for u in who if u in last), default=None)
        if latest is None or latest < since:
            names = ", ".join(f"{kind} '{owner}'" for kind, owner in sorted(who))
            when = "never" if latest is None else latest.isoformat().replace("+00:00", "Z")
            yield Finding(name, "idle", f"only {names} use it, and nothing was sent in the "
                          f"{days} days before {as_of:%Y-%m-%d} (last send: {when})",
                          "archive it with what uses it, or check why nothing sends",
                          {"users": sorted(map(list, who)), "last_send": when})  # fmt: skip


def _last_sends(store: Store) -> dict[tuple[str, str], datetime]:
    """The latest ledger row of each campaign and journey."""
    out: dict[tuple[str, str], datetime] = {}
    for key, at in store.fetchall("SELECT campaign, max(created_at) FROM sends GROUP BY campaign"):
        when = from_store_time(at)
        if when is None:
            continue
        who = ("journey", key.split(":")[1]) if key.startswith("journey:") else ("campaign", key)
        if who not in out or out[who] < when:
            out[who] = when
    return out


def _sizes(store: Store, definition: WorkspaceDef) -> Iterator[Finding]:
    from segmint.membership.insight import segment_sizes

    (profiles,) = store.fetchall("SELECT count(*) FROM profiles WHERE merged_into IS NULL")[0]
    if not profiles or not store.fetchall("SELECT 1 FROM membership_changes LIMIT 1"):
        return  # nothing decided yet: sizes say nothing
    sizes = segment_sizes(store)
    for name, seg in sorted(definition.segments.items()):
        size = sizes.get(name, 0)
        if size == 0 and seg.ends_at is None:
            yield Finding(name, "empty", "it holds no profile",
                          "check the rule with `segmint segments preview`, or archive it",
                          {"size": 0, "profiles": profiles})  # fmt: skip
        elif size >= profiles and not seg.default:
            yield Finding(name, "everyone", f"it holds every profile ({size:,})",
                          "a segment of everyone selects nothing: tighten or remove the rule",
                          {"size": size, "profiles": profiles})  # fmt: skip
