"""Measurement: the KPI report and an experiment report on DuckDB.

Figure 1: seconds for :func:`segmint.measure.kpis.campaign_kpis` over 1M sends and 5M
engagement events (opens, a share of them machine opens, clicks, unsubscribes) plus 100k
attributed conversions, for one period. Baseline: a hand-written SQL query computing the
same figures (plain JSON reads, no coercion rule), in the same run on the same file.
Goal: ratio <= 1.5.

Figure 2: seconds for :func:`segmint.measure.experiments.experiment_report` over 1M
assignments (three arms, engagement and conversions of the experiment's campaign among the
events above). Goal: < 1 s.

``SEGMINT_BENCH_SCALE`` multiplies the sizes (default 1).
"""

from __future__ import annotations

import os
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import common
from segmint.config.measure import ExperimentDef, VariantDef
from segmint.config.model import WorkspaceDef
from segmint.measure.experiments import experiment_report
from segmint.measure.kpis import campaign_kpis
from segmint.store.duckdb import DuckDBStore

SCALE = float(os.environ.get("SEGMINT_BENCH_SCALE", "1"))
SENDS = int(1_000_000 * SCALE)
EVENTS = int(5_000_000 * SCALE)
ASSIGNED = int(1_000_000 * SCALE)
T0 = datetime(2026, 1, 1, tzinfo=UTC)

HAND = """
SELECT coalesce(s.campaign, e.campaign, a.campaign) AS campaign,
       coalesce(s.sent, 0), coalesce(s.delivered, 0), coalesce(s.bounced, 0),
       coalesce(e.opened, 0), coalesce(e.machine, 0), coalesce(e.clicked, 0),
       coalesce(e.unsub, 0), coalesce(a.conversions, 0), coalesce(a.revenue, 0)
FROM (
    SELECT campaign, count(*) AS sent, count(*) FILTER (WHERE status = 'sent') AS delivered,
           count(bounced_at) AS bounced
    FROM sends
    WHERE coalesce(sent_at, bounced_at) > ? AND coalesce(sent_at, bounced_at) <= ?
      AND (status = 'sent' OR bounced_at IS NOT NULL)
    GROUP BY campaign
) s
FULL JOIN (
    SELECT properties->>'campaign' AS campaign,
           count(DISTINCT profile_id) FILTER (WHERE event = 'Email Opened'
               AND (properties->>'machine_open') IS DISTINCT FROM 'true') AS opened,
           count(DISTINCT profile_id) FILTER (WHERE event = 'Email Opened'
               AND (properties->>'machine_open') = 'true') AS machine,
           count(DISTINCT profile_id) FILTER (WHERE event = 'Email Link Clicked'
               AND (properties->>'machine_click') IS DISTINCT FROM 'true') AS clicked,
           count(DISTINCT profile_id) FILTER (WHERE event = 'Email Unsubscribed') AS unsub
    FROM events
    WHERE type = 'track' AND event IN ('Email Opened', 'Email Link Clicked', 'Email Unsubscribed')
      AND timestamp > ? AND timestamp <= ?
    GROUP BY 1
) e ON e.campaign = s.campaign
FULL JOIN (
    SELECT campaign, count(*) AS conversions, sum(revenue) AS revenue FROM attributions
    WHERE converted_at > ? AND converted_at <= ? GROUP BY campaign
) a ON a.campaign = coalesce(s.campaign, e.campaign)
"""


def build(store: DuckDBStore) -> None:
    con = store  # bench setup: bulk SQL straight into the file
    con.execute(
        f"""INSERT INTO sends (send_key, campaign, profile_id, status, created_at, updated_at,
                              sent_at, bounced_at)
        SELECT 'c' || (i % 20) || ':p' || (i // 20), 'c' || (i % 20), 'p' || (i // 20),
               CASE WHEN i % 50 = 0 THEN 'failed' ELSE 'sent' END,
               TIMESTAMP '2026-01-01', TIMESTAMP '2026-01-01',
               CASE WHEN i % 50 = 0 THEN NULL
                    ELSE TIMESTAMP '2026-01-01' + to_seconds(i % 2592000) END,
               CASE WHEN i % 50 = 0 THEN TIMESTAMP '2026-01-02' END
        FROM range({SENDS}) t(i)"""
    )
    con.execute(
        f"""INSERT INTO events (message_id, type, event, profile_id, timestamp, received_at,
                               properties)
        SELECT 'e' || i, 'track',
               CASE WHEN i % 10 < 7 THEN 'Email Opened' WHEN i % 10 < 9
                    THEN 'Email Link Clicked' ELSE 'Email Unsubscribed' END,
               'p' || (hash(i) % {SENDS // 20}),
               TIMESTAMP '2026-01-01' + to_seconds(i % 2592000),
               TIMESTAMP '2026-01-01',
               json_object('campaign', 'c' || (i % 20), 'machine_open', i % 7 = 0,
                           'machine_click', i % 13 = 0)
        FROM range({EVENTS}) t(i)"""
    )
    con.execute(
        f"""INSERT INTO events (message_id, type, event, profile_id, timestamp, received_at,
                               properties)
        SELECT 'o' || i, 'track', 'Order Completed', 'p' || (hash(i) % {SENDS // 20}),
               TIMESTAMP '2026-01-05' + to_seconds(i % 2000000), TIMESTAMP '2026-01-05',
               json_object('total', (i % 200) + 0.5)
        FROM range({SENDS // 10}) t(i)"""
    )
    con.execute(
        f"""INSERT INTO attributions
        SELECT 'o' || i, 'p' || i, 'c' || (i % 20), 'open', TIMESTAMP '2026-01-05',
               TIMESTAMP '2026-01-05' + to_seconds(i % 2000000), (i % 200) + 0.5
        FROM range({SENDS // 10}) t(i)"""
    )
    con.execute(
        f"""INSERT INTO experiment_assignments
        SELECT 'exp', 'p' || i, CASE i % 3 WHEN 0 THEN 'control' WHEN 1 THEN 'b' ELSE 'h' END,
               TIMESTAMP '2026-01-03'
        FROM range({ASSIGNED}) t(i)"""
    )
    con.execute("CHECKPOINT")


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="segmint-bench-measure-"))
    store = DuckDBStore(folder / "bench.duckdb")
    started = time.perf_counter()
    build(store)
    print(f"built {SENDS:,} sends, {EVENTS:,} engagement events, {ASSIGNED:,} assignments "
          f"in {time.perf_counter() - started:.1f} s")  # fmt: skip
    start, end = T0 + timedelta(days=3), T0 + timedelta(days=25)
    bounds = [start.replace(tzinfo=None), end.replace(tzinfo=None)] * 3

    ours = common.best_of(lambda: campaign_kpis(store, start, end))
    hand = common.best_of(lambda: store.fetchall(HAND, bounds))
    got = campaign_kpis(store, start, end)
    rows = {r[0]: r[1:] for r in store.fetchall(HAND, bounds)}
    for key, kpis in got.items():  # the same figures, or the comparison means nothing
        assert (
            kpis.sent,
            kpis.delivered,
            kpis.bounced,
            kpis.opened,
            kpis.machine_opened,
            kpis.clicked,
            kpis.unsubscribed,
            kpis.conversions,
        ) == tuple(rows[key][:8]), key
    common.report(
        "measure: KPI report, 1M sends + 5M events",
        ours,
        "s",
        baseline=hand,
        baseline_name="hand-written SQL",
        ratio=ours / hand,
        goal="ratio <= 1.5",
    )

    defn = WorkspaceDef.model_validate({"name": "bench"}).model_copy(update={"experiments": {
        "exp": ExperimentDef(campaign="c1", variants=(
            VariantDef(name="control"), VariantDef(name="b"), VariantDef(name="h", holdout=True)
        ))}})  # fmt: skip
    as_of = T0 + timedelta(days=40)
    seconds = common.best_of(lambda: experiment_report(store, defn, "exp", as_of))
    report = experiment_report(store, defn, "exp", as_of)
    assert sum(a.n for a in report.arms) == ASSIGNED
    common.report("measure: experiment report, 1M assignments", seconds, "s", goal="< 1 s")
    store.close()


if __name__ == "__main__":
    main()
