"""Feedback into segments: how outcomes vary across a rule's thresholds, and a proposal.

For a segment that campaigns or journeys send to (a campaign's ``segment``, a journey's
``audience`` or entry trigger), :func:`suggest` takes each numeric threshold of its rule
(``orders >= 3``, ``days_since_purchase < 60``), splits their recipients into buckets of
that trait (quantiles), and reports each bucket's conversion rate (a conversion event within
``measure.window`` after the send; each journey message counts as one send). It then
proposes

- a **tighter** threshold: the loosest bucket edge beyond the current threshold where the
  recipients kept convert significantly better than those dropped (pooled z-test,
  :mod:`segmint.measure.stats`), with at least :data:`MIN_KEPT` recipients kept;
- else a **looser** one, by one bucket width, when the bucket nearest the threshold
  converts at least as well as the recipients overall (no drop-off at the edge): the
  expected rate of the newcomers is then an assumption, said so, since nobody beyond the
  threshold was ever sent anything.

Each proposal carries the segment's size under it (the segment's own SQL, from
:mod:`segmint.membership.segsql`, with the threshold changed) and the expected rate. The
rule itself is never changed. Trait values are the current ones (``profile_traits``), not
those at send time: run ``segmint refresh`` first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from segmint.common import did_you_mean
from segmint.measure import sql, stats
from segmint.measure.errors import MeasureError
from segmint.rules import Compare, Expr, Literal, TraitRef, parse, transform
from segmint.store import utcnow_naive
from segmint.workspace import Workspace

MIN_KEPT = 30
"""The fewest recipients a tighter threshold must keep to be proposed."""
FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}


@dataclass(frozen=True)
class Bucket:
    """Recipients whose trait value is in ``[low, high]``, and how many converted."""

    low: float
    high: float
    n: int
    converted: int

    @property
    def rate(self) -> float:
        """The conversion rate of the bucket."""
        return self.converted / self.n if self.n else 0.0


@dataclass
class ClauseReport:
    """One threshold of the rule: its buckets and what is proposed (if anything)."""

    clause: str
    trait: str
    op: str
    threshold: float
    buckets: list[Bucket]
    proposal: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return JSON-ready data."""
        return {
            "clause": self.clause, "trait": self.trait, "op": self.op,
            "threshold": self.threshold,
            "buckets": [{"low": b.low, "high": b.high, "n": b.n, "converted": b.converted,
                         "rate": b.rate} for b in self.buckets],
            "proposal": self.proposal,
        }  # fmt: skip


@dataclass
class SuggestReport:
    """The suggestions for one segment."""

    segment: str
    rule: str
    campaigns: list[str]
    as_of: datetime
    recipients: int
    converted: int
    size: int
    journeys: list[str] = field(default_factory=list)
    clauses: list[ClauseReport] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Return JSON-ready data."""
        return {
            "segment": self.segment, "rule": self.rule, "campaigns": self.campaigns,
            "journeys": self.journeys,
            "as_of": self.as_of.isoformat(), "recipients": self.recipients,
            "converted": self.converted, "size": self.size,
            "rate": self.converted / self.recipients if self.recipients else None,
            "clauses": [c.to_dict() for c in self.clauses],
        }  # fmt: skip


def thresholds(expr: Expr, numeric: set[str]) -> list[tuple[Compare, str, str, float]]:
    """Return the rule's ``trait op number`` comparisons as (node, trait, op, value).

    A ``number op trait`` comparison is read the other way round (``5 < x`` is ``x > 5``).
    """
    found: list[tuple[Compare, str, str, float]] = []

    def visit(node: Expr) -> Expr:
        if isinstance(node, Compare) and node.op in FLIP:
            left, right, op = node.left, node.right, str(node.op)
            if isinstance(left, Literal) and isinstance(right, TraitRef):
                left, right, op = right, left, FLIP[op]
            if (isinstance(left, TraitRef) and left.name in numeric
                    and isinstance(right, Literal) and _number(right.value)):  # fmt: skip
                found.append((node, left.name, op, float(right.value)))  # type: ignore[arg-type]
        return node

    transform(expr, visit)
    return found


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def suggest(workspace: Workspace, segment: str, as_of: datetime, buckets: int = 5) -> SuggestReport:
    """Report how conversion varies across ``segment``'s thresholds and propose changes.

    Raises:
        MeasureError: Unknown or archived segment, a segment without a rule, one no
            campaign or journey sends to, or no trait values yet (no refresh).
    """
    from segmint.traits.batch import materialised

    defn = workspace.definition
    if segment in defn.archived_segments:
        raise MeasureError(
            f"segment {segment!r} is archived: nothing evaluates it, so it has no threshold "
            "to tune (set 'archived: false' to bring it back)"
        )
    if segment not in defn.segments:
        hint = did_you_mean(segment, [*defn.segments, *defn.archived_segments])
        raise MeasureError(f"unknown segment {segment!r}" + (f"; {hint}" if hint else ""))
    rule = defn.segments[segment].rule
    if rule is None:
        raise MeasureError(f"segment {segment!r} is a group default: it has no rule to tune")
    campaigns = sorted(n for n, c in defn.campaigns.items() if c.segment == segment)
    journeys = sorted(
        n for n, j in defn.journeys.items()
        if segment in (j.audience, j.trigger.segment_entry)
    )  # fmt: skip
    if not campaigns and not journeys:
        raise MeasureError(
            f"no campaign or journey sends to segment {segment!r}: suggestions read the "
            "outcomes of their sends"
        )
    if materialised(workspace.store) is None:
        raise MeasureError(
            "no trait values yet: suggestions read the current ones; run `segmint refresh` first"
        )
    from segmint.rules.workspace import workspace_schema

    numeric = {n for n, t in workspace_schema(defn).types.items() if t == "number"}
    expr = parse(rule)
    outcomes = _outcomes(workspace, campaigns, journeys, as_of)
    size = _size(workspace, segment, rule, as_of)
    converted = sum(c for _, c in outcomes)
    report = SuggestReport(
        segment, rule, campaigns, as_of, len(outcomes), converted, size, journeys=journeys
    )
    for node, trait, op, threshold in thresholds(expr, numeric):
        values = _values(workspace, trait)
        pairs = sorted((values[p], c) for p, c in outcomes if values.get(p) is not None)
        clause = ClauseReport(str(node), trait, op, threshold, _buckets(pairs, buckets))
        clause.proposal = _propose(workspace, segment, expr, node, clause, pairs, as_of)
        report.clauses.append(clause)
    return report


def _outcomes(
    workspace: Workspace, campaigns: list[str], journeys: list[str], as_of: datetime
) -> list[tuple[str, int]]:
    """Return (profile_id, converted 0/1) per send of ``campaigns`` and ``journeys``.

    A journey's messages are its send steps' ledger rows (:func:`ledger_campaign
    <segmint.journeys.compiled.ledger_campaign>`: ``journey:NAME:STEP:ENTRY``).
    """
    settings = workspace.definition.measure
    senders = [*(["s.campaign IN (" + ", ".join("?" for _ in campaigns) + ")"] if campaigns
                 else []),
               *("starts_with(s.campaign, ?)" for _ in journeys)]  # fmt: skip
    at = utcnow_naive(as_of)
    rows = workspace.store.fetchall(
        "SELECT s.profile_id, max(CASE WHEN e.profile_id IS NULL THEN 0 ELSE 1 END) "
        "FROM sends s LEFT JOIN events e ON e.profile_id = s.profile_id AND e.type = 'track' "
        f"AND e.event = ? AND e.timestamp > s.sent_at AND e.timestamp <= s.sent_at + "
        f"{sql.interval(settings.window)} AND e.timestamp <= ? "
        f"WHERE ({' OR '.join(senders)}) AND s.status = 'sent' AND s.sent_at <= ? "
        "GROUP BY s.campaign, s.profile_id",
        [settings.conversion_event, at, *campaigns, *(f"journey:{j}:" for j in journeys), at],
    )
    return [(str(p), int(c)) for p, c in rows]


def _values(workspace: Workspace, trait: str) -> dict[str, float]:
    column = '"' + trait.replace('"', '""') + '"'
    rows = workspace.store.fetchall(f"SELECT profile_id, {column} FROM profile_traits")
    return {str(p): float(v) for p, v in rows if v is not None}


def _buckets(pairs: list[tuple[float, int]], k: int) -> list[Bucket]:
    """Split sorted (value, converted) pairs into at most ``k`` quantile buckets.

    Equal values never straddle two buckets.
    """
    out: list[Bucket] = []
    start, n = 0, len(pairs)
    for i in range(1, k + 1):
        end = max(start, math.ceil(n * i / k))
        while 0 < end < n and pairs[end][0] == pairs[end - 1][0]:
            end += 1
        if end > start:
            chunk = pairs[start:end]
            out.append(Bucket(chunk[0][0], chunk[-1][0], len(chunk), sum(c for _, c in chunk)))
        start = end
    return out


def _propose(
    workspace: Workspace,
    segment: str,
    expr: Expr,
    node: Compare,
    clause: ClauseReport,
    pairs: list[tuple[float, int]],
    as_of: datetime,
) -> dict[str, Any] | None:
    if len(clause.buckets) < 2:
        return None
    upward = clause.op in (">", ">=")
    edges = [b.low for b in clause.buckets[1:]] if upward else [b.high for b in clause.buckets[:-1]]
    candidates = edges if upward else list(reversed(edges))  # loosest first
    for edge in candidates:
        kept = [c for v, c in pairs if (v >= edge if upward else v <= edge)]
        dropped = [c for v, c in pairs if not (v >= edge if upward else v <= edge)]
        if len(kept) < MIN_KEPT or not dropped:
            continue
        test = stats.pooled_z_test(stats.Sample(len(dropped), sum(dropped)),
                                   stats.Sample(len(kept), sum(kept)))  # fmt: skip
        if test.error is None and test.lift > 0 and test.p_value < stats.ALPHA:
            op = ">=" if upward else "<="
            return _proposal(workspace, segment, expr, node, "tighter", op, edge, as_of,
                             sum(kept) / len(kept), f"p = {test.p_value:.3g} against the "
                             f"recipients it drops ({test.lift:+.1%} points)")  # fmt: skip
    total = sum(c for _, c in pairs) / len(pairs)
    edge_bucket = clause.buckets[0] if upward else clause.buckets[-1]
    if edge_bucket.rate >= total and edge_bucket.n:
        width = (edge_bucket.high - edge_bucket.low) or 1.0
        value = clause.threshold - width if upward else clause.threshold + width
        return _proposal(workspace, segment, expr, node, "looser", clause.op, value, as_of,
                         edge_bucket.rate, "assumed: the bucket nearest the threshold converts "
                         "at least as well as the rest; nobody beyond it was sent")  # fmt: skip
    return None


def _proposal(
    workspace: Workspace, segment: str, expr: Expr, node: Compare, direction: str, op: str,
    value: float, as_of: datetime, rate: float, why: str,
) -> dict[str, Any]:  # fmt: skip
    value = _nice(value)
    number: int | float = int(value) if float(value).is_integer() else value
    trait = node.left if isinstance(node.left, TraitRef) else node.right
    replacement = Compare(op, trait, Literal(number))  # type: ignore[arg-type]
    changed = transform(expr, lambda n: replacement if n == node else n)
    return {
        "direction": direction,
        "clause": str(replacement),
        "rule": str(changed),
        "expected_size": _size(workspace, segment, str(changed), as_of),
        "expected_rate": rate,
        "why": why,
    }


def _nice(value: float) -> float:
    """Round a proposed threshold to three significant digits (2401.97 → 2400)."""
    if value == 0 or not math.isfinite(value):
        return value
    digits = 2 - math.floor(math.log10(abs(value)))
    return round(value, digits)


def _size(workspace: Workspace, segment: str, rule: str, as_of: datetime) -> int:
    """Return the segment's size at ``as_of`` were its rule ``rule`` (nothing is changed)."""
    from segmint.membership.segsql import segment_sql

    defn = workspace.definition
    changed = defn.segments[segment].model_copy(update={"rule": rule})
    trial = defn.model_copy(update={"segments": {**defn.segments, segment: changed}})
    dialect = workspace.store.dialect
    query = segment_sql(trial, segment, dialect=dialect, as_of=as_of).sql(dialect)
    return int(workspace.store.fetchall(f"SELECT count(*) FROM ({query}) q")[0][0])
