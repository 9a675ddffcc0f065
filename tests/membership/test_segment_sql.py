"""One path for segment SQL: what ``segments sql`` prints is what refresh runs."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from tests.conftest import cli_now
from tests.membership.conftest import stored

from segmint.membership.errors import UnknownSegmentError
from segmint.membership.segsql import membership_query, segment_sql
from segmint.rules import RuleNameError

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def test_the_printed_sql_returns_the_members_refresh_wrote(shop):
    ws, compiled = shop
    for name in compiled.plan.names:
        statement = segment_sql(ws.definition, name, dialect=ws.store.dialect, as_of=T0)
        got = set(ws.store.fetchall(statement.sql(ws.store.dialect)))
        assert got == stored(ws.store, name), name
    # the exclusive group decided something: vip matches repeat and lapsed too
    vip = {p for p, _ in stored(ws.store, "vip")}
    assert len(vip) == 1
    repeat = ws.store.fetchall('SELECT profile_id FROM profile_traits WHERE "orders" >= 2')
    assert vip < {p for (p,) in repeat}


def test_every_segment_at_once_is_the_refresh_statement(shop):
    ws, compiled = shop
    query = membership_query(compiled, dialect=ws.store.dialect, as_of=T0)
    assert set(ws.store.fetchall(query.sql(dialect=ws.store.dialect))) == stored(ws.store)


def test_segment_sql_lists_implicit_traits_of_what_it_reads(shop):
    ws, compiled = shop
    browsers = segment_sql(compiled, "browsers", dialect="duckdb", as_of=T0)
    assert {a.event for a in browsers.aggregates} == {"Product Viewed", "Order Completed"}
    # vip_engaged reads vip (its group) and engaged: their columns, not memberships
    reads = segment_sql(compiled, "vip_engaged", dialect="postgres", as_of=T0).sql("postgres")
    assert '"__segment_repeat"' in reads and '"__segment_engaged"' in reads
    assert "memberships" not in reads and '"__segment_browsers"' not in reads


def test_segment_sql_errors(shop):
    ws, _ = shop
    with pytest.raises(UnknownSegmentError, match="unknown segment 'vipp'; did you mean 'vip'"):
        segment_sql(ws.definition, "vipp", dialect="duckdb", as_of=T0)
    with pytest.raises(RuleNameError, match="unknown dialect 'duckbd'"):
        segment_sql(ws.definition, "vip", dialect="duckbd", as_of=T0)


def test_cli_segments_sql_returns_refresh_members(
    cli: Callable[..., Any], workspace: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = workspace.path
    w = ("-w", str(path))
    for name in ("crm_contacts", "shop_orders"):
        done = cli(*w, "ingest", str(path / "data" / f"{name}.csv"), "--mapping", name)
        assert done.returncode == 0, done.stderr
    at = "2027-06-01T00:00:00Z"  # long after the sample orders: buyers match churned
    cli_now(monkeypatch, at)  # refresh refuses an instant later than now
    assert cli(*w, "refresh", "--as-of", at).returncode == 0
    names = [s["name"] for s in json.loads(cli(*w, "segments", "list", "--format", "json").stdout)]
    printed = {}
    for name in names:
        result = cli(*w, "segments", "sql", name, "--as-of", at)
        assert result.returncode == 0, result.stderr
        printed[name] = result.stdout
    workspace.close()
    con = duckdb.connect(str(path / ".segmint" / "segmint.duckdb"), read_only=True)
    try:
        for name, text in printed.items():
            members = con.execute(
                "SELECT profile_id, segment FROM memberships WHERE segment = ?", [name]
            ).fetchall()
            assert set(con.execute(text).fetchall()) == set(members), name
        churned_rule = con.execute(
            "SELECT profile_id FROM profile_traits WHERE orders >= 1 AND "
            "last_purchase_at < TIMESTAMP '2027-03-03'"
        ).fetchall()
        vip = con.execute("SELECT profile_id FROM memberships WHERE segment = 'vip'").fetchall()
        assert vip and set(vip) <= set(churned_rule)  # in vip, so not in churned
        assert not set(vip) & {r[0:1] for r in con.execute(printed["churned"]).fetchall()}
    finally:
        con.close()
