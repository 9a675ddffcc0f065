"""Attribution: which send earned each conversion.

A conversion is a ``track`` event named ``measure.conversion_event`` (default ``Order
Completed``); its revenue is the first of ``measure.revenue_properties`` that is a number.
It is attributed to the **last touch** of the same profile inside the window before it:
``converted_at - window < touched_at <= converted_at``. A touch is, with ``attribution:
engaged`` (the default), an ``Email Opened`` (machine opens excluded) or ``Email Link
Clicked`` (link scanners excluded) event of a campaign; with ``attribution: sent``, a send
the ledger marks ``sent``. Ties go to the later campaign name, so the answer is unique.
Merges are followed: intake moves a merged-away profile's events to its survivor, and a
send to the merged-away profile touches the survivor.

Only events and sends at or before ``as_of`` count, so the result is exact for an explicit
instant and a rebuild is repeatable. ``attributions`` is derived: :func:`rebuild` replaces
it in one transaction.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from segmint.config.measure import MeasureDef
from segmint.measure import sql
from segmint.store import Store, utcnow_naive

OPENED = "Email Opened"
CLICKED = "Email Link Clicked"
META_KEY = "measure.attribution"


@dataclass(frozen=True)
class AttributionReport:
    """What a rebuild found.

    Attributes:
        as_of: The instant it was computed for.
        conversions: Conversion events up to ``as_of``.
        attributed: Those attributed to a send.
        revenue: The attributed revenue.
        by_campaign: Attributed conversions per campaign.
    """

    as_of: datetime
    conversions: int
    attributed: int
    revenue: float
    by_campaign: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        """Return the report as JSON-ready data."""
        return {
            "as_of": self.as_of.isoformat(),
            "conversions": self.conversions,
            "attributed": self.attributed,
            "revenue": self.revenue,
            "by_campaign": dict(sorted(self.by_campaign.items())),
        }


def touches_sql(dialect: str, settings: MeasureDef) -> str:
    """Return SQL selecting ``(profile_id, campaign, touch, at)`` of every touch up to ``?``."""
    if settings.attribution == "sent":
        return (  # a send to a profile merged away since touches its survivor
            "SELECT coalesce(r.root, s.profile_id) AS profile_id, s.campaign, 'sent' AS touch, "
            "s.sent_at AS at FROM sends s LEFT JOIN merge_roots r ON r.gone = s.profile_id "
            "WHERE s.status = 'sent' AND s.sent_at IS NOT NULL AND s.sent_at <= ?"
        )
    campaign = sql.campaign(dialect)
    opened, clicked = sql.human(dialect, "machine_open"), sql.human(dialect, "machine_click")
    return (
        f"SELECT profile_id, {campaign} AS campaign, "
        f"CASE WHEN event = '{OPENED}' THEN 'open' ELSE 'click' END AS touch, "
        "timestamp AS at FROM events WHERE type = 'track' AND timestamp <= ? AND "
        f"((event = '{OPENED}' AND {opened}) OR (event = '{CLICKED}' AND {clicked}))"
    )


def attribution_query(dialect: str, settings: MeasureDef) -> str:
    """Return the SQL of every attributed conversion up to ``?`` (the instant, twice).

    Columns: conversion_id, profile_id, campaign, touch, touched_at, converted_at, revenue.
    """
    revenue = sql.revenue(dialect, settings.revenue_properties)
    window = sql.interval(settings.window)
    return f"""
        WITH RECURSIVE {sql.MERGE_ROOTS},
        conv AS (
            SELECT message_id, profile_id, timestamp AS at, {revenue} AS revenue
            FROM events WHERE type = 'track' AND event = ? AND timestamp <= ?
        ),
        touch AS ({touches_sql(dialect, settings)}),
        ranked AS (
            SELECT c.message_id, c.profile_id, t.campaign, t.touch, t.at AS touched_at,
                   c.at AS converted_at, c.revenue,
                   row_number() OVER (
                       PARTITION BY c.message_id ORDER BY t.at DESC, t.campaign DESC,
                       t.touch DESC
                   ) AS rank
            FROM conv c JOIN touch t ON t.profile_id = c.profile_id
             AND t.at <= c.at AND t.at > c.at - {window} AND t.campaign IS NOT NULL
        )
        SELECT message_id, profile_id, campaign, touch, touched_at, converted_at, revenue
        FROM ranked WHERE rank = 1
    """


def rebuild(store: Store, settings: MeasureDef, as_of: datetime) -> AttributionReport:
    """Recompute ``attributions`` for ``as_of`` from events and the ledger; return totals."""
    at = utcnow_naive(as_of)
    query = attribution_query(store.dialect, settings)
    with store.transaction():
        store.execute("DELETE FROM attributions")
        store.execute(
            "INSERT INTO attributions (conversion_id, profile_id, campaign, touch, "
            f"touched_at, converted_at, revenue) {query}",
            [settings.conversion_event, at, at],
        )
        stamp = json.dumps({"as_of": as_of.isoformat(), "settings": settings.model_dump(
            mode="json")})  # fmt: skip
        store.execute("DELETE FROM meta WHERE key = ?", [META_KEY])
        store.execute("INSERT INTO meta (key, value) VALUES (?, ?)", [META_KEY, stamp])
    total = store.fetchall(
        "SELECT count(*) FROM events WHERE type = 'track' AND event = ? AND timestamp <= ?",
        [settings.conversion_event, at],
    )[0][0]
    rows = store.fetchall(
        "SELECT campaign, count(*), coalesce(sum(revenue), 0) FROM attributions GROUP BY 1"
    )
    return AttributionReport(
        as_of=as_of,
        conversions=int(total),
        attributed=sum(int(r[1]) for r in rows),
        revenue=float(sum(float(r[2]) for r in rows)),
        by_campaign={r[0]: int(r[1]) for r in rows},
    )


def built_as_of(store: Store) -> str | None:
    """Return the instant the stored attributions were computed for, if ever."""
    rows = store.fetchall("SELECT value FROM meta WHERE key = ?", [META_KEY])
    return str(json.loads(rows[0][0])["as_of"]) if rows else None
