"""Workspaces with PII encryption on (a key file) and a small known population."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from segmint.intake.pipeline import Intake
from segmint.privacy.keys import generate_master_key, write_key_file
from segmint.store import Store
from segmint.workspace import Workspace

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)

ADA = {"email": "Ada@Example.com", "name": "Ada Lovelace", "phone": "+44 20 7946 0001"}
BOB = {"email": "bob@example.org", "name": "Bob Stone", "phone": "+1 555 0100"}


def people_messages() -> list[dict[str, object]]:
    """Ada (a second anonymous profile of hers merges in) and Bob, with events."""
    at = T0.isoformat()
    return [
        {"type": "track", "anonymousId": "anon-ada-2", "event": "Newsletter Form",
         "properties": {"email": ADA["email"]}, "timestamp": at, "messageId": "m-anon2"},
        {"type": "track", "anonymousId": "anon-ada", "event": "Page Viewed",
         "properties": {"url": "/shoes"}, "context": {"ip": "203.0.113.77"}, "timestamp": at,
         "messageId": "m-anon"},
        {"type": "identify", "anonymousId": "anon-ada", "userId": "u-ada", "traits": ADA,
         "timestamp": at, "messageId": "m-ada-id"},
        {"type": "track", "userId": "u-ada", "event": "Order Completed",
         "properties": {"total": 120, "address": "1 Analytical St"}, "timestamp": at,
         "messageId": "m-ada-order"},
        {"type": "identify", "anonymousId": "anon-ada-2", "traits": {"email": ADA["email"]},
         "timestamp": at, "messageId": "m-ada-id2"},
        {"type": "identify", "userId": "u-bob", "traits": BOB, "timestamp": at,
         "messageId": "m-bob-id"},
        {"type": "track", "userId": "u-bob", "event": "Order Completed",
         "properties": {"total": 40}, "timestamp": at, "messageId": "m-bob-order"},
    ]  # fmt: skip


def submit_people(ws: Workspace) -> None:
    """Take in :func:`people_messages`, the first alone (so its profile has its own key)."""
    messages = people_messages()
    intake = Intake(ws)
    intake.submit(messages[:1], source="test", received_at=T0)
    intake.submit(messages[1:], source="test", received_at=T0)


def open_ws(path: Path, store: Store | None = None) -> Workspace:
    """Open the workspace at ``path`` (on ``store`` when given)."""
    ws = Workspace.open(path)
    if store is not None:
        ws = Workspace(path=ws.path, definition=ws.definition, _store=store)
    return ws


def _sealed(workspace: Workspace, store: Store | None) -> Workspace:
    write_key_file(workspace.path / ".segmint-keys", generate_master_key())
    ws = open_ws(workspace.path, store)
    submit_people(ws)
    return ws


@pytest.fixture
def sealed_ws(workspace: Workspace, store: Store) -> Iterator[Workspace]:
    """The example workspace with a master key file, on each backend, holding Ada and Bob."""
    ws = _sealed(workspace, None if store.dialect == "duckdb" else store)
    yield ws
    ws.close()


@pytest.fixture
def sealed_duck(workspace: Workspace) -> Iterator[Workspace]:
    """:func:`sealed_ws` on the workspace's own DuckDB file (what the CLI opens)."""
    ws = _sealed(workspace, None)
    yield ws
    ws.close()
