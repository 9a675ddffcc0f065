"""Fixtures for the intake pipeline: a fixed clock and an Intake on each backend."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from segmint.clock import FixedClock
from segmint.intake import Intake
from segmint.workspace import Workspace

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def intake(ws: Workspace, clock: FixedClock) -> Intake:
    return Intake(ws, clock)


def with_plan(ws: Workspace, plan: dict[str, Any]) -> Workspace:
    """The same workspace and store with a tracking plan."""
    definition = ws.definition.model_validate(
        ws.definition.model_dump(by_alias=True) | {"tracking_plan": plan}
    )
    return Workspace(path=ws.path, definition=definition, _store=ws.store)


def scalar(ws: Workspace, sql: str, params: list[Any] | None = None) -> Any:
    return ws.store.fetchall(sql, params or [])[0][0]


def as_json(value: Any) -> Any:
    """A JSON column as Python (DuckDB gives text, PostgreSQL a decoded value)."""
    return orjson.loads(value) if isinstance(value, str | bytes) else value


def track(mid: str, event: str = "Viewed", **fields: Any) -> dict[str, Any]:
    return {"type": "track", "messageId": mid, "event": event, **fields}


def identify(mid: str, **fields: Any) -> dict[str, Any]:
    return {"type": "identify", "messageId": mid, **fields}
