"""``segmint export dbt``: the project's ``dbt build`` selects exactly refresh's memberships.

dbt runs as its own process (the ``dbt`` console script of this environment), the way a data
team runs it: dbt-duckdb on a warehouse file holding the demo's events under Segment-style
column names, and dbt-postgres on the PostgreSQL server, in the test's own schema.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import duckdb
import pyarrow as pa
import pytest
from ruamel.yaml import YAML
from tests.scale.conftest import AS_OF

from segmint.membership.segsql import segment_sql
from segmint.rules import RuleNameError
from segmint.scale.dbt import export_project
from segmint.traits.source import EventSource

DBT = Path(sys.executable).parent / "dbt"
RAW_COLUMNS = (
    "message_id AS msg_id, profile_id AS person, timestamp AS sent_at, type, event, "
    "properties AS props, traits"
)
MAPPING = {"message_id": "msg_id", "profile_id": "person", "timestamp": "sent_at",
           "properties": "props"}  # fmt: skip


def _load(text: str) -> Any:
    return YAML(typ="safe").load(text)


def run_dbt(project: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    as_of = AS_OF.replace(tzinfo=None).isoformat(sep=" ")
    full = {**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", **env}
    return subprocess.run(
        [str(DBT), "build", "--profiles-dir", ".", "--vars", f"{{segmint_as_of: '{as_of}'}}"],
        cwd=project, env=full, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def test_dbt_build_gives_refresh_memberships(demo, tmp_path: Path) -> None:
    ws, members = demo
    store = ws.store
    assert {s for _, s in members} >= {"new_customer", "vip", "lapsing", "engaged_readers"}
    project = tmp_path / "dbt"
    if store.dialect == "duckdb":
        # the warehouse: another file, the events under the warehouse's own column names
        warehouse = tmp_path / "warehouse.duckdb"
        rows = store.fetchall(f"SELECT {RAW_COLUMNS} FROM events")
        names = ["msg_id", "person", "sent_at", "type", "event", "props", "traits"]
        arrow = pa.table({n: [r[i] for r in rows] for i, n in enumerate(names)})
        con = duckdb.connect(str(warehouse))
        con.register("fetched", arrow)
        con.execute("CREATE SCHEMA raw")
        con.execute(
            "CREATE TABLE raw.tracks AS SELECT * REPLACE (CAST(props AS JSON) AS props, "
            "CAST(traits AS JSON) AS traits) FROM fetched"
        )
        con.close()
        source = EventSource("raw.tracks", MAPPING)
        env = {"SEGMINT_DBT_DUCKDB": str(warehouse)}
    else:
        # the store's own schema: its events table is the source; dbt's models go beside it
        (schema,) = store.fetchall("SELECT current_schema()")[0]
        url = urlsplit(os.environ.get("SEGMINT_TEST_POSTGRES_URL", store.url))
        source = EventSource()
        env = {
            "SEGMINT_DBT_PG_HOST": url.hostname or "127.0.0.1",
            "SEGMINT_DBT_PG_PORT": str(url.port or 5432),
            "SEGMINT_DBT_PG_USER": url.username or "postgres",
            "SEGMINT_DBT_PG_PASSWORD": url.password or "",
            "SEGMINT_DBT_PG_DBNAME": url.path.lstrip("/") or "postgres",
            "SEGMINT_DBT_PG_SCHEMA": schema,
        }
    written = export_project(ws.definition, project, dialect=store.dialect, events=source)
    assert not (project / "packages.yml").exists()
    assert _load((project / "dbt_project.yml").read_text())["flags"] == {
        "send_anonymous_usage_stats": False
    }
    assert len([p for p in written if p.parent.name == "segments"]) == len(ws.definition.segments)
    done = run_dbt(project, env)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "ERROR=0" in done.stdout and "PASS=" in done.stdout
    if store.dialect == "duckdb":
        con = duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True)
        got = set(
            con.execute("SELECT profile_id, segment FROM main.segmint_memberships").fetchall()
        )
        one = set(con.execute("SELECT profile_id, segment FROM main.segment_vip").fetchall())
        con.close()
    else:
        got = set(store.fetchall("SELECT profile_id, segment FROM segmint_memberships"))
        one = set(store.fetchall("SELECT profile_id, segment FROM segment_vip"))
    assert got == members  # zero differences, default segment included
    assert one == {m for m in members if m[1] == "vip"}


@pytest.mark.parametrize("store", ["duckdb"], indirect=True)
def test_the_project_documents_and_tests_every_model(demo, tmp_path: Path) -> None:
    ws, _ = demo
    export_project(ws.definition, tmp_path / "p", dialect="duckdb", events=EventSource())
    schema = _load((tmp_path / "p" / "models" / "schema.yml").read_text())
    models = {m["name"]: m for m in schema["models"]}
    assert set(models) == {"segmint_traits", "segmint_memberships"} | {
        f"segment_{n}" for n in ws.definition.segments
    }
    vip = models["segment_vip"]
    assert vip["description"].startswith("Big spenders, whatever else they do.")
    assert vip["columns"][0]["data_tests"] == ["unique", "not_null"]
    traits = {c["name"]: c for c in models["segmint_traits"]["columns"]}
    assert traits["coupon_orders"]["description"].startswith("count: events")
    assert (tmp_path / "p" / "tests" / "segmint_exclusive_lifecycle.sql").exists()
    with pytest.raises(RuleNameError, match="no dbt adapter for dialect 'postgress'"):
        export_project(ws.definition, tmp_path / "q", dialect="postgress", events=EventSource())


def test_cli_export_dbt(cli, workspace, tmp_path: Path) -> None:
    out = tmp_path / "project"
    done = cli("-w", str(workspace.path), "export", "dbt", str(out), "--events-table",
               "analytics.tracks", "--map", "profile_id=user_id", "--format", "json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    sources = _load((out / "models" / "sources.yml").read_text())["sources"][0]
    assert sources["schema"] == "analytics" and sources["tables"][0]["identifier"] == "tracks"
    traits_sql = (out / "models" / "segmint_traits.sql").read_text()
    assert "{{ source('segmint', 'events') }}" in traits_sql and "user_id AS" in traits_sql
    assert "{{ segmint_now() }}" in traits_sql
    bad = cli("-w", str(workspace.path), "export", "dbt", str(out), "--map", "userid=user_id")
    assert bad.returncode != 0 and "unknown events column 'userid'" in bad.stderr


def test_every_demo_segment_from_events_on_the_store(demo) -> None:
    """Each demo segment's self-contained SQL (default included) selects refresh's members."""
    ws, members = demo
    dialect = ws.store.dialect
    for name in ws.definition.segments:
        statement = segment_sql(ws.definition, name, dialect=dialect, as_of=AS_OF,
                                events=EventSource())  # fmt: skip
        got = set(ws.store.fetchall(statement.sql(dialect)))
        assert got == {m for m in members if m[1] == name}, name


def test_export_again_drops_the_models_of_a_removed_segment(cli, workspace, tmp_path) -> None:
    """A segment gone from segmint.yaml kept its model in the project: dbt still built it."""
    out = tmp_path / "project"
    w = ("-w", str(workspace.path))
    assert cli(*w, "export", "dbt", str(out)).returncode == 0
    segments = out / "models" / "segments"
    assert (segments / "segment_high_value.sql").exists()
    (segments / "mine.sql").write_text("select 1")  # a model of the user's own stays
    yaml = workspace.path / "segmint.yaml"
    text = yaml.read_text()
    start = text.index("  high_value:\n")
    yaml.write_text(text[:start] + text[text.index("  loyal_customer:\n", start) :])
    assert cli(*w, "export", "dbt", str(out)).returncode == 0
    assert not (segments / "segment_high_value.sql").exists()
    assert (segments / "segment_vip.sql").exists() and (segments / "mine.sql").exists()
