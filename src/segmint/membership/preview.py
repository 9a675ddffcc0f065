"""Preview a rule that is not saved yet: how many profiles it would hold, and some of them.

The rule is checked like a segment rule of the workspace (parse, then type-check against the
workspace's traits and segments), added to a copy of the definitions as one more segment, and
evaluated by the batch path itself: traits computed from the events at ``as_of``
(:func:`segmint.traits.sqlgen.trait_query`) under the one segment query
(:func:`segmint.membership.segsql.membership_query`). So a preview is exactly what a refresh
at ``as_of`` would decide for the rule, and it writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from segmint.config.model import SegmentDef, WorkspaceDef
from segmint.membership.compiled import CompiledSegments
from segmint.membership.errors import StalePreviewError
from segmint.membership.segsql import membership_query
from segmint.rules import Expr, check, from_json, parse, to_json, workspace_schema
from segmint.store import Store
from segmint.traits.sqlgen import trait_query

PREVIEW_SEGMENT = "__preview__"
"""The name the previewed rule has while it is evaluated (never stored)."""


@dataclass(frozen=True)
class RulePreview:
    """What a rule would hold at ``as_of``.

    Attributes:
        rule: The rule's canonical text.
        tree: The rule's JSON form.
        size: How many profiles it holds.
        sample: Up to ``limit`` of their profile ids, in id order.
        as_of: The instant it was evaluated at.
    """

    rule: str
    tree: dict[str, Any]
    size: int
    sample: list[str]
    as_of: datetime

    def to_dict(self) -> dict[str, Any]:
        """The preview as JSON-ready data."""
        return {"rule": self.rule, "tree": self.tree, "size": self.size, "sample": self.sample,
                "as_of": self.as_of.isoformat().replace("+00:00", "Z")}  # fmt: skip


def read_rule(definition: WorkspaceDef, rule: str | Any) -> Expr:
    """Parse a rule given as text or as its JSON tree, and type-check it for ``definition``.

    Raises:
        RuleError: With the position of the problem (and a suggestion for a mistyped name).
    """
    expr = parse(rule) if isinstance(rule, str) else from_json(rule)
    if not isinstance(rule, str):  # positions refer to the canonical text the UI shows
        expr = parse(str(expr))
    check(expr, workspace_schema(definition))
    return expr


def preview_rule(
    store: Store,
    definition: WorkspaceDef,
    rule: str | Any,
    as_of: datetime,
    *,
    limit: int = 20,
) -> RulePreview:
    """Evaluate ``rule`` (text or JSON tree) over every profile at ``as_of``.

    Args:
        store: The workspace's store.
        definition: The workspace definitions the rule may refer to.
        rule: The rule text, or its JSON form (:func:`segmint.rules.to_json`).
        as_of: The instant ``now()`` stands for.
        limit: How many member ids to return.

    Raises:
        RuleError: When the rule does not parse or type-check.
    """
    expr, compiled = _compile(definition, rule)
    segment = compiled.segments[PREVIEW_SEGMENT]
    names = None if segment.deps is None or segment.deps.segments else sorted(segment.traits)
    source = trait_query(compiled.catalog, store.dialect, as_of, names)
    return _run(store, compiled, expr, as_of, source, limit)


def preview_stored(
    store: Store, definition: WorkspaceDef, rule: str | Any, *, limit: int = 20
) -> RulePreview:
    """Evaluate ``rule`` over the traits the last batch refresh computed, at its instant.

    No pass over the events: the rule reads ``profile_traits`` as the refresh left it, so
    the answer is what that refresh would have decided for the rule (``as_of`` of the
    result is the refresh's instant). Fast on any number of profiles.

    Raises:
        RuleError: When the rule does not parse or type-check.
        StalePreviewError: When there is no refresh to read, the trait definitions changed
            since it, or the rule needs a trait it did not compute (a new ``performed``).
    """
    from segmint.traits.batch import materialised

    expr, compiled = _compile(definition, rule)
    stamp = materialised(store)
    if stamp is None:
        raise StalePreviewError("no batch refresh has computed the traits yet")
    at, fingerprint = stamp
    if fingerprint != CompiledSegments(definition).catalog.fingerprint:
        raise StalePreviewError("the trait definitions changed since the last refresh")
    if compiled.catalog.fingerprint != fingerprint:
        raise StalePreviewError("the rule needs traits the last refresh did not compute")
    return _run(store, compiled, expr, at, None, limit)


def _compile(definition: WorkspaceDef, rule: str | Any) -> tuple[Expr, CompiledSegments]:
    expr = read_rule(definition, rule)
    segments = dict(definition.segments)
    segments[PREVIEW_SEGMENT] = SegmentDef(rule=str(expr))
    return expr, CompiledSegments(definition.model_copy(update={"segments": segments}))


def _run(
    store: Store,
    compiled: CompiledSegments,
    expr: Expr,
    as_of: datetime,
    source: Any,
    limit: int,
) -> RulePreview:
    members = membership_query(
        compiled, dialect=store.dialect, as_of=as_of, segments=[PREVIEW_SEGMENT], source=source
    ).subquery("members")
    sql = members.sql(dialect=store.dialect)
    if limit <= 0:
        size = int(store.fetchall(f"SELECT count(*) FROM {sql}")[0][0])
        return RulePreview(str(expr), to_json(expr), size, [], as_of)
    # one pass over the events: the size rides along with each sampled row
    rows = store.fetchall(
        f"SELECT profile_id, count(*) OVER () FROM {sql} ORDER BY profile_id LIMIT ?", [limit]
    )
    size = int(rows[0][1]) if rows else 0
    return RulePreview(str(expr), to_json(expr), size, [str(r[0]) for r in rows], as_of)
