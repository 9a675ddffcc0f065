"""``segmint ingest``, ``consume`` and ``quality`` run as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import orjson
import pytest
import redis
from click.testing import CliRunner

from segmint.cli.main import _register_commands, cli, main
from segmint.workspace import Workspace

# The installed console script: it turns a command's exit status into the process's.
SEGMINT = str(Path(sys.executable).parent / "segmint")


def run(ws: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SEGMINT, "-w", str(ws), *args],
        capture_output=True,
        text=True,
        check=False,
    )


def invoke(ws: Path, *args: str) -> tuple[int, str]:
    """Run a command in-process (quicker than a process; the exit status is kept)."""
    _register_commands()
    result = CliRunner().invoke(cli, ["-w", str(ws), *args], catch_exceptions=False)
    return result.exit_code, result.stdout


def test_ingest_then_quality(tmp_path: Path) -> None:
    ws = Workspace.init(tmp_path / "ws", name="cli")
    ws.close()
    code, out = invoke(ws.path, "ingest", str(ws.path / "data/shop_orders.csv"), "-m",
                       "shop_orders", "--format", "json")  # fmt: skip
    assert code == 0
    assert json.loads(out)["stored"] == 7
    code, out = invoke(ws.path, "quality", "--as-of", "2100-01-01T00:00:00Z", "--format", "json",
                       "--strict")  # fmt: skip
    assert code == 2  # every source is stale in 2100
    shop = next(s for s in json.loads(out)["sources"] if s["source"] == "shop")
    assert shop["events"] == 7 and shop["status"] == "stale"


def test_quality_counts_an_import_run_twice_and_explains_outliers(tmp_path: Path) -> None:
    ws = Workspace.init(tmp_path / "ws", name="cli")
    ws.close()
    orders = ws.path / "data/shop_orders.csv"
    for _ in range(2):
        code, _out = invoke(ws.path, "ingest", str(orders), "-m", "shop_orders")
        assert code == 0
    lines = orders.read_text().splitlines()
    more = tmp_path / "more.csv"
    totals = [f"{146.26 * 1.05**i:.2f}" for i in range(-15, 15)]  # 70 to 290
    totals[0] = "1462600.00"  # a slip of the decimal point
    rows = [
        lines[1].replace("5912345670001", f"77{i:011d}").replace(",146.26,", f",{total},")
        for i, total in enumerate(totals)
    ]
    more.write_text("\n".join([lines[0], *rows]) + "\n")
    assert invoke(ws.path, "ingest", str(more), "-m", "shop_orders")[0] == 0
    code, out = invoke(ws.path, "quality", "--as-of", "2100-01-01T00:00:00Z", "--format", "json")
    shop = next(s for s in json.loads(out)["sources"] if s["source"] == "shop")
    assert (shop["repeated_message_ids"], shop["identical_events"]) == (7, 0)
    assert shop["anomalies"]["outlying_total"]["count"] == 1
    code, out = invoke(ws.path, "quality", "--as-of", "2100-01-01T00:00:00Z")
    assert "shopify-order-7700000000000: 1,462,600.0 is above " in out


def test_bad_rows_table_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ws = Workspace.init(tmp_path / "ws", name="cli")
    ws.close()
    bad = tmp_path / "orders.csv"
    header = (ws.path / "data/shop_orders.csv").read_text().splitlines()[0]
    bad.write_text(header + "\n" + "1,#1,c1,a@b.c,yesterday,paid,EUR,1,0,0,0,1,1,X,\n")
    with pytest.raises(SystemExit) as exit_info:  # main() turns the error into one line
        main(["-w", str(ws.path), "ingest", str(bad), "-m", "shop_order"])
    assert exit_info.value.code == 1
    assert "did you mean 'shop_orders'" in capsys.readouterr().err
    result = run(ws.path, "ingest", str(bad), "-m", "shop_orders")
    assert result.returncode == 1  # nothing could be stored
    assert "created_at" in result.stdout and "not a timestamp" in result.stdout


def test_a_bad_row_reports_every_bad_cell(tmp_path: Path) -> None:
    ws = Workspace.init(tmp_path / "ws", name="cli")
    ws.close()
    bad = tmp_path / "orders.csv"
    header = (ws.path / "data/shop_orders.csv").read_text().splitlines()[0]
    bad.write_text(header + "\n" + "1,#1,c1,a@b.c,yesterday,paid,EUR,12;50,0,0,0,abc,2.5,X,\n")
    code, out = invoke(ws.path, "ingest", str(bad), "-m", "shop_orders", "--format", "json")
    assert code == 1
    [row] = json.loads(out)["bad_rows"]
    assert row["line"] == 2
    assert [(c["column"], c["value"]) for c in row["cells"]] == [
        ("created_at", "yesterday"), ("subtotal", "12;50"), ("total", "abc"), ("items", "2.5"),
    ]  # fmt: skip
    assert row["cells"][2]["reason"] == "'abc' is not a number"
    result = run(ws.path, "ingest", str(bad), "-m", "shop_orders")
    table = [line for line in result.stdout.splitlines() if line.startswith("│ 2 ")]
    assert [line.split("│")[2].strip() for line in table] == [
        "created_at", "subtotal", "total", "items",
    ]  # fmt: skip
    assert "'2.5' is not a whole number" in result.stdout


def test_ingest_options_are_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ws = Workspace.init(tmp_path / "ws", name="cli")
    ws.close()
    orders = str(ws.path / "data/shop_orders.csv")
    for option, value, words in (
        ("--delimiter", "", "'' is not one character"),
        ("--batch-size", "0", "0 is not in the range x>=1"),
    ):
        result = run(ws.path, "ingest", orders, "-m", "shop_orders", option, value)
        assert result.returncode == 2 and words in result.stderr
        assert "Traceback" not in result.stderr
    result = run(ws.path, "ingest", orders, "-m", "shop_orders", "--delimiter", ";")
    assert result.returncode == 1
    assert "the header reads as one column 'order_id,order_name," in result.stderr
    tsv = tmp_path / "orders.tsv"
    tsv.write_text((ws.path / "data/shop_orders.csv").read_text().replace(",", "\t"))
    code, out = invoke(ws.path, "ingest", str(tsv), "-m", "shop_orders", "--input-format", "csv",
                       "--delimiter", "\\t", "--format", "json")  # fmt: skip
    assert code == 0 and json.loads(out)["stored"] == 7


def test_consume_redis_stream(tmp_path: Path, redis_url: str) -> None:
    ws = Workspace.init(tmp_path / "ws", name="cli")
    ws.close()
    client = redis.Redis.from_url(redis_url)
    stream = f"segmint-cli-{uuid.uuid4().hex[:10]}"
    try:
        message = {"type": "identify", "userId": "u1", "traits": {"email": "u1@example.com"}}
        client.xadd(stream, {"data": orjson.dumps(message)})
        client.xadd(stream, {"data": b"oops"})
        url = f"{redis_url}?stream={stream}&group=cli"
        code, out = invoke(ws.path, "consume", url, "--source", "web", "--idle-timeout", "0.3",
                           "--format", "json")  # fmt: skip
    finally:
        client.delete(stream)
        client.close()
    assert code == 0
    report = json.loads(out)
    assert (report["source"], report["stored"], report["quarantined"]) == ("web", 1, 1)
    assert report["poison"] == [{"position": report["poison"][0]["position"],
                                 "reason": "invalid JSON"}]  # fmt: skip
