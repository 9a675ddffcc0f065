"""Retention per event type, minimisation against the tracking plan, derived PII traits."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import orjson
import pytest
from ruamel.yaml import YAML

from segmint.intake.pipeline import Intake
from segmint.privacy import audit
from segmint.privacy.keys import generate_master_key, write_key_file
from segmint.privacy.retention import enforce
from segmint.workspace import Workspace

from .conftest import T0

PRIVACY = {
    "retention": {"Page Viewed": "90d"},
    "minimise": True,
    "derive": {"email_domain": {"from": "email", "take": "domain"},
               "email_key": {"from": "email", "take": "hash"}},
}  # fmt: skip
PLAN = {"events": {"Order Completed": {"properties": {"total": {"type": "number"}}}}}


def _configure(path: Path) -> Workspace:
    yaml = YAML()
    doc = yaml.load((path / "segmint.yaml").read_text())
    doc["privacy"] = PRIVACY
    doc["tracking_plan"] = PLAN
    doc["traits"]["email_domain"] = {"from": "identify", "type": "string"}
    doc["segments"]["example_staff"] = {"rule": "email_domain = 'example.com'"}
    with (path / "segmint.yaml").open("w") as out:
        yaml.dump(doc, out)
    return Workspace.open(path)


def _event(mid: str, name: str, days_ago: int, **props: object) -> dict[str, object]:
    at = (T0 - timedelta(days=days_ago)).isoformat()
    return {"type": "track", "userId": "u1", "event": name, "properties": props,
            "timestamp": at, "messageId": mid}  # fmt: skip


@pytest.fixture
def configured(workspace: Workspace) -> Workspace:
    write_key_file(workspace.path / ".segmint-keys", generate_master_key())
    ws = _configure(workspace.path)
    Intake(ws).submit(
        [
            _event("old-view", "Page Viewed", 100, url="/a"),
            _event("new-view", "Page Viewed", 10, url="/b"),
            _event("old-order", "Order Completed", 400, total=5, coupon="X1", email="a@b.c"),
            {"type": "identify", "userId": "u1", "traits": {"email": "Ada@Example.com"},
             "timestamp": T0.isoformat(), "messageId": "id1"},
        ],
        source="test",
        received_at=T0,
    )  # fmt: skip
    return ws


def test_enforce_deletes_only_expired_events_of_listed_types(configured: Workspace) -> None:
    store = configured.store
    assert enforce(configured.privacy, as_of=T0) == {"Page Viewed": 1}
    left = {r[0] for r in store.fetchall("SELECT message_id FROM events")}
    assert left == {"new-view", "old-order", "id1"}
    assert audit.entries(store)[-1].action == "privacy.retention"
    assert enforce(configured.privacy, as_of=T0) == {"Page Viewed": 0}  # idempotent


def test_minimise_drops_properties_the_plan_does_not_declare(configured: Workspace) -> None:
    raw = configured.store.fetchall("SELECT properties FROM events WHERE message_id='old-order'")
    assert orjson.loads(raw[0][0]) == {"total": 5}
    raw = configured.store.fetchall("SELECT properties FROM events WHERE message_id='new-view'")
    assert orjson.loads(raw[0][0]) == {"url": "/b"}  # an unplanned event keeps its own


def test_derived_traits_let_rules_compare_pii(configured: Workspace) -> None:
    from segmint.membership.service import Membership

    raw = configured.store.fetchall("SELECT traits FROM events WHERE message_id = 'id1'")
    traits = orjson.loads(raw[0][0])
    assert traits["email"].startswith("enc:")
    assert traits["email_domain"] == "example.com"
    assert traits["email_key"] == configured.privacy.subject_hash("email", "ada@example.com")
    Membership(configured).refresh(T0)
    members = configured.store.fetchall(
        "SELECT count(*) FROM memberships WHERE segment = 'example_staff'"
    )
    assert members[0][0] == 1


def test_cli_enforce_needs_periods(workspace: Workspace, cli) -> None:  # type: ignore[no-untyped-def]
    done = cli("--workspace", str(workspace.path), "privacy", "enforce", "--as-of", "2026-03-01")
    assert done.returncode == 2 and "retention" in done.stderr


def test_serve_runs_retention_daily_and_records_deploys(configured: Workspace) -> None:
    import time

    from segmint.clock import FixedClock
    from segmint.privacy.audit import record_deploy
    from segmint.privacy.retention import start_daily

    stop = start_daily(configured.privacy, FixedClock(T0), every=timedelta(seconds=0.05))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if not configured.store.fetchall("SELECT 1 FROM events WHERE message_id = 'old-view'"):
            break
        time.sleep(0.05)
    stop()
    runs = [e for e in audit.entries(configured.store) if e.action == "privacy.retention"]
    assert runs and runs[0].actor == "serve"
    yaml_file = configured.path / "segmint.yaml"
    assert record_deploy(configured.store, yaml_file, at=T0, actor="serve")
    assert not record_deploy(configured.store, yaml_file, at=T0, actor="serve")  # unchanged
    yaml_file.write_text(yaml_file.read_text() + "\n# changed\n")
    assert record_deploy(configured.store, yaml_file, at=T0, actor="serve")
    audit.verify(configured.store)
