"""Warehouse-native: ``dbt build`` on dbt-duckdb vs ``segmint refresh``; Spark vs DuckDB.

Default size: 100k profiles / 1M events (SEGMINT_BENCH_SCALE=1 runs the issue's full
1M profiles / 10M events; SEGMINT_BENCH_EVENTS=N any size, a tenth as many profiles). The
events are bench/traits.py's generated mix; the workspace has its 23 traits and eight
segments (an exclusive group with a default, a parent, ``in_segment`` and ``performed``).

Figures (each measured in this run, once: every run is seconds long):
- dbt: ``dbt build`` of ``segmint export dbt`` (its models and 20-odd data tests, dbt's own
  start-up included) on a warehouse DuckDB file holding the same events, against the
  baseline ``segmint refresh`` (traits, memberships, changes, schedule) in the store;
- spark: ``refresh --engine spark`` in local mode (2 cores, session already started; reading
  the Parquet events, traits, memberships, not writing the store) against the baseline
  DuckDB running the same self-contained statement (``memberships sql --from events``).
Both paths are checked to give exactly the refresh's memberships.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from common import report
from segmint.membership.compiled import CompiledSegments
from segmint.membership.segsql import memberships_sql
from segmint.membership.service import Membership
from segmint.scale.dbt import export_project
from segmint.scale.parquet import export_events
from segmint.traits.source import EventSource
from segmint.workspace import Workspace
from traits import GENERATE, TRAITS

FULL = os.environ.get("SEGMINT_BENCH_SCALE") == "1"
EVENTS = int(os.environ.get("SEGMINT_BENCH_EVENTS", 10_000_000 if FULL else 1_000_000))
PROFILES = EVENTS // 10
AS_OF = datetime(2024, 7, 1, tzinfo=UTC)

SEGMENTS = """
segments:
  vip: {rule: "lifetime_value >= 600", group: lifecycle, priority: 100}
  loyal: {rule: "orders >= 3 and last_purchase_at >= now() - interval '60 days'",
          group: lifecycle, priority: 50}
  lapsed: {rule: "days_since_purchase > 90", group: lifecycle, priority: 10}
  visitor: {default: true, group: lifecycle}
  engaged: {rule: "emails_opened_30d >= 2 or open_rate > 0.5"}
  engaged_vip: {rule: "in_segment('vip') and in_segment('engaged')"}
  browsers: {rule: "categories_viewed >= 5", parent: engaged}
  cart_abandoners:
    rule: >-
      performed('Cart Abandoned', within => '3 days')
      and not performed('Order Completed', within => '3 days')
"""


def workspace_yaml() -> str:
    import json

    lines = ["name: bench", "traits:"]
    lines += [f"  {name}: {json.dumps(body)}" for name, body in TRAITS.items()]
    return "\n".join(lines) + "\n" + SEGMENTS


def main() -> None:
    print(f"size: {PROFILES:,} profiles, {EVENTS:,} events ({'full' if FULL else 'reduced'})")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "ws").mkdir()
        (root / "ws" / "segmint.yaml").write_text(workspace_yaml())
        ws = Workspace.open(root / "ws")
        start = time.perf_counter()
        ws.store.execute("SELECT setseed(0.42)")
        ws.store.execute(GENERATE.format(profiles=PROFILES, events=EVENTS))
        print(f"generated in {time.perf_counter() - start:.1f} s")
        start = time.perf_counter()
        Membership(ws).refresh(AS_OF)
        refresh_s = time.perf_counter() - start
        members = set(ws.store.fetchall("SELECT profile_id, segment FROM memberships"))
        print(f"segmint refresh: {refresh_s:.2f} s, {len(members):,} memberships")
        parquet = root / "events.parquet"
        export_events(ws.store, parquet)
        compiled = CompiledSegments(ws.definition)
        own = memberships_sql(compiled, dialect="duckdb", as_of=AS_OF, events=EventSource())
        start = time.perf_counter()
        got = set(ws.store.fetchall(own.sql("duckdb")))
        duck_s = time.perf_counter() - start
        assert got == members, "DuckDB's self-contained SQL differs from refresh"
        ws.close()
        dbt(root, parquet, ws, members, refresh_s)
        spark(root, parquet, ws, members, duck_s)


def dbt(root: Path, parquet: Path, ws: Workspace, members: set[object], baseline: float) -> None:
    warehouse = root / "warehouse.duckdb"
    con = duckdb.connect(str(warehouse))
    con.execute(f"CREATE TABLE events AS SELECT * FROM read_parquet('{parquet}')")
    con.close()
    project = root / "dbt"
    export_project(ws.definition, project, dialect="duckdb", events=EventSource())
    as_of = AS_OF.replace(tzinfo=None).isoformat(sep=" ")
    env = {**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
           "SEGMINT_DBT_DUCKDB": str(warehouse)}  # fmt: skip
    dbt_bin = Path(sys.executable).parent / "dbt"
    start = time.perf_counter()
    done = subprocess.run(
        [str(dbt_bin), "build", "--profiles-dir", ".", "--vars", f"{{segmint_as_of: '{as_of}'}}"],
        cwd=project, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    assert done.returncode == 0, done.stdout[-2000:]
    con = duckdb.connect(str(warehouse), read_only=True)
    built = set(con.execute("SELECT profile_id, segment FROM segmint_memberships").fetchall())
    con.close()
    assert built == members, "dbt's memberships differ from refresh"
    report("warehouse: dbt build (dbt-duckdb)", seconds, "s", baseline=baseline,
           baseline_name="segmint refresh", ratio=seconds / baseline)  # fmt: skip


def spark(root: Path, parquet: Path, ws: Workspace, members: set[object], baseline: float) -> None:
    from segmint.scale.spark import spark_refresh, spark_session

    session = spark_session("local[2]", app="segmint-bench")
    try:
        reopened = Workspace.open(ws.path)
        start = time.perf_counter()
        result = spark_refresh(
            reopened, AS_OF, events=str(parquet), output=root / "spark", write_store=False,
            session=session,
        )  # fmt: skip
        seconds = time.perf_counter() - start
        reopened.close()
    finally:
        session.stop()
    assert result.members == len(members)
    import pyarrow.parquet as pq

    rows = pq.read_table(root / "spark" / "memberships").to_pylist()
    assert {(r["profile_id"], r["segment"]) for r in rows} == members, "Spark differs"
    report("warehouse: refresh on Spark (local[2])", seconds, "s", baseline=baseline,
           baseline_name="DuckDB, same SQL", ratio=seconds / baseline)  # fmt: skip


if __name__ == "__main__":
    main()
