"""Fixtures of the warehouse tests: the demo workspace with a small shop's events."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from segmint.clock import FixedClock
from segmint.demo import Shop, ShopConfig
from segmint.demo.generator import DEFAULT_AS_OF
from segmint.intake.pipeline import Intake
from segmint.membership.batch import refresh
from segmint.membership.compiled import CompiledSegments
from segmint.workspace import Workspace

DEMO_YAML = Path(__file__).parents[2] / "src" / "segmint" / "demo" / "workspace" / "segmint.yaml"
AS_OF = DEFAULT_AS_OF - timedelta(days=3, hours=5)  # mid-demo: windows cut through events
CUSTOMERS = 250


def build_demo(folder: Path, store: Any = None) -> tuple[Workspace, set[tuple[str, str]]]:
    """The demo workspace in ``folder`` with a small shop's events, refreshed at AS_OF."""
    folder.mkdir(parents=True)
    (folder / "segmint.yaml").write_text(DEMO_YAML.read_text())
    shutil.copytree(DEMO_YAML.parent / "templates", folder / "templates")  # journeys name them
    ws = Workspace.open(folder)
    if store is not None:
        ws._store = store
    messages = list(Shop(ShopConfig(customers=CUSTOMERS, seed=3)).messages())
    Intake(ws, FixedClock(DEFAULT_AS_OF)).submit(messages, source="test")
    refresh(ws.store, CompiledSegments(ws.definition), AS_OF)
    rows = ws.store.fetchall("SELECT profile_id, segment FROM memberships")
    return ws, {(p, s) for p, s in rows}


@pytest.fixture
def demo(tmp_path: Path, store: Any) -> tuple[Workspace, set[tuple[str, str]]]:
    """The demo on each backend in turn."""
    return build_demo(tmp_path / "demo", store)


@pytest.fixture(scope="module")
def duck_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Workspace, Any]]:
    """The demo on DuckDB, built once per module."""
    ws, members = build_demo(tmp_path_factory.mktemp("demo") / "ws")
    yield ws, members
    ws.close()
