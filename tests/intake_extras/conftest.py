"""Fixtures for imports, the shop webhook, stream sources and data quality."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from segmint.clock import FixedClock
from segmint.intake import Intake
from segmint.workspace import Workspace

NOW = datetime(2026, 10, 15, 12, 0, tzinfo=UTC)
DATA = Path(__file__).parent / "data"


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def intake(ws: Workspace, clock: FixedClock) -> Intake:
    return Intake(ws, clock)


@pytest.fixture
def duck_intake(workspace: Workspace, clock: FixedClock) -> Intake:
    return Intake(workspace, clock)


def count(ws: Workspace, sql: str, params: tuple[object, ...] = ()) -> int:
    return int(ws.store.fetchall(sql, list(params))[0][0])


def as_json(value: Any) -> Any:
    """A JSON column as Python (DuckDB returns text, PostgreSQL a decoded value)."""
    return orjson.loads(value) if isinstance(value, str | bytes) else value


@pytest.fixture(scope="module")
def duck_ws_intake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Workspace, Intake]]:
    """One DuckDB workspace shared by a module's property tests (they clean up after)."""
    ws = Workspace.init(tmp_path_factory.mktemp("prop") / "ws", name="prop")
    yield ws, Intake(ws, FixedClock(NOW))
    ws.close()
