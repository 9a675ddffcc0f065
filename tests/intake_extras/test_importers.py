from __future__ import annotations

import csv
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segmint.config.model import ImportDef, TrackingPlan
from segmint.intake import Intake
from segmint.intake.importers import open_rows, run_import
from segmint.intake.mappings import MappingError, RowError, RowMapper
from segmint.workspace import Workspace

from .conftest import as_json, count

EXAMPLE = Path(__file__).parents[2] / "src/segmint/config/example/data"


def mapper(ws: Workspace, name: str) -> RowMapper:
    return RowMapper.from_workspace(ws.definition.imports, name)


def test_example_exports_import_once(ws: Workspace, intake: Intake) -> None:
    contacts = run_import(ws.path / "data/crm_contacts.csv", mapper(ws, "crm_contacts"), intake)
    orders = run_import(ws.path / "data/shop_orders.csv", mapper(ws, "shop_orders"), intake)
    assert (contacts.rows, contacts.stored, contacts.bad_row_count) == (8, 8, 0)
    assert (orders.rows, orders.stored, orders.bad_row_count) == (7, 7, 0)
    again = run_import(ws.path / "data/shop_orders.csv", mapper(ws, "shop_orders"), intake)
    assert (again.stored, again.duplicates) == (0, 7)
    assert count(ws, "SELECT count(*) FROM events") == 15
    assert count(ws, "SELECT count(*) FROM events WHERE source = 'shop'") == 7
    # The order carries the customer's email in context.traits, so it lands on the CRM profile.
    rows = ws.store.fetchall(
        "SELECT count(DISTINCT profile_id) FROM events WHERE user_id = '7390016487541'"
    )
    assert rows[0][0] == 1


def test_scaffold_ships_the_example_data(workspace: Workspace) -> None:
    for name in ("crm_contacts.csv", "shop_orders.csv"):
        assert (workspace.path / "data" / name).read_bytes() == (EXAMPLE / name).read_bytes()


BAD_CSV = """order_id,customer_id,created_at,total,items
1,c1,2026-09-01T10:00:00Z,10.5,1
2,c2,2026-09-02T10:00:00Z,not-money,1
3,,2026-09-03T10:00:00Z,12,1
"4","c4","2026-09-04T10:00:00Z","13
",2
5,c5,2026-09-05T10:00:00Z,14
6,c6,someday,15,1

7,c7,2026-09-07T10:00:00Z,16,3
"""


def orders_mapping(ws: Workspace) -> RowMapper:
    spec = ImportDef(
        kind="track",
        event="Order Completed",
        user_id="customer_id",
        timestamp="created_at",
        key=("order_id",),
        properties={"order_id": "order_id", "total": "total", "items": "items"},
        types={"total": "number", "items": "integer"},
    )
    return RowMapper.from_workspace({"orders": spec}, "orders")


def test_bad_rows_are_reported_by_line_and_good_rows_kept(
    ws: Workspace, intake: Intake, tmp_path: Path
) -> None:
    path = tmp_path / "orders.csv"
    path.write_text(BAD_CSV, encoding="utf-8")
    report = run_import(path, orders_mapping(ws), intake)
    bad = {row["line"]: row for row in report.bad_rows}
    assert sorted(bad) == [3, 4, 7, 8]
    assert bad[3]["column"] == "total" and "not-money" in bad[3]["reason"]
    assert "no user id" in bad[4]["reason"]
    assert "expected 5 fields, found 4" in bad[7]["reason"]
    assert bad[8]["column"] == "created_at"
    assert (report.rows, report.stored, report.bad_row_count) == (7, 3, 4)
    # The quoted multi-line row (lines 5-6) kept its value; line numbers after it are exact.
    totals = ws.store.fetchall("SELECT message_id FROM events ORDER BY timestamp")
    assert len(totals) == 3
    lines = [
        as_json(c)["import"]["line"]
        for (c,) in ws.store.fetchall("SELECT context FROM events ORDER BY timestamp")
    ]
    assert lines == [2, 5, 10]


def test_plan_violations_are_quarantined_not_stored(
    workspace: Workspace, clock: object, tmp_path: Path
) -> None:
    plan = TrackingPlan.model_validate(
        {
            "events": {
                "Order Completed": {"properties": {"total": {"type": "number", "required": True}}}
            }
        }
    )
    definition = workspace.definition.model_copy(update={"tracking_plan": plan})
    ws = Workspace(path=workspace.path, definition=definition, _store=workspace.store)
    path = tmp_path / "orders.csv"
    path.write_text(
        "order_id,customer_id,created_at,total,items\n"
        "1,c1,2026-09-01T10:00:00Z,10.5,1\n"
        "2,c2,2026-09-02T10:00:00Z,,1\n",
        encoding="utf-8",
    )
    report = run_import(path, orders_mapping(ws), Intake(ws, clock))  # type: ignore[arg-type]
    assert (report.stored, report.quarantined, report.bad_row_count) == (1, 1, 0)
    assert count(ws, "SELECT count(*) FROM quarantine WHERE source = 'orders'") == 1
    again = run_import(path, orders_mapping(ws), Intake(ws, clock))  # type: ignore[arg-type]
    assert again.stored == 0
    assert count(ws, "SELECT count(*) FROM quarantine") == 1


def test_malformed_for_the_pipeline_is_a_bad_row(
    duck_intake: Intake, workspace: Workspace, tmp_path: Path
) -> None:
    path = tmp_path / "orders.csv"
    path.write_text(
        "order_id,customer_id,created_at,total,items\n"
        f"1,{'x' * 5000},2026-09-01T10:00:00Z,10.5,1\n"
        "2,c2,2026-09-02T10:00:00Z,3,1\n",
        encoding="utf-8",
    )
    report = run_import(path, orders_mapping(workspace), duck_intake)
    assert [r["line"] for r in report.bad_rows] == [2]
    assert "userId" in report.bad_rows[0]["reason"]
    assert report.stored == 1


def test_jsonl_and_parquet_agree_with_csv(
    duck_intake: Intake, workspace: Workspace, tmp_path: Path
) -> None:
    rows = [
        {
            "order_id": str(i),
            "customer_id": f"c{i}",
            "created_at": f"2026-09-0{i}T10:00:00Z",
            "total": str(10.5 * i),
            "items": str(i),
        }
        for i in range(1, 6)
    ]
    csv_path = tmp_path / "o.csv"
    csv_path.write_text(
        "order_id,customer_id,created_at,total,items\n"
        + "".join(",".join(r.values()) + "\n" for r in rows),
        encoding="utf-8",
    )
    jsonl_path = tmp_path / "o.jsonl"
    jsonl_path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows) + b"[1,2]\n{broken\n")
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "o.parquet", row_group_size=2)
    m = orders_mapping(workspace)
    first = run_import(csv_path, m, duck_intake)
    jsonl = run_import(jsonl_path, m, duck_intake)
    parquet = run_import(tmp_path / "o.parquet", m, duck_intake)
    assert first.stored == 5
    assert (jsonl.duplicates, jsonl.stored, parquet.duplicates, parquet.stored) == (5, 0, 5, 0)
    assert [r["line"] for r in jsonl.bad_rows] == [6, 7]
    assert "expected a JSON object" in jsonl.bad_rows[0]["reason"]
    assert "invalid JSON" in jsonl.bad_rows[1]["reason"]


def test_typed_parquet_columns(duck_intake: Intake, workspace: Workspace, tmp_path: Path) -> None:
    table = pa.table(
        {
            "order_id": pa.array([1, 2], pa.int64()),
            "customer_id": ["c1", "c2"],
            "created_at": pa.array(
                [1_790_000_000_000_000, 1_790_000_100_000_000], pa.timestamp("us", tz="UTC")
            ),
            "total": pa.array([10.5, None], pa.float64()),
            "items": pa.array([1, 2], pa.int32()),
        }
    )
    pq.write_table(table, tmp_path / "typed.parquet")
    report = run_import(tmp_path / "typed.parquet", orders_mapping(workspace), duck_intake)
    assert report.stored == 2
    props = [
        as_json(p)
        for (p,) in workspace.store.fetchall("SELECT properties FROM events ORDER BY timestamp")
    ]
    assert props == [{"order_id": 1, "total": 10.5, "items": 1}, {"order_id": 2, "items": 2}]


def test_missing_column_stops_before_anything_is_stored(
    duck_intake: Intake, workspace: Workspace, tmp_path: Path
) -> None:
    path = tmp_path / "o.csv"
    path.write_text("order_id,customer,created_at,total,items\n1,c,2026-01-01,1,1\n")
    with pytest.raises(MappingError, match="'customer_id'.*did you mean 'customer'"):
        run_import(path, orders_mapping(workspace), duck_intake)
    assert count(workspace, "SELECT count(*) FROM events") == 0


def test_unknown_format_and_missing_file(
    duck_intake: Intake, workspace: Workspace, tmp_path: Path
) -> None:
    with pytest.raises(MappingError, match="format"):
        run_import(tmp_path / "o.xlsx", orders_mapping(workspace), duck_intake)
    with pytest.raises(MappingError, match="does not exist"):
        run_import(tmp_path / "nope.csv", orders_mapping(workspace), duck_intake)


def test_invalid_utf8_is_a_bad_row(
    duck_intake: Intake, workspace: Workspace, tmp_path: Path
) -> None:
    path = tmp_path / "o.csv"
    path.write_bytes(
        b"\xef\xbb\xbforder_id,customer_id,created_at,total,items\n"
        b"1,c\xff1,2026-09-01T10:00:00Z,1,1\n"
        b"2,c2,2026-09-01T10:00:00Z,1,1\n"
    )
    report = run_import(path, orders_mapping(workspace), duck_intake)
    assert report.bad_rows == [
        {"line": 2, "reason": "not valid UTF-8 text", "column": None, "cells": []}
    ]
    assert report.stored == 1


def test_progress_reaches_the_total(
    duck_intake: Intake, workspace: Workspace, tmp_path: Path
) -> None:
    path = tmp_path / "o.csv"
    path.write_text(
        "order_id,customer_id,created_at,total,items\n"
        + "".join(f"{i},c{i},2026-09-01T10:00:00Z,{i},1\n" for i in range(2500)),
    )
    seen: list[int] = []
    totals: list[int] = []
    report = run_import(
        path,
        orders_mapping(workspace),
        duck_intake,
        progress=seen.append,
        on_start=totals.append,
        batch_size=1000,
    )
    assert report.stored == 2500
    assert totals == [path.stat().st_size]
    assert seen == sorted(seen) and seen[-1] == totals[0] and len(seen) >= 3


def test_jsonl_warns_about_keys_no_record_has(
    duck_intake: Intake, workspace: Workspace, tmp_path: Path
) -> None:
    path = tmp_path / "o.jsonl"
    path.write_bytes(orjson.dumps({"order_id": "1", "customer_id": "c", "totl": "1"}) + b"\n")
    report = run_import(path, orders_mapping(workspace), duck_intake)
    assert report.stored == 1
    assert report.warnings == [
        f"mapping 'orders' reads key '{c}', which no record has"
        for c in ("created_at", "items", "total")
    ]


CELL = st.text(
    st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=12
)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(CELL, CELL, CELL), min_size=1, max_size=6))
def test_csv_jsonl_and_parquet_map_alike(
    tmp_path_factory: pytest.TempPathFactory, cells: list[tuple[str, str, str]]
) -> None:
    """The same text rows, written in each format, map to the same messages (ids included)."""
    folder = tmp_path_factory.mktemp("formats")
    rows = [{"user": u or "anon", "note": n, "city": c} for u, n, c in cells]
    spec = ImportDef(kind="identify", user_id="user", traits={"note": "note", "city": "city"})
    mapper = RowMapper.from_workspace({"people": spec}, "people")
    with (folder / "p.csv").open("w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=["user", "note", "city"])
        writer.writeheader()
        writer.writerows(rows)
    (folder / "p.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    pq.write_table(pa.Table.from_pylist(rows), folder / "p.parquet")
    mapped = {}
    for name in ("p.csv", "p.jsonl", "p.parquet"):
        out = []
        for row in open_rows(folder / name).rows(None):
            assert row.values is not None, row.error
            try:
                out.append(mapper(row.values))
            except RowError as exc:
                out.append({"error": str(exc)})
        mapped[name] = out
    assert mapped["p.csv"] == mapped["p.jsonl"] == mapped["p.parquet"]


def test_oversized_csv_field_is_a_bad_row_and_reading_goes_on(
    duck_intake: Intake, workspace: Workspace, tmp_path: Path
) -> None:
    path = tmp_path / "o.csv"
    path.write_text(
        "order_id,customer_id,created_at,total,items\n"
        f"1,c1,2026-09-01T10:00:00Z,1,{'9' * 200_000}\n"
        "2,c2,2026-09-01T10:00:00Z,1,1\n",
        encoding="utf-8",
    )
    report = run_import(path, orders_mapping(workspace), duck_intake)
    assert [b["line"] for b in report.bad_rows] == [2]
    assert report.bad_rows[0]["reason"].startswith("malformed CSV: field larger than")
    assert report.stored == 1
