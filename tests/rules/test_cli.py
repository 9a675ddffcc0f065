"""The rule commands, run as a user runs them, on the `segmint init` example."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import jsonschema
import pytest

from segmint.workspace import Workspace

from .test_workspace import BROKEN  # type: ignore[import-not-found]

Result = Any  # the root conftest's CliResult


@pytest.fixture
def run(cli: Callable[..., Result]) -> Callable[..., Result]:
    """The in-process CLI of tests/conftest.py: ``run(ARGS…)``."""
    return cli


def test_validate_example(run: Callable[..., Result], workspace: Workspace) -> None:
    result = run("-w", str(workspace.path), "segments", "validate")
    assert result.returncode == 0, result.stderr
    assert "6 segment rules and 2 trait expressions checked: no problems" in result.stdout


def test_validate_lists_every_error(run: Callable[..., Result], tmp_path: Path) -> None:
    (tmp_path / "segmint.yaml").write_text(BROKEN)
    result = run("-w", str(tmp_path), "segments", "validate")
    assert result.returncode == 1
    assert "segmint.yaml:13:12: unknown trait 'avg_order_valu' in segment 'high_value'" in (
        result.stderr
    )
    assert "^^^^^^^^^^^^^^ did you mean 'avg_order_value'?" in result.stderr
    assert "9 problem(s)" in result.stderr
    as_json = run("-w", str(tmp_path), "segments", "validate", "--format", "json")
    assert as_json.returncode == 1
    doc = json.loads(as_json.stdout)
    assert doc["ok"] is False
    assert doc["errors"][0] == {
        "file": str(tmp_path / "segmint.yaml"),
        "line": 13,
        "column": 12,
        "key_path": "segments.high_value.rule",
        "message": "unknown trait 'avg_order_valu' in segment 'high_value'",
        "hint": "did you mean 'avg_order_value'?",
    }


def test_sql_runs_on_duckdb(run: Callable[..., Result], workspace: Workspace) -> None:
    result = run(
        "-w",
        str(workspace.path),
        "segments",
        "sql",
        "high_value",
        "--as-of",
        "2024-05-01T00:00:00Z",
    )
    assert result.returncode == 0, result.stderr
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE profile_traits (profile_id TEXT, avg_order_value DOUBLE, "
        "last_purchase_at TIMESTAMP)"
    )
    con.executemany(
        "INSERT INTO profile_traits VALUES (?, ?, ?)",
        [
            ("a", 250.0, datetime(2024, 4, 20)),
            ("b", 250.0, datetime(2024, 3, 1)),
            ("c", 50.0, datetime(2024, 4, 20)),
            ("d", None, datetime(2024, 4, 20)),
        ],
    )
    assert con.execute(result.stdout).fetchall() == [("a", "high_value")]


@pytest.mark.parametrize("dialect", ["postgres", "spark", "bigquery", "snowflake"])
def test_sql_dialects(run: Callable[..., Result], workspace: Workspace, dialect: str) -> None:
    result = run(
        "-w", str(workspace.path), "segments", "sql", "cart_abandoners", "--dialect", dialect,
        "--as-of", "2024-05-01T00:00:00Z",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "__performed_" in result.stdout and "profile_traits" in result.stdout
    assert "-- reads implicit trait __performed_" in result.stderr
    assert "'Cart Abandoned' within 3 days" in result.stderr


def test_sql_unknown_and_default_segments(run: Callable[..., Result], workspace: Workspace) -> None:
    unknown = run("-w", str(workspace.path), "segments", "sql", "vipp")
    assert unknown.returncode == 1
    assert "unknown segment 'vipp'; did you mean 'vip'?" in unknown.stderr
    default = run("-w", str(workspace.path), "segments", "sql", "new_customer")
    assert default.returncode == 0, default.stderr  # the profiles no other lifecycle rule holds
    assert '"__segment_new_customer"' in default.stdout and '"__segment_vip"' in default.stdout


def test_rules_schema(run: Callable[..., Result]) -> None:
    result = run("rules", "schema")
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert "performed" in schema["$defs"]


def test_rules_check(run: Callable[..., Result], workspace: Workspace) -> None:
    rule = "ORDERS > 3 AND performed('Order Completed', within => '30d')"
    result = run(
        "-w", str(workspace.path), "rules", "check", "orders > 3 AND NOT in_segment('vip')"
    )
    assert result.returncode == 0, result.stderr
    assert "canonical      orders > 3 and not in_segment('vip')" in result.stdout
    assert "segments       vip" in result.stdout
    bad = run("-w", str(workspace.path), "rules", "check", rule)
    assert bad.returncode == 1
    assert "1:1: unknown trait 'ORDERS'\n" in bad.stderr
    assert "^^^^^^ did you mean 'orders'?" in bad.stderr
    as_filter = run("rules", "check", "--filter", "total > 5", "--format", "json")
    assert json.loads(as_filter.stdout)["traits"] == ["total"]
