"""Membership engine: real-time throughput and latency, and batch refresh against hand SQL.

Workspace: the 20 traits of ``bench/traits.py`` and 50 segments over them (two exclusive
groups with defaults, parents, ``in_segment``, ``performed(...)``, time-relative rules).

Size: ``SEGMINT_BENCH_SCALE`` (default 0.1) times 1M profiles / 10M events, so the default is
100k / 1M and SEGMINT_BENCH_SCALE=1 the issue's full 1M / 10M. ``SEGMINT_BENCH_PART=refresh``
(or ``=stream``) runs one half; ``=postgres`` the PostgreSQL latency figures alone.

Figures:
- realtime.events_per_s: events streamed in-process through :class:`RealtimeEngine` in
  batches of 1,000 (as one intake group commit hands them over under load; stored in the
  events table beforehand, in time order, as intake stores them), per CPU second of
  this process, configured as ``segmint serve`` runs it: memberships, changes and schedule
  written to DuckDB in one transaction per batch, trait state and values every second, and
  once more at the end, and a DuckDB checkpoint, all inside the timed part, with serve's
  garbage collector settings (:func:`segmint.common.tune_gc_for_serving`) (goal >=
  50,000/s). Baseline: the trait engine alone on the same events (``TraitEngine.apply``),
  so the ratio is the cost of membership on top of traits.
- realtime.hot_events_per_s: the same traffic again, later, for the profiles the engine
  now holds in memory (a server's active customers; no profile loads).
- realtime.latency_*: wall time from handing one event to the engine (one event per call)
  until its changes are *decided* (in memory, before the write) and until they are
  *committed* to DuckDB and published (goal p99 <= 5 ms). As in ``segmint serve``, the
  timer's work (firing what fell due before the event, saving trait state each second)
  runs between events, not inside the measured call.
- realtime.postgres_latency_*: the same latency figures with the store on PostgreSQL
  (``SEGMINT_TEST_POSTGRES_URL`` or the local default; a schema is made and dropped): the
  history before the measured events is copied there, refreshed and rebuilt, the engine
  warmed with the stream's first quarter, then one event per call as above. A server on
  PostgreSQL pays ~0.1 ms a statement where DuckDB pays ~0.3-0.7 ms, and an event's write
  is about six statements.
- refresh.batch_s: the first ``segmint refresh`` of the generated store against
  hand-written DuckDB SQL computing the same traits and memberships into tables (ratio; goal
  <= 1.3 at full size). The script checks that both give the same (segment, profile) pairs.
  Not like for like in refresh's favour: besides ``profile_traits`` and ``memberships``
  (what the hand SQL writes), refresh writes in the same transaction what no hand SQL here
  does: every profile's values as JSON in ``trait_values`` (its primary key index too), one
  ``membership_changes`` row per entry with its cause (no index on DuckDB since migration
  63: none of its reads used one), the ``memberships`` profile index and the ``schedule`` of
  time transitions (which reads the events again for the windows). How a first refresh
  writes them: set-based, no row passes through Python. The change log is one
  ``INSERT … SELECT`` per kind from the evaluated (segment, profile) pairs joined to one
  cause per segment (a first refresh reads the pairs in place: with no memberships there is
  nothing to diff); ``memberships`` is an ``INSERT … SELECT`` from the same pairs, and the
  schedule one ``INSERT … SELECT`` of its query (a second ``GROUP BY`` over the events of
  the widest window only: computing the window expiries in the trait pass was measured and
  cost as much). ``profile_traits`` is created in profile order and ``memberships`` and
  ``schedule`` are inserted in profile order, because DuckDB fills their indexes at commit,
  on one thread, several times faster for keys in order. The CPU seconds of both sides (all
  threads) are printed too: on a shared machine they vary less than the wall time the
  figures report.
- refresh.again_s: a second refresh a day later, the steady state of a scheduled refresh
  (the hand SQL again as the baseline). Refresh writes only the difference where it can:
  enters and exits (and their changes) only, ``schedule`` rows whose instant moved, and
  ``trait_values`` updated in place (an emptied and refilled table costs DuckDB a delete
  per row in its primary key index at commit: 30 s at 300k profiles).
"""

from __future__ import annotations

import dataclasses
import gc
import importlib.util
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))


def _load(name: str) -> object:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", HERE / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


common = _load("common")
traits_bench = _load("traits")  # its 20 traits, event generator and hand-written SQL
report = common.report  # type: ignore[attr-defined]

from segmint.clock import FixedClock  # noqa: E402
from segmint.common import tune_gc_for_serving  # noqa: E402
from segmint.config.model import WorkspaceDef  # noqa: E402
from segmint.events import Event  # noqa: E402
from segmint.membership.batch import refresh  # noqa: E402
from segmint.membership.compiled import CompiledSegments  # noqa: E402
from segmint.membership.realtime import RealtimeEngine  # noqa: E402
from segmint.membership.service import CHECKPOINT_EVERY  # noqa: E402
from segmint.store.duckdb import DuckDBStore  # noqa: E402
from segmint.traits import EVENT_COLUMNS, rebuild, row_to_event  # noqa: E402

SCALE = float(os.environ.get("SEGMINT_BENCH_SCALE", "0.1"))
FULL = SCALE == 1
SMOKE = os.environ.get("SEGMINT_BENCH_SMOKE") == "1"  # a quick check of the script itself
# SEGMINT_BENCH_PART=refresh or =stream runs one half (the refresh alone at full scale takes
# minutes; the stream's history rebuild takes most of an hour there)
PART = os.environ.get("SEGMINT_BENCH_PART", "")
PROFILES = 5_000 if SMOKE else int(1_000_000 * SCALE)
EVENTS = 50_000 if SMOKE else int(10_000_000 * SCALE)
STREAM = 20_000 if SMOKE else 60_000
LATENCY_EVENTS = 2_000
BATCH = 1000
AS_OF = datetime(2024, 7, 1, tzinfo=UTC)
NOW = "TIMESTAMP '2024-07-01'"

# name -> (rule, hand-written SQL over the hand trait table), ungrouped segments
SEGMENTS: dict[str, tuple[str, str]] = {
    **{f"ltv_{n}": (f"lifetime_value >= {n}", f"lifetime_value >= {n}")
       for n in (50, 100, 200, 400, 800)},
    **{f"orders_{n}": (f"orders >= {n}", f"orders >= {n}") for n in (1, 2, 3, 5, 8)},
    **{f"opens_{n}": (f"emails_opened_30d >= {n}", f"emails_opened_30d >= {n}")
       for n in (1, 3, 5)},
    **{f"pages_{n}": (f"pages_7d >= {n}", f"pages_7d >= {n}") for n in (1, 5, 10)},
    **{f"cats_{n}": (f"categories_viewed >= {n}", f"categories_viewed >= {n}")
       for n in (2, 5, 10)},
    "carts_recent": ("carts_3d >= 1", "carts_3d >= 1"),
    "carts_many": ("carts_3d >= 2", "carts_3d >= 2"),
    "big_orders": ("big_orders_90d >= 1", "big_orders_90d >= 1"),
    "big_orders_2": ("big_orders_90d >= 2", "big_orders_90d >= 2"),
    "fav_c1": ("favorite_category in ('c1', 'c2', 'c3')", "fav IN ('c1', 'c2', 'c3')"),
    "fav_c9": ("favorite_category = 'c9'", "fav = 'c9'"),
    "pro": ("plan = 'pro'", "plan = 'pro'"),
    "eur": ("eur_buyer", "eur_buyer"),
    "openers": ("open_rate > 0.3", "open_rate > 0.3"),
    "fresh_buyer": ("days_since_purchase < 14", "days_since_purchase < 14"),
    "stale_buyer": ("days_since_purchase > 30", "days_since_purchase > 30"),
    "bought_30d": ("last_purchase_at >= now() - interval '30 days'",
                   f"last_purchase_at >= {NOW} - INTERVAL 30 DAY"),
    "seen_7d": ("last_seen_at >= now() - interval '7 days'",
                f"last_seen_at >= {NOW} - INTERVAL 7 DAY"),
    "abandoners": (
        "performed('Cart Abandoned', within => '3 days') and "
        "not performed('Order Completed', within => '3 days')",
        "ca3 >= 1 AND NOT (oc3 >= 1)"),
    "browsing": ("performed('Product Viewed', at_least => 3, within => '7 days')", "pv7 >= 3"),
    "big_spender_eur": ("avg_order_value > 150 and eur_buyer",
                        "avg_order_value > 150 AND eur_buyer"),
    "reachable": ("email is not null and plan != 'pro'", "email IS NOT NULL AND plan != 'pro'"),
}  # fmt: skip
GROUPS: dict[str, list[tuple[str, str, str, int]]] = {
    "lifecycle": [
        ("vip", "lifetime_value >= 1000", "lifetime_value >= 1000", 100),
        ("loyal", "orders >= 5", "orders >= 5", 80),
        ("active", "last_seen_at >= now() - interval '7 days'",
         f"last_seen_at >= {NOW} - INTERVAL 7 DAY", 60),
        ("at_risk", "last_purchase_at < now() - interval '60 days'",
         f"last_purchase_at < {NOW} - INTERVAL 60 DAY", 40),
        ("churned", "last_seen_at < now() - interval '90 days'",
         f"last_seen_at < {NOW} - INTERVAL 90 DAY", 20),
    ],
    "engagement": [
        ("engaged", "emails_opened_30d >= 4", "emails_opened_30d >= 4", 30),
        ("lurking", "pages_7d >= 3", "pages_7d >= 3", 20),
        ("dormant", "event_count < 5", "event_count < 5", 10),
    ],
}  # fmt: skip
DERIVED = {  # children and in_segment: (rule, parent, hand SQL using the hand segment columns)
    "vip_eur": ("eur_buyer", "vip", "s_vip AND coalesce(eur_buyer, false)"),
    "loyal_pro": ("plan = 'pro'", "loyal", "s_loyal AND coalesce(plan = 'pro', false)"),
    "vip_engaged": ("in_segment('vip') and in_segment('engaged')", None, "s_vip AND s_engaged"),
    "risky_browsers": ("in_segment('at_risk') and in_segment('browsing')", None,
                       "s_at_risk AND s_browsing"),
}  # fmt: skip


def workspace() -> WorkspaceDef:
    segments: dict[str, dict[str, object]] = {n: {"rule": r} for n, (r, _) in SEGMENTS.items()}
    for group, members in GROUPS.items():
        for name, rule, _, priority in members:
            segments[name] = {"rule": rule, "group": group, "priority": priority}
        segments[f"{group}_default"] = {"default": True, "group": group}
    for name, (rule, parent, _) in DERIVED.items():
        segments[name] = {"rule": rule, **({"parent": parent} if parent else {})}
    return WorkspaceDef.model_validate(
        {"name": "bench", "traits": traits_bench.TRAITS, "segments": segments}  # type: ignore[attr-defined]
    )


def hand_segments_sql() -> str:
    cols = [f"coalesce({sql}, false) AS s_{n}" for n, (_, sql) in SEGMENTS.items()]
    for group, members in GROUPS.items():
        whens = " ".join(f"WHEN coalesce({sql}, false) THEN '{n}'" for n, _, sql, _ in members)
        cols.append(f"CASE {whens} ELSE '{group}_default' END AS g_{group}")
    inner = (
        f"SELECT h.*, x.ca3, x.oc3, x.pv7, x.fav, {', '.join(cols)} "
        "FROM hand h JOIN extra x USING (profile_id)"
    )
    flags = [f"g_lifecycle = '{n}' AS s_{n}" for n, *_ in GROUPS["lifecycle"]]
    flags += [f"g_engagement = '{n}' AS s_{n}" for n, *_ in GROUPS["engagement"]]
    step = f"SELECT *, {', '.join(flags)} FROM ({inner})"
    derived = ", ".join(f"{sql} AS s_{n}" for n, (_, _, sql) in DERIVED.items())
    wide = f"SELECT *, {derived} FROM ({step})"
    names = [*SEGMENTS, *DERIVED, *(n for g in GROUPS.values() for n, *_ in g)]
    parts = [f"SELECT profile_id, '{n}' AS segment FROM wide WHERE s_{n}" for n in names]
    parts += [
        f"SELECT profile_id, '{g}_default' FROM wide WHERE g_{g} = '{g}_default'" for g in GROUPS
    ]
    return f"WITH wide AS ({wide}) " + " UNION ALL ".join(parts)


# the implicit traits of performed(), and favorite_category with its tie-break (smallest value)
EXTRA = f"""
WITH ev AS (SELECT * FROM events WHERE timestamp <= {NOW}),
fav AS (SELECT profile_id, first(category ORDER BY n DESC, category) AS fav FROM (
    SELECT profile_id, properties->>'category' AS category, count(*) AS n FROM ev
    WHERE event = 'Product Viewed' AND properties->>'category' IS NOT NULL GROUP BY 1, 2)
  GROUP BY 1)
SELECT profile_id, fav.fav,
  count(*) FILTER (WHERE event = 'Cart Abandoned' AND timestamp > {NOW} - INTERVAL 3 DAY) AS ca3,
  count(*) FILTER (WHERE event = 'Order Completed' AND timestamp > {NOW} - INTERVAL 3 DAY) AS oc3,
  count(*) FILTER (WHERE event = 'Product Viewed' AND timestamp > {NOW} - INTERVAL 7 DAY) AS pv7
FROM ev LEFT JOIN fav USING (profile_id) GROUP BY profile_id, fav.fav
"""


def hand_refresh(store: DuckDBStore) -> None:
    store.execute(f"CREATE OR REPLACE TABLE hand AS {traits_bench.HAND}")  # type: ignore[attr-defined]
    store.execute(f"CREATE OR REPLACE TABLE extra AS {EXTRA}")
    store.execute(f"CREATE OR REPLACE TABLE hand_members AS {hand_segments_sql()}")


def batch(store: DuckDBStore, compiled: CompiledSegments) -> None:
    start, cpu = time.perf_counter(), time.process_time()
    result = refresh(store, compiled, AS_OF)
    ours, ours_cpu = time.perf_counter() - start, time.process_time() - cpu
    start, cpu = time.perf_counter(), time.process_time()
    hand_refresh(store)
    hand, hand_cpu = time.perf_counter() - start, time.process_time() - cpu
    cpu_line(ours_cpu, hand_cpu)
    differ = store.fetchall(
        "SELECT count(*) FROM ((SELECT segment, profile_id FROM memberships EXCEPT "
        "SELECT segment, profile_id FROM hand_members) UNION ALL (SELECT segment, profile_id "
        "FROM hand_members EXCEPT SELECT segment, profile_id FROM memberships))"
    )[0][0]
    members = store.fetchall("SELECT count(*) FROM memberships")[0][0]
    print(f"refresh: {result.profiles:,} profiles, {members:,} memberships, "
          f"{result.entered:,} changes; {differ} (segment, profile) pairs differ from the "
          "hand-written SQL")  # fmt: skip
    report("membership.refresh_batch_s", ours, "s", baseline=hand,
           baseline_name="hand-written SQL (traits + segments into tables)", ratio=ours / hand,
           goal="first refresh incl. trait values, change log, schedule; ratio <= 1.3")  # fmt: skip
    start, cpu = time.perf_counter(), time.process_time()
    result = refresh(store, compiled, AS_OF + timedelta(days=1))
    again, again_cpu = time.perf_counter() - start, time.process_time() - cpu
    start, cpu = time.perf_counter(), time.process_time()
    hand_refresh(store)
    hand, hand_cpu = time.perf_counter() - start, time.process_time() - cpu
    cpu_line(again_cpu, hand_cpu)
    print(f"refresh a day later: {result.entered:,} entered, {result.exited:,} exited")
    report("membership.refresh_again_s", again, "s", baseline=hand,
           baseline_name="hand-written SQL (traits + segments into tables)", ratio=again / hand,
           goal="steady state: only the difference written; ratio reported")  # fmt: skip


def cpu_line(ours: float, hand: float) -> None:
    print(f"  CPU seconds (all threads): refresh {ours:.2f}, hand-written SQL {hand:.2f}, "
          f"ratio {ours / hand:.2f}")  # fmt: skip


def stream(store: DuckDBStore, compiled: CompiledSegments) -> None:
    # the latest events, in time order: a stream arriving now
    latest = f"ORDER BY timestamp DESC LIMIT {STREAM + LATENCY_EVENTS}"
    store.execute(f"CREATE TEMP TABLE stream AS SELECT * FROM events {latest}")
    # Steady state: profiles have their history. Keep the events before the stream in the
    # store, build every profile's trait state and memberships from them, then stream.
    cutoff = store.fetchall("SELECT min(timestamp) FROM stream")[0][0]
    store.execute("DELETE FROM events WHERE timestamp >= ?", [cutoff])
    cutoff = cutoff.replace(tzinfo=UTC)
    start = time.perf_counter()
    refresh(store, compiled, cutoff)
    rebuild(store, compiled.catalog, cutoff)
    print(
        f"history before the stream: state and memberships in {time.perf_counter() - start:.1f} s"
    )
    # The streamed events are stored before they are streamed, as intake stores them before
    # real time sees them, in time order (their ``seq`` follows it): a profile loaded
    # mid-stream is rebuilt from the events up to the batch's, never later ones.
    store.execute(
        "INSERT INTO events BY NAME SELECT * EXCLUDE (seq) FROM stream ORDER BY timestamp"
    )
    store.execute("DROP TABLE stream")
    rows = store.fetchall(f"SELECT {EVENT_COLUMNS} FROM events WHERE timestamp >= ? ORDER BY seq",
                          [cutoff.replace(tzinfo=None)])  # fmt: skip
    events = [row_to_event(r) for r in rows]
    del rows
    gc.collect()
    tune_gc_for_serving()  # as ``segmint serve`` runs: history and workspace frozen
    warm, timed, single = events[: STREAM // 4], events[STREAM // 4 : STREAM], events[STREAM:]
    engine = RealtimeEngine(store, compiled, FixedClock(AS_OF), checkpoint_every=CHECKPOINT_EVERY)
    feed(engine, warm)  # a running server has its hot profiles in memory
    engine.checkpoint()
    engine.stats.clear()
    cpu = time.process_time()
    changes = feed(engine, timed)
    engine.checkpoint()  # the trait state of every profile touched, written
    store.checkpoint()  # and the write-ahead log folded into the database file
    took = time.process_time() - cpu
    traits_only = traits_baseline(compiled, timed)
    rate, base = len(timed) / took, len(timed) / traits_only
    stats = engine.stats
    print(f"stream: {len(timed):,} events, {stats['time']:,} time transitions fired, "
          f"{changes:,} membership changes, {len(engine._live):,} live profiles")  # fmt: skip
    report("membership.realtime_events_per_s", rate, "events/s", baseline=base,
           baseline_name="trait engine alone on the same events", ratio=rate / base,
           goal=">= 50000 events/s (one core)")  # fmt: skip
    latency(engine, single)
    hot(engine, store, timed, single[-1].timestamp)  # type: ignore[attr-defined]


def hot(engine: RealtimeEngine, store: DuckDBStore, timed: list[Event], end: datetime) -> None:
    """The same traffic again, later, for the profiles the engine now holds in memory.

    A server's active customers send several events in a session; this is the engine's
    steady state for them (no profile loads), everything else as in the main figure.
    """
    shift = end - timed[0].timestamp + timedelta(seconds=1)
    again = [
        dataclasses.replace(e, message_id=f"{e.message_id}-again", timestamp=e.timestamp + shift)
        for e in timed
    ]
    engine.stats.clear()
    cpu = time.process_time()
    changes = feed(engine, again)
    engine.checkpoint()
    store.checkpoint()
    took = time.process_time() - cpu
    base = len(again) / traits_baseline(engine.compiled, again)
    rate = len(again) / took
    print(f"hot stream: {len(again):,} events, {engine.stats['time']:,} time transitions "
          f"fired, {changes:,} membership changes")  # fmt: skip
    report("membership.realtime_hot_events_per_s", rate, "events/s", baseline=base,
           baseline_name="trait engine alone on the same events", ratio=rate / base,
           goal="profiles already in memory; >= 50000 events/s (one core)")  # fmt: skip


def feed(engine: RealtimeEngine, events: list[object]) -> int:
    count = 0
    for start in range(0, len(events), BATCH):
        chunk = events[start : start + BATCH]
        as_of = chunk[-1].timestamp  # type: ignore[attr-defined]
        count += len(engine.process(chunk, (), as_of))  # type: ignore[arg-type]
    return count


def traits_baseline(compiled: CompiledSegments, events: list[object]) -> float:
    engine = compiled.traits
    states: dict[str, object] = {}
    cpu = time.process_time()
    for event in events:
        state = states.get(event.profile_id)  # type: ignore[attr-defined]
        if state is None:
            state = states[event.profile_id] = engine.new_state()  # type: ignore[attr-defined]
        engine.apply(state, event)  # type: ignore[arg-type]
    return time.process_time() - cpu


def latency(
    engine: RealtimeEngine, events: list[object], prefix: str = "membership.realtime_latency"
) -> None:
    flushes: list[float] = []
    flush = engine._flush

    def timed_flush(*args: object) -> object:
        start = time.perf_counter()
        try:
            return flush(*args)  # type: ignore[arg-type]
        finally:
            flushes.append((time.perf_counter() - start) * 1000)

    total = []
    saved = time.monotonic()
    for event in events:
        at = event.timestamp  # type: ignore[attr-defined]
        # what serve's timer thread does once a second: fire what fell due, save state
        engine.advance(at)
        if time.monotonic() - saved >= CHECKPOINT_EVERY:
            engine.checkpoint()
            saved = time.monotonic()
        engine._flush = timed_flush  # type: ignore[method-assign]
        start = time.perf_counter()
        engine.process([event], (), at + timedelta(milliseconds=1))  # type: ignore[list-item]
        total.append((time.perf_counter() - start) * 1000)
        engine._flush = flush  # type: ignore[method-assign]
    decided = sorted(t - f for t, f in zip(total, flushes, strict=True))
    total.sort()
    for label, samples in (("decided", decided), ("committed", total)):
        p50, p99 = statistics.median(samples), samples[int(len(samples) * 0.99)]
        report(f"{prefix}_{label}_p50_ms", p50, "ms", goal=f"event -> change {label}")
        report(f"{prefix}_{label}_p99_ms", p99, "ms", goal="<= 5 ms")


def postgres_latency(duck: DuckDBStore, compiled: CompiledSegments) -> None:
    """The latency figures with the store on PostgreSQL (see the module's docstring)."""
    from segmint.store.postgres import PostgresStore, drop_schema

    made = common.pg_schema("bench_rt", "postgres latency")  # type: ignore[attr-defined]
    if made is None:
        return
    schema, url = made
    pg = PostgresStore(url)
    try:
        start = time.perf_counter()
        # the measured events and the warm-up before them: the latest, in time order
        latest = STREAM // 4 + LATENCY_EVENTS
        cutoff = duck.fetchall(
            f"SELECT min(timestamp) FROM (SELECT timestamp FROM events "
            f"ORDER BY timestamp DESC LIMIT {latest})"
        )[0][0]
        history = duck.fetch_arrow(
            "SELECT * EXCLUDE (seq) FROM events WHERE timestamp < ? ORDER BY timestamp", [cutoff]
        )
        for offset in range(0, history.num_rows, 100_000):
            pg.append_events(history.slice(offset, 100_000))
        # each profile's row, as intake writes it (the engine locks it before each write)
        pg.execute(
            "INSERT INTO profiles (profile_id, created_at, updated_at) "
            "SELECT profile_id, min(timestamp), max(timestamp) FROM events GROUP BY profile_id"
        )
        aware = cutoff.replace(tzinfo=UTC)
        refresh(pg, compiled, aware)
        rebuild(pg, compiled.catalog, aware)
        pg.append_events(duck.fetch_arrow(
            "SELECT * EXCLUDE (seq) FROM events WHERE timestamp >= ? ORDER BY timestamp", [cutoff]
        ))  # fmt: skip
        rows = pg.fetchall(
            f"SELECT {EVENT_COLUMNS} FROM events WHERE timestamp >= ? ORDER BY seq", [cutoff]
        )
        events = [row_to_event(r) for r in rows]
        print(f"postgres: {history.num_rows:,} events of history copied, refreshed and rebuilt "
              f"in {time.perf_counter() - start:.1f} s")  # fmt: skip
        engine = RealtimeEngine(pg, compiled, FixedClock(AS_OF), checkpoint_every=CHECKPOINT_EVERY)
        feed(engine, events[: STREAM // 4])
        engine.checkpoint()
        latency(engine, events[STREAM // 4 :], prefix="membership.realtime_postgres_latency")
        engine.checkpoint()
    finally:
        pg.close()
        drop_schema(common.PG_URL, schema)  # type: ignore[attr-defined]


def main() -> None:
    count = len(SEGMENTS) + len(DERIVED) + sum(len(g) + 1 for g in GROUPS.values())
    size = "full" if FULL else "reduced"
    print(f"size: {PROFILES:,} profiles, {EVENTS:,} events ({size}); {count} segments")
    compiled = CompiledSegments(workspace())
    with tempfile.TemporaryDirectory() as tmp:
        store = DuckDBStore(Path(tmp) / "bench.duckdb")
        start = time.perf_counter()
        store.execute("SELECT setseed(0.42)")
        store.execute(traits_bench.GENERATE.format(profiles=PROFILES, events=EVENTS))  # type: ignore[attr-defined]
        store.checkpoint()
        print(f"generated in {time.perf_counter() - start:.1f} s")
        if PART in ("", "refresh"):
            batch(store, compiled)
        if PART in ("", "stream"):
            stream(store, compiled)
        if PART in ("", "stream", "postgres"):
            postgres_latency(store, compiled)
        store.close()


if __name__ == "__main__":
    main()
