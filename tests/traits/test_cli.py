"""The trait commands on the example workspace, run as a user runs them."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from segmint.events import Event
from segmint.profiles import load_profile
from segmint.traits import TraitEngine
from segmint.traits.state import load_state
from segmint.traits.validate import workspace_catalog
from segmint.workspace import Workspace

AS_OF = "2024-06-01T00:00:00Z"


Result = Any  # the root conftest's CliResult


@pytest.fixture
def run(cli: Callable[..., Result]) -> Callable[..., Result]:
    """Run ``segmint -w WS ARGS…`` in this process (the root conftest's ``cli``)."""
    return lambda ws, *args: cli("-w", str(ws), *args)


@pytest.fixture
def shop(workspace: Workspace, kit: Any) -> Path:
    """The example workspace with a few events of profile ``u1`` (store closed after)."""
    t = kit.at("2024-05-20T10:00:00Z")
    kit.store_events(workspace.store, [
        Event("i1", "identify", None, "u1", t, traits={"first_name": "Ada", "email": "a@x.io"}),
        Event("o1", "track", "Order Completed", "u1", t + timedelta(hours=1),
              properties={"total": "250.5", "category": "shoes"}),
        Event("o2", "track", "Order Completed", "u1", t + timedelta(days=2),
              properties={"total": 49.5}),
        Event("e1", "track", "Email Opened", "u1", t + timedelta(days=3)),
    ])  # fmt: skip
    workspace.close()
    return workspace.path


def test_traits_list_json(shop: Path, run: Callable[..., Result]) -> None:
    result = run(shop, "traits", "list", "--format", "json")
    assert result.returncode == 0, result.stderr
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert rows["lifetime_value"]["kind"] == "computed"
    assert rows["email"]["pii"] is True
    assert rows["days_since_purchase"]["definition"] == "expr: days_since(last_purchase_at)"
    assert rows["event_count"]["kind"] == "builtin"


def test_traits_sql_for_one_trait_in_each_dialect(shop: Path, run: Callable[..., Result]) -> None:
    for dialect, marker in [
        ("snowflake", "MAX_BY"),
        ("postgres", "ARRAY_AGG"),
        ("duckdb", "ARG_MAX"),
    ]:
        result = run(shop, "traits", "sql", "first_name", "--dialect", dialect, "--as-of", AS_OF)
        assert result.returncode == 0, result.stderr
        assert marker in result.stdout
        assert '"first_name"' in result.stdout or "`first_name`" in result.stdout
    bad = run(shop, "traits", "sql", "lifetime_valu")
    assert bad.returncode == 1
    assert "did you mean 'lifetime_value'?" in bad.stderr


def test_profile_show_json(shop: Path, run: Callable[..., Result]) -> None:
    result = run(shop, "profile", "show", "u1", "--as-of", AS_OF, "--format", "json")
    assert result.returncode == 0, result.stderr
    view = json.loads(result.stdout)
    values = {t["name"]: t["value"] for t in view["traits"]}
    assert values["orders"] == 2
    assert values["lifetime_value"] == pytest.approx(300.0)
    assert values["favorite_category"] is None  # no Product Viewed events
    assert values["first_name"] == "Ada"
    assert values["timezone"] == "UTC"  # the declared default
    assert values["last_purchase_at"] == "2024-05-22T10:00:00+00:00"
    assert values["days_since_purchase"] == pytest.approx(9 + 14 / 24)
    assert view["events"] == 4
    table = run(shop, "profile", "show", "u1", "--as-of", AS_OF)
    assert "lifetime_value" in table.stdout and "300" in table.stdout
    assert run(shop, "profile", "show", "nobody").returncode == 1


def test_rebuild_and_refresh_write_state_and_values(shop: Path, run: Callable[..., Result]) -> None:
    result = run(shop, "rebuild", "--as-of", AS_OF)
    assert result.returncode == 0, result.stderr
    assert "rebuilt trait state of 1 profiles" in result.stdout
    with Workspace.open(shop) as ws:
        catalog = workspace_catalog(ws)
        engine = TraitEngine(catalog)
        state = load_state(ws.store, engine, "u1")
        assert state is not None
        assert engine.values(state, ws_as_of())["orders"] == 2
        profile = load_profile(ws.store, "u1", catalog.types())
        assert profile is not None and profile.traits["emails_opened_30d"] == 1
    result = run(shop, "traits", "refresh", "--as-of", AS_OF)
    assert result.returncode == 0, result.stderr
    with Workspace.open(shop) as ws:
        profile = load_profile(ws.store, "u1", {"last_purchase_at": "timestamp"})
        assert profile is not None
        assert profile.traits["last_purchase_at"].isoformat() == "2024-05-22T10:00:00+00:00"


def ws_as_of() -> Any:
    from segmint.clock import parse_instant

    return parse_instant(AS_OF)
