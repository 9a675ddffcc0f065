"""``refresh --engine spark``: Spark (local mode) decides exactly what DuckDB decides.

One Spark session serves the module (start-up takes seconds). Without pyspark or Java the
tests skip with the reason, and fail under ``SEGMINT_REQUIRE_SERVICES=1`` (CI).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.conftest import cli_now, service_missing
from tests.scale.conftest import AS_OF
from tests.scale.test_dialects import EVENTS_DDL, SHOP, T0, identify, track

from segmint.membership.compiled import CompiledSegments
from segmint.membership.segsql import memberships_sql
from segmint.scale.parquet import export_events
from segmint.scale.spark import SparkEventsError, spark_refresh, spark_session
from segmint.traits.errors import EventColumnError
from segmint.traits.source import EventSource


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    try:
        import pyspark  # noqa: F401
    except ImportError as exc:
        service_missing("Spark", f"pyspark is not installed ({exc}): pip install -e '.[spark]'")
    if shutil.which("java") is None:
        service_missing("Spark", "no Java runtime on PATH (Debian: openjdk-17-jre-headless)")
    version = subprocess.run(["java", "-version"], capture_output=True, text=True, check=False)
    if version.returncode != 0:
        service_missing("Spark", f"java -version failed: {version.stderr.strip()}")
    session = spark_session("local[2]", app="segmint-tests")
    yield session
    session.stop()


def test_demo_on_spark_equals_duckdb(spark: Any, duck_demo: Any, tmp_path: Path) -> None:
    ws, members = duck_demo
    parquet = tmp_path / "events.parquet"
    assert (
        export_events(ws.store, parquet) == ws.store.fetchall("SELECT count(*) FROM events")[0][0]
    )
    # the store already holds DuckDB's memberships at AS_OF: Spark changes none of them
    out = tmp_path / "out"
    same = spark_refresh(ws, AS_OF, events=str(parquet), output=out, session=spark)
    assert (same.entered, same.exited, same.members) == (0, 0, len(members))
    written = pq.read_table(out / "memberships").to_pylist()
    assert {(r["profile_id"], r["segment"]) for r in written} == members
    assert pq.read_table(out / "traits").num_rows == same.profiles


def test_a_mapped_table_and_a_missing_column(spark: Any, duck_demo: Any, tmp_path: Path):
    ws, members = duck_demo
    parquet = tmp_path / "events.parquet"
    export_events(ws.store, parquet)
    renamed = spark.read.parquet(str(parquet)).selectExpr(
        "message_id AS msg", "profile_id AS person", "timestamp AS sent_at", "type", "event",
        "properties AS props", "traits",
    )  # fmt: skip
    renamed.createOrReplaceTempView("raw_tracks")  # a table of the session's catalog
    mapping = {"message_id": "msg", "profile_id": "person", "timestamp": "sent_at",
               "properties": "props"}  # fmt: skip
    out = tmp_path / "out"
    spark_refresh(ws, AS_OF, events="raw_tracks", mapping=mapping, output=out,
                  write_store=False, session=spark)  # fmt: skip
    written = pq.read_table(out / "memberships").to_pylist()
    assert {(r["profile_id"], r["segment"]) for r in written} == members
    with pytest.raises(EventColumnError) as missing:
        spark_refresh(
            ws, AS_OF, events=str(parquet), mapping={"properties": "props"}, session=spark
        )
    text = str(missing.value)
    assert "'props' (mapped from 'properties')" in text and "(spark)" in text
    assert "'lifetime_value'" in text
    with pytest.raises(SparkEventsError, match="cannot read the Parquet events '/no/such.parquet'"):
        spark_refresh(ws, AS_OF, events="/no/such.parquet", session=spark)
    with pytest.raises(SparkEventsError, match="cannot read the events table 'no_such_table'"):
        spark_refresh(ws, AS_OF, events="no_such_table", session=spark)


def _write(rows: list[tuple[Any, ...]], path: Path) -> None:
    names = ["message_id", "profile_id", "timestamp", "type", "event", "properties", "traits"]
    columns = {n: [r[i] for r in rows] for i, n in enumerate(names)}
    schema = pa.schema(
        [(n, pa.timestamp("us") if n == "timestamp" else pa.string()) for n in names]
    )
    pq.write_table(pa.table(columns, schema=schema), path)


@settings(
    max_examples=3,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(shops=st.lists(st.lists(st.one_of(track, identify), max_size=30), min_size=1, max_size=12))
def test_generated_events_on_spark_equal_duckdb(
    spark: Any, tmp_path: Path, shops: list[list[dict[str, Any]]]
) -> None:
    """Each example holds several independent shops (profile ids kept apart): one Spark run."""
    folder = tmp_path / "shop"
    folder.mkdir(exist_ok=True)
    (folder / "segmint.yaml").write_text(SHOP)
    from segmint.workspace import Workspace

    ws = Workspace.open(folder)
    try:
        rows = []
        for k, messages in enumerate(shops):
            for i, m in enumerate(messages):
                at = T0 + timedelta(minutes=m["minutes"], microseconds=m["micros"])
                body = json.dumps(m["properties"])
                props, traits = (body, None) if m["type"] == "track" else (None, body)
                rows.append((f"s{k}m{i:03d}", f"s{k}{m['person']}", at.replace(tzinfo=None),
                             m["type"], m["event"], props, traits))  # fmt: skip
        con = duckdb.connect()
        con.execute(EVENTS_DDL)
        if rows:
            con.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
        compiled = CompiledSegments(ws.definition)
        native = memberships_sql(compiled, dialect="duckdb", as_of=T0, events=EventSource())
        expect = set(con.execute(native.sql("duckdb")).fetchall())
        con.close()
        parquet = folder / "events.parquet"
        _write(rows, parquet)
        out = folder / "out"
        report = spark_refresh(
            ws, T0, events=str(parquet), output=out, write_store=False, session=spark
        )
        got = {
            (r["profile_id"], r["segment"]) for r in pq.read_table(out / "memberships").to_pylist()
        }
        assert got == expect
        assert report.members == len(expect)
    finally:
        ws.close()


def test_cli_refresh_engine_spark(spark: Any, cli, workspace, tmp_path: Path, monkeypatch) -> None:
    path = workspace.path
    w = ("-w", str(path))
    for name in ("crm_contacts", "shop_orders"):
        assert (
            cli(*w, "ingest", str(path / "data" / f"{name}.csv"), "--mapping", name).returncode == 0
        )
    parquet = tmp_path / "events.parquet"
    exported = cli(*w, "export", "events", "--parquet", str(parquet), "--format", "json")
    assert json.loads(exported.stdout)["events"] == 15
    at = "2027-06-01T00:00:00Z"
    cli_now(monkeypatch, at)  # refresh refuses an instant later than now
    done = cli(*w, "refresh", "--engine", "spark", "--events", str(parquet), "--as-of", at,
               "--format", "json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["engine"] == "spark" and report["entered"] == report["members"] > 0
    agree = cli(*w, "reconcile", "--as-of", at)
    assert agree.returncode == 0 and "agree" in agree.stdout  # zero differences from DuckDB
    changes = cli(*w, "segments", "list", "--format", "json")
    sizes = {s["name"]: s["size"] for s in json.loads(changes.stdout)}
    assert sum(sizes.values()) == report["members"]
    missing = cli(*w, "refresh", "--engine", "spark")
    assert missing.returncode != 0 and "--engine spark needs --events" in missing.stderr
    stray = cli(*w, "refresh", "--events", str(parquet))
    assert stray.returncode != 0 and "need --engine spark" in stray.stderr
