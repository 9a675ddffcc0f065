"""Computed traits: batch SQL on DuckDB, incremental updates per second, state per profile.

Default size: 100k profiles / 1M events (SEGMINT_BENCH_SCALE=1 runs the issue's full
1M profiles / 10M events). A realistic event mix (page and product views, email
engagement, carts, orders, identify calls) is generated inside DuckDB with a fixed seed.

Figures:
- batch: the generated trait query (20 declared traits + 3 built-ins, materialised as
  ``profile_traits``) against one hand-written DuckDB statement computing the same values
  (goal: ratio <= 1.3);
- incremental: events applied per CPU second (one core, process CPU time, so other load on
  the machine does not count) with the same 20 traits (goal >= 100k/s); the baseline is a
  bare loop that reads each event's timestamp and name;
- state: mean serialised bytes of state per profile over full histories (goal <= 2 KB).
"""

from __future__ import annotations

import gc
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from common import best_of, report
from segmint.config.model import TraitDef
from segmint.store.duckdb import DuckDBStore
from segmint.traits import EVENT_COLUMNS, TraitEngine, build_catalog, row_to_event
from segmint.traits.sqlgen import trait_query
from segmint.traits.state import dumps

FULL = os.environ.get("SEGMINT_BENCH_SCALE") == "1"
PROFILES = 1_000_000 if FULL else 100_000
EVENTS = 10_000_000 if FULL else 1_000_000
INCREMENTAL_EVENTS = 500_000
AS_OF = datetime(2024, 7, 1, tzinfo=UTC)

TRAITS = {
    "first_name": {"from": "identify", "type": "string"},
    "email": {"from": "identify", "type": "string", "pii": True},
    "plan": {"from": "identify", "type": "string", "default": "free"},
    "orders": {"count": "events", "event": "Order Completed"},
    "lifetime_value": {"sum": "properties.total", "event": "Order Completed"},
    "avg_order_value": {"avg": "properties.total", "event": "Order Completed"},
    "max_order": {"max": "properties.total", "event": "Order Completed"},
    "first_purchase_at": {"first": "timestamp", "event": "Order Completed"},
    "last_purchase_at": {"last": "timestamp", "event": "Order Completed"},
    "big_orders_90d": {"count": "events", "event": "Order Completed", "where": "total > 100",
                       "within": "90d"},
    "eur_buyer": {"exists": "events", "event": "Order Completed", "where": "currency = 'EUR'"},
    "emails_opened_30d": {"count": "events", "event": "Email Opened", "within": "30d"},
    "emails_delivered_30d": {"count": "events", "event": "Email Delivered", "within": "30d"},
    "favorite_category": {"most_frequent": "properties.category", "event": "Product Viewed"},
    "categories_viewed": {"distinct_count": "properties.category", "event": "Product Viewed"},
    "last_sku": {"last": "properties.sku", "event": "Order Completed"},
    "pages_7d": {"count": "events", "event": "Page Viewed", "within": "7d"},
    "carts_3d": {"count": "events", "event": "Cart Abandoned", "within": "3d"},
    "open_rate": {"expr": "emails_opened_30d / emails_delivered_30d"},
    "days_since_purchase": {"expr": "days_since(last_purchase_at)"},
}  # fmt: skip

GENERATE = """
INSERT INTO events (message_id, type, event, profile_id, timestamp, received_at, properties,
                    traits, context)
SELECT 'm' || i, CASE WHEN r < 0.03 THEN 'identify' ELSE 'track' END,
  CASE WHEN r < 0.03 THEN NULL WHEN r < 0.43 THEN 'Page Viewed'
       WHEN r < 0.68 THEN 'Product Viewed' WHEN r < 0.80 THEN 'Email Opened'
       WHEN r < 0.90 THEN 'Email Delivered' WHEN r < 0.95 THEN 'Cart Abandoned'
       ELSE 'Order Completed' END,
  'p' || (hash(i) % {profiles}), ts, ts,
  CASE WHEN r >= 0.95 THEN json_object(
         'total', CASE WHEN i % 10 = 0 THEN to_json(CAST(round(r2 * 300, 2) AS VARCHAR))
                       ELSE to_json(round(r2 * 300, 2)) END,
         'currency', CASE WHEN i % 3 = 0 THEN 'EUR' ELSE 'USD' END,
         'sku', 'sku-' || (i % 500))
       WHEN r >= 0.43 AND r < 0.68 THEN json_object('category', 'c' || (i % 40))
       ELSE json_object('path', '/p/' || (i % 100)) END,
  CASE WHEN r < 0.03 THEN json_object('first_name', 'n' || (i % 1000), 'email',
       'u' || i || '@example.com', 'plan', CASE WHEN i % 5 = 0 THEN 'pro' END)
       ELSE '{{}}' END,
  '{{}}'
FROM (SELECT i, random() AS r, random() AS r2,
        TIMESTAMP '2024-07-01' - to_microseconds(CAST(random() * 180 * 86400e6 AS BIGINT)) AS ts
      FROM range({events}) t(i))
"""

HAND = """
WITH ev AS (SELECT * FROM events WHERE timestamp <= TIMESTAMP '2024-07-01'),
agg AS (
  SELECT profile_id,
    min(timestamp) AS first_seen_at, max(timestamp) AS last_seen_at, count(*) AS event_count,
    arg_max(traits->>'first_name', timestamp) FILTER (WHERE type = 'identify'
      AND traits->>'first_name' IS NOT NULL) AS first_name,
    arg_max(traits->>'email', timestamp) FILTER (WHERE type = 'identify'
      AND traits->>'email' IS NOT NULL) AS email,
    coalesce(arg_max(traits->>'plan', timestamp) FILTER (WHERE type = 'identify'
      AND traits->>'plan' IS NOT NULL), 'free') AS plan,
    count(*) FILTER (WHERE event = 'Order Completed') AS orders,
    sum(TRY_CAST(properties->>'total' AS DOUBLE)) FILTER (WHERE event = 'Order Completed')
      AS lifetime_value,
    avg(TRY_CAST(properties->>'total' AS DOUBLE)) FILTER (WHERE event = 'Order Completed')
      AS avg_order_value,
    max(TRY_CAST(properties->>'total' AS DOUBLE)) FILTER (WHERE event = 'Order Completed')
      AS max_order,
    min(timestamp) FILTER (WHERE event = 'Order Completed') AS first_purchase_at,
    max(timestamp) FILTER (WHERE event = 'Order Completed') AS last_purchase_at,
    count(*) FILTER (WHERE event = 'Order Completed'
      AND TRY_CAST(properties->>'total' AS DOUBLE) > 100
      AND timestamp > TIMESTAMP '2024-07-01' - INTERVAL 90 DAY) AS big_orders_90d,
    count(*) FILTER (WHERE event = 'Order Completed' AND properties->>'currency' = 'EUR') > 0
      AS eur_buyer,
    count(*) FILTER (WHERE event = 'Email Opened'
      AND timestamp > TIMESTAMP '2024-07-01' - INTERVAL 30 DAY) AS emails_opened_30d,
    count(*) FILTER (WHERE event = 'Email Delivered'
      AND timestamp > TIMESTAMP '2024-07-01' - INTERVAL 30 DAY) AS emails_delivered_30d,
    count(DISTINCT properties->>'category') FILTER (WHERE event = 'Product Viewed')
      AS categories_viewed,
    arg_max(properties->>'sku', timestamp) FILTER (WHERE event = 'Order Completed'
      AND properties->>'sku' IS NOT NULL) AS last_sku,
    count(*) FILTER (WHERE event = 'Page Viewed'
      AND timestamp > TIMESTAMP '2024-07-01' - INTERVAL 7 DAY) AS pages_7d,
    count(*) FILTER (WHERE event = 'Cart Abandoned'
      AND timestamp > TIMESTAMP '2024-07-01' - INTERVAL 3 DAY) AS carts_3d
  FROM ev GROUP BY profile_id),
fav AS (
  SELECT profile_id, arg_max(category, n) AS favorite_category FROM (
    SELECT profile_id, properties->>'category' AS category, count(*) AS n FROM ev
    WHERE event = 'Product Viewed' AND properties->>'category' IS NOT NULL GROUP BY 1, 2)
  GROUP BY 1)
SELECT agg.*, fav.favorite_category,
  emails_opened_30d / nullif(emails_delivered_30d, 0) AS open_rate,
  (epoch(TIMESTAMP '2024-07-01') - epoch(last_purchase_at)) / 86400 AS days_since_purchase
FROM agg LEFT JOIN fav USING (profile_id)
"""


def main() -> None:
    print(f"size: {PROFILES:,} profiles, {EVENTS:,} events ({'full' if FULL else 'reduced'})")
    with tempfile.TemporaryDirectory() as tmp:
        store = DuckDBStore(Path(tmp) / "bench.duckdb")
        start = time.perf_counter()
        store.execute("SELECT setseed(0.42)")
        store.execute(GENERATE.format(profiles=PROFILES, events=EVENTS))
        store.checkpoint()
        print(f"generated in {time.perf_counter() - start:.1f} s")
        catalog = build_catalog({n: TraitDef.model_validate(b) for n, b in TRAITS.items()})
        batch(store, catalog)
        incremental(store, catalog)
        store.close()


def batch(store: DuckDBStore, catalog: object) -> None:
    sql = trait_query(catalog, "duckdb", AS_OF).sql(dialect="duckdb")  # type: ignore[arg-type]
    # Interleaved runs, fastest of each: the machine is shared, so load comes and goes.
    ours, hand = float("inf"), float("inf")
    for _ in range(4):
        ours = min(
            ours,
            best_of(lambda: store.execute(f"CREATE OR REPLACE TABLE profile_traits AS {sql}"), 1),
        )
        hand = min(
            hand, best_of(lambda: store.execute(f"CREATE OR REPLACE TABLE hand AS {HAND}"), 1)
        )
    same = store.fetchall(
        "SELECT count(*) FROM profile_traits p JOIN hand h USING (profile_id) "
        "WHERE p.orders = h.orders AND p.pages_7d = h.pages_7d AND p.carts_3d = h.carts_3d "
        "AND p.last_purchase_at IS NOT DISTINCT FROM h.last_purchase_at "
        "AND p.categories_viewed = h.categories_viewed"
    )[0][0]
    rows = store.fetchall("SELECT count(*) FROM profile_traits")[0][0]
    print(f"batch: {rows:,} profiles; {same:,} agree with the hand-written query on spot columns")
    report("traits.batch_duckdb", ours, "s", baseline=hand, baseline_name="hand-written SQL",
           ratio=ours / hand, goal="ratio <= 1.3")  # fmt: skip


def incremental(store: DuckDBStore, catalog: object) -> None:
    engine = TraitEngine(catalog)  # type: ignore[arg-type]
    cols = EVENT_COLUMNS
    rows = store.fetchall(
        f"SELECT {cols} FROM events ORDER BY received_at LIMIT {INCREMENTAL_EVENTS}"
    )
    events = [row_to_event(r) for r in rows]
    del rows
    # The input events are the harness's, not engine state: keep the collector from
    # rescanning them on every full collection (a live engine never holds them all).
    gc.collect()
    gc.freeze()
    states: dict[str, object] = {}

    def apply_all() -> None:
        states.clear()
        for event in events:
            state = states.get(event.profile_id)
            if state is None:
                state = states[event.profile_id] = engine.new_state()
            engine.apply(state, event)  # type: ignore[arg-type]

    def bare() -> None:
        seen: dict[str, int] = {}
        for event in events:
            seen[event.profile_id] = len(event.event or "") + event.timestamp.microsecond

    took = cpu_best_of(apply_all)
    floor = cpu_best_of(bare)
    rate, floor_rate = len(events) / took, len(events) / floor
    report("traits.incremental_events_per_s", rate, "events/s", baseline=floor_rate,
           baseline_name="bare loop over the events", ratio=rate / floor_rate,
           goal=">= 100000 events/s")  # fmt: skip
    state_size(store, engine)


def cpu_best_of(fn: object, repeat: int = 2) -> float:
    """The fastest CPU time (this process, one thread) of ``fn``: "per core", unaffected by
    other processes competing for the machine's cores."""
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        fn()  # type: ignore[operator]
        best = min(best, time.process_time() - start)
    return best


def state_size(store: DuckDBStore, engine: TraitEngine) -> None:
    cols = EVENT_COLUMNS
    ids = [
        r[0] for r in store.fetchall("SELECT DISTINCT profile_id FROM events ORDER BY 1 LIMIT 5000")
    ]
    sizes = []
    for low, high in ((ids[0], ids[-1]),):
        sql = f"SELECT {cols} FROM events WHERE profile_id >= ? AND profile_id <= ?"
        states: dict[str, object] = {}
        for row in store.fetchall(sql, [low, high]):
            event = row_to_event(row)
            state = states.setdefault(event.profile_id, engine.new_state())
            engine.apply(state, event)  # type: ignore[arg-type]
        sizes = [len(dumps(engine, s)) for s in states.values()]  # type: ignore[arg-type]
    sizes.sort()
    p99 = sizes[int(len(sizes) * 0.99)]
    print(f"state: {len(sizes):,} profiles, mean {statistics.mean(sizes):.0f} B, "
          f"p99 {p99} B, max {sizes[-1]} B")  # fmt: skip
    report("traits.state_bytes_per_profile", statistics.mean(sizes), "bytes",
           goal="<= 2048 bytes (mean)")  # fmt: skip


if __name__ == "__main__":
    main()
