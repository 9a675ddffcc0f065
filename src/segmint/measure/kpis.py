"""KPIs of sends over a period, per campaign and grouped by template or segment.

Every figure counts what happened in the period ``(start, end]`` (``start`` None: from the
beginning), each from its own record:

- ``sent``: messages attempted (the ledger's ``sent`` rows plus hard bounces), by their
  send instant; ``delivered``: accepted by the server; ``bounced``: hard bounces.
- ``opened``: messages opened by a person (a profile's ``Email Opened`` of the campaign that
  is not a machine open), counted once per message; ``machine_opened``: messages with a
  machine open (image proxies, scanners, prefetch), shown apart and never in the rates;
  ``clicked``: messages with a person's click; ``unsubscribed``: messages whose recipient
  unsubscribed through them.
- ``conversions`` / ``revenue``: attributed by :mod:`segmint.measure.attribution` (run
  ``segmint measure rebuild`` first), by conversion instant.

Rates: ``open_rate`` and ``click_rate`` per delivered message, ``click_to_open`` = clicked /
opened, ``conversion_rate`` and ``revenue_per_recipient`` per delivered message.

Counts are per message (campaign, profile), so the rows of any grouping add up to the
total. Groupings map the ledger's campaign key to a group: by ``campaign``, by the
campaign's ``template`` or target ``segment`` (from ``segmint.yaml``; campaigns no longer
defined go to ``(undefined)``), or by ``journey``. By ``template``, a message sent another
template than its campaign's (an experiment arm's, a journey step's template split; the
ledger's ``template``) counts for the one it was sent with. A journey's sends are one ledger
campaign per step and entry; by campaign they count per journey step
(``journey:NAME:STEP``), which gives each step's KPIs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from segmint.common import did_you_mean
from segmint.config.model import WorkspaceDef
from segmint.measure import sql
from segmint.measure.attribution import CLICKED, OPENED
from segmint.measure.errors import MeasureError
from segmint.store import Store, utcnow_naive

UNSUBSCRIBED = "Email Unsubscribed"
GROUPINGS = ("campaign", "template", "segment", "journey")
UNDEFINED = "(undefined)"
NOT_A_JOURNEY = "(campaigns)"


@dataclass
class Kpis:
    """The counts of one group; rates are derived (see the module docstring)."""

    sent: int = 0
    delivered: int = 0
    bounced: int = 0
    opened: int = 0
    machine_opened: int = 0
    clicked: int = 0
    unsubscribed: int = 0
    conversions: int = 0
    revenue: float = 0.0

    def add(self, other: Kpis) -> None:
        """Add another group's counts to these."""
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def rates(self) -> dict[str, float | None]:
        """Return the derived rates (None where the denominator is zero)."""

        def ratio(a: float, b: float) -> float | None:
            return a / b if b else None

        return {
            "open_rate": ratio(self.opened, self.delivered),
            "click_rate": ratio(self.clicked, self.delivered),
            "click_to_open": ratio(self.clicked, self.opened),
            "conversion_rate": ratio(self.conversions, self.delivered),
            "revenue_per_recipient": ratio(self.revenue, self.delivered),
        }

    def to_dict(self) -> dict[str, Any]:
        """Return counts and rates."""
        counts = {f.name: getattr(self, f.name) for f in fields(self)}
        return {**counts, **self.rates()}


@dataclass
class KpiReport:
    """KPIs per group, and their total.

    Attributes:
        by: The grouping.
        start: The period's (exclusive) start, None from the beginning.
        end: The period's (inclusive) end.
        rows: Group key → KPIs.
        total: The sum over every group.
        sizes: For ``by segment``: segment → (size at start, size at end).
        churn_to: The segment whose entries count as churn (``by segment``), if asked.
        churned: For ``by segment`` with ``churn_to``: segment → profiles that exited it
            and entered ``churn_to`` in the period.
    """

    by: str
    start: datetime | None
    end: datetime
    rows: dict[str, Kpis]
    total: Kpis = field(default_factory=Kpis)
    sizes: dict[str, tuple[int, int]] = field(default_factory=dict)
    churn_to: str | None = None
    churned: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the report as JSON-ready data."""
        rows = []
        for key in sorted(self.rows):
            row = {self.by: key, **self.rows[key].to_dict()}
            if key in self.sizes:
                row["size_start"], row["size_end"] = self.sizes[key]
            if self.churn_to is not None and self.by == "segment":
                row["churned"] = self.churned.get(key, 0)
            rows.append(row)
        return {
            "by": self.by,
            "from": self.start.isoformat() if self.start else None,
            "to": self.end.isoformat(),
            "rows": rows,
            "total": self.total.to_dict(),
            "churn_to": self.churn_to,
        }


def kpi_query(dialect: str, bounded: bool, *, by_template: bool = False) -> str:
    """Return the SQL of every campaign's counts in the period.

    Parameters (``?``): the start (if ``bounded``) and the end, for each of the three
    sources in turn (sends, engagement events, attributions). With ``by_template`` the
    rows are per campaign and the template its messages were sent with (the ledger's
    ``template``, ``''`` for the campaign's own): an experiment arm's or a template split's
    messages, their engagement and conversions count for the template they got.
    """

    def lower(col: str) -> str:
        return f"{col} > ? AND " if bounded else ""

    campaign = sql.campaign(dialect)
    human_open, human_click = (
        sql.human(dialect, "machine_open"),
        sql.human(dialect, "machine_click"),
    )
    # by template: each message's template, joined on (campaign, profile) where not its own
    key, join, also = "", "", ""
    if by_template:
        key, also = ", tpl", ", k.tpl"
        join = " LEFT JOIN t ON t.campaign = x.campaign AND t.profile_id = x.profile_id"
    s_key = ", coalesce(template, '') AS tpl" if by_template else ""
    x_key = ", coalesce(t.sent_as, '') AS tpl" if by_template else ""
    on = " AND {0}.tpl = k.tpl" if by_template else ""
    templates = (
        "t AS (SELECT campaign, profile_id, template AS sent_as FROM sends "
        "WHERE template IS NOT NULL),"
        if by_template
        else ""
    )
    return f"""
        WITH {templates} s AS (
            SELECT campaign{s_key},
                   count(*) AS sent,
                   count(*) FILTER (WHERE status = 'sent') AS delivered,
                   count(*) FILTER (WHERE bounced_at IS NOT NULL) AS bounced
            FROM sends
            WHERE {lower("coalesce(sent_at, bounced_at)")}coalesce(sent_at, bounced_at) <= ?
              AND (status = 'sent' OR bounced_at IS NOT NULL)
            GROUP BY campaign{key}
        ),
        e AS (
            SELECT x.campaign{x_key},
                   count(DISTINCT x.profile_id) FILTER (
                       WHERE event = '{OPENED}' AND {human_open}) AS opened,
                   count(DISTINCT x.profile_id) FILTER (
                       WHERE event = '{OPENED}' AND NOT ({human_open})) AS machine_opened,
                   count(DISTINCT x.profile_id) FILTER (
                       WHERE event = '{CLICKED}' AND {human_click}) AS clicked,
                   count(DISTINCT x.profile_id) FILTER (
                       WHERE event = '{UNSUBSCRIBED}') AS unsubscribed
            FROM (
                SELECT {campaign} AS campaign, profile_id, event, properties FROM events
                WHERE type = 'track' AND event IN ('{OPENED}', '{CLICKED}', '{UNSUBSCRIBED}')
                  AND {lower("timestamp")}timestamp <= ?
            ) x{join}
            GROUP BY x.campaign{key}
        ),
        a AS (
            SELECT x.campaign{x_key}, count(*) AS conversions,
                   coalesce(sum(revenue), 0) AS revenue
            FROM attributions x{join}
            WHERE {lower("converted_at")}converted_at <= ?
            GROUP BY x.campaign{key}
        ),
        k AS (
            SELECT campaign{key} FROM s UNION SELECT campaign{key} FROM e
            UNION SELECT campaign{key} FROM a
        )
        SELECT k.campaign{also},
               coalesce(s.sent, 0), coalesce(s.delivered, 0), coalesce(s.bounced, 0),
               coalesce(e.opened, 0), coalesce(e.machine_opened, 0), coalesce(e.clicked, 0),
               coalesce(e.unsubscribed, 0), coalesce(a.conversions, 0), coalesce(a.revenue, 0)
        FROM k LEFT JOIN s ON s.campaign = k.campaign{on.format("s")}
               LEFT JOIN e ON e.campaign = k.campaign{on.format("e")}
               LEFT JOIN a ON a.campaign = k.campaign{on.format("a")}
        WHERE k.campaign IS NOT NULL
    """


def campaign_kpis(store: Store, start: datetime | None, end: datetime) -> dict[str, Kpis]:
    """Return the KPIs of every campaign with activity in ``(start, end]``."""
    return {key: kpis for (key, _), kpis in _kpis(store, start, end, by_template=False).items()}


def template_kpis(
    store: Store, start: datetime | None, end: datetime
) -> dict[tuple[str, str | None], Kpis]:
    """Return the KPIs of every (campaign, template sent) with activity in ``(start, end]``.

    The template is None for messages sent their campaign's (or journey step's) own.
    """
    if not store.fetchall("SELECT 1 FROM sends WHERE template IS NOT NULL LIMIT 1"):
        return _kpis(store, start, end, by_template=False)  # (no join to make)
    return _kpis(store, start, end, by_template=True)


def _kpis(
    store: Store, start: datetime | None, end: datetime, *, by_template: bool
) -> dict[tuple[str, str | None], Kpis]:
    bounds = [utcnow_naive(end)] if start is None else [utcnow_naive(start), utcnow_naive(end)]
    query = kpi_query(store.dialect, start is not None, by_template=by_template)
    out = {}
    for key, *rest in store.fetchall(query, bounds * 3):
        template, counts = (rest[0] or None, rest[1:]) if by_template else (None, rest)
        sent, delivered, bounced, opened, machine, clicked, unsubscribed, conversions = (
            int(n) for n in counts[:8]
        )
        out[(str(key), template)] = Kpis(sent, delivered, bounced, opened, machine, clicked,
                                         unsubscribed, conversions, float(counts[8]))  # fmt: skip
    return out


def journey_step(key: str) -> tuple[str, str] | None:
    """The (journey, step) of a journey send's ledger campaign key, else None.

    Journey keys are ``journey:NAME:STEP:ENTRY`` (one per entry, see
    :func:`segmint.journeys.compiled.ledger_campaign`); engagement written before the
    entry was part of its links reads ``journey:NAME:STEP``.
    """
    if not key.startswith("journey:"):
        return None
    parts = key.split(":")
    if len(parts) < 3:
        return None
    return parts[1], parts[2]


def grouping(defn: WorkspaceDef, by: str) -> Callable[[str], str]:
    """Return the function mapping a ledger campaign key to its group under ``by``.

    A journey send counts for its step (``journey:NAME:STEP`` by campaign, whatever the
    entry), its journey (``by journey``; campaigns go to ``(campaigns)``), the step's
    template, and the journey's segment (its audience, else the segment entering starts it).
    """
    campaigns, journeys = defn.campaigns, defn.journeys

    def of_journey(name: str, step: str) -> str:
        journey = journeys.get(name)
        if journey is None:
            return UNDEFINED
        if by == "segment":
            return journey.audience or journey.trigger.segment_entry or UNDEFINED
        steps = dict(zip(journey.step_names(), journey.steps, strict=True))
        found = steps.get(step)
        return UNDEFINED if found is None or found.send is None else found.send

    def group(key: str) -> str:
        step = journey_step(key)
        if by == "campaign":
            return key if step is None else f"journey:{step[0]}:{step[1]}"
        if by == "journey":
            return NOT_A_JOURNEY if step is None else step[0]
        if step is not None:
            return of_journey(*step)
        found = campaigns.get(key)
        return UNDEFINED if found is None else str(getattr(found, by))

    return group


def segment_sizes(store: Store, instants: list[datetime]) -> dict[str, list[int]]:
    """Return each segment's member count at each instant, from the membership history."""
    out: dict[str, list[int]] = {}
    for index, at in enumerate(instants):
        rows = store.fetchall(
            "SELECT segment, count(*) FILTER (WHERE change = 'enter') - "
            "count(*) FILTER (WHERE change = 'exit') FROM membership_changes "
            "WHERE occurred_at <= ? GROUP BY segment",
            [utcnow_naive(at)],
        )
        for segment, size in rows:
            out.setdefault(segment, [0] * len(instants))[index] = int(size)
    return out


def churned(store: Store, target: str, start: datetime | None, end: datetime) -> dict[str, int]:
    """Return, per segment, the profiles that exited it and entered ``target`` in the period.

    Both changes fall in ``(start, end]``, the entry no earlier than the exit.
    """
    lower = "AND x.occurred_at > ? " if start is not None else ""
    params: list[Any] = [target, utcnow_naive(end)]
    if start is not None:
        params.append(utcnow_naive(start))
    params.append(target)
    rows = store.fetchall(
        "SELECT x.segment, count(DISTINCT x.profile_id) FROM membership_changes x "
        "JOIN membership_changes n ON n.profile_id = x.profile_id AND n.segment = ? "
        "AND n.change = 'enter' AND n.occurred_at >= x.occurred_at AND n.occurred_at <= ? "
        f"WHERE x.change = 'exit' {lower}AND x.segment <> ? GROUP BY x.segment",
        params,
    )
    return {str(s): int(n) for s, n in rows}


def kpi_report(
    store: Store,
    defn: WorkspaceDef,
    by: str,
    start: datetime | None,
    end: datetime,
    *,
    churn_to: str | None = None,
) -> KpiReport:
    """Return the KPIs of the period grouped ``by`` campaign, template, segment or journey.

    ``churn_to`` (with ``by="segment"``) adds, per segment, how many of its members left
    for that segment in the period (e.g. ``churned``).
    """
    # an archived segment keeps its history: churn into it is still read
    if churn_to is not None and churn_to not in {*defn.segments, *defn.archived_segments}:
        hint = did_you_mean(churn_to, [*defn.segments, *defn.archived_segments])
        raise MeasureError(
            f"unknown segment {churn_to!r} for churn" + (f"; {hint}" if hint else "")
        )
    group = grouping(defn, by)
    report = KpiReport(by, start, end, {}, churn_to=churn_to if by == "segment" else None)
    if by == "template":  # each message counts for the template it was sent with
        found = template_kpis(store, start, end)
    else:
        found = {(key, None): kpis for key, kpis in campaign_kpis(store, start, end).items()}
    for (key, template), kpis in found.items():
        report.rows.setdefault(template or group(key), Kpis()).add(kpis)
        report.total.add(kpis)
    if by == "segment":  # every segment: sizes and churn matter without sends too
        for name in defn.segments:
            report.rows.setdefault(name, Kpis())
        instants = [start, end] if start is not None else [end]
        sizes = segment_sizes(store, instants)
        for name in report.rows:
            if name in sizes:
                at = sizes[name]
                report.sizes[name] = (at[0] if start is not None else 0, at[-1])
        if churn_to is not None:
            report.churned = churned(store, churn_to, start, end)
    return report
