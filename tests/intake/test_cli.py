from __future__ import annotations

import orjson
import pytest
from click.testing import CliRunner

from segmint.cli.main import _register_commands, cli
from segmint.clock import FixedClock
from segmint.intake import Intake
from segmint.workspace import Workspace

from .conftest import NOW, track, with_plan


@pytest.fixture(scope="module", autouse=True)
def commands() -> None:
    _register_commands()


def run(ws: Workspace, *args: str) -> str:
    result = CliRunner().invoke(cli, ["-w", str(ws.path), *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_keys_create_list_revoke(workspace: Workspace) -> None:
    workspace.close()
    created = orjson.loads(run(workspace, "keys", "create", "--name", "web", "--format", "json"))
    assert created["key"].startswith("sgm_") and created["scopes"] == ["write"]
    plain = run(workspace, "keys", "create", "--name", "dash", "--scope", "read")
    assert plain.splitlines()[0].startswith("sgm_")
    listed = orjson.loads(run(workspace, "keys", "list", "--format", "json"))
    assert sorted(k["name"] for k in listed) == ["dash", "web"]
    assert all("key" not in k for k in listed)
    assert run(workspace, "keys", "revoke", created["key_id"]).startswith("revoked ")
    listed = orjson.loads(run(workspace, "keys", "list", "--format", "json"))
    assert [k["revoked_at"] is not None for k in listed if k["name"] == "web"] == [True]
    again = run(workspace, "keys", "revoke", created["key_id"])  # revoking twice says so
    assert f"{created['key_id']} (web) was already revoked on " in again
    assert orjson.loads(run(workspace, "keys", "list", "--format", "json")) == listed


def test_quarantine_list_and_replay(workspace: Workspace) -> None:
    plan = {"allow_unplanned_events": False}
    Intake(with_plan(workspace, plan), FixedClock(NOW)).submit(
        [track("q1", "Unplanned", userId="u")], source="web"
    )
    workspace.close()
    items = orjson.loads(run(workspace, "quarantine", "list", "--format", "json"))
    assert [(i["message_id"], i["field"]) for i in items] == [("q1", "event")]
    # The workspace file has no plan, so the replay lets it through.
    summary = orjson.loads(run(workspace, "quarantine", "replay", "--format", "json"))
    assert summary == {"stored": 1, "duplicates": 0, "still_held": 0, "unreadable": 0}
    assert orjson.loads(run(workspace, "quarantine", "list", "--format", "json")) == []
