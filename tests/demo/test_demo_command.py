"""``segmint demo`` end to end on a small shop, run as a user runs it.

Every step the demo reports as done is checked against what it left behind: events and
profiles in the store, memberships, preview files, the campaign outbox.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from segmint.demo.runner import run_demo
from segmint.demo.stage import DemoOptions
from segmint.workspace import Workspace

CUSTOMERS = 300
CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith("SEGMINT_")} | {
    "COLUMNS": "120"
}
"""The environment without SEGMINT_* settings (a SEGMINT_DATABASE_URL would redirect the store)."""
WIRED = {
    "workspace", "ingest", "refresh", "segments", "models", "previews", "consent", "campaign",
    "experiment", "journeys", "journey_experiment",
}  # fmt: skip
"""Steps whose APIs have landed: they must be done, not merely attempted."""


@pytest.fixture(scope="module")
def demo_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[subprocess.CompletedProcess[str], Path]:
    root = tmp_path_factory.mktemp("demo")
    result = subprocess.run(
        [sys.executable, "-m", "segmint", "demo", "--customers", str(CUSTOMERS),
         "--dir", str(root / "shop"), "--out", str(root / "out")],
        capture_output=True, text=True, check=False, cwd=root,
        env=CLEAN_ENV,
    )  # fmt: skip
    return result, root


@pytest.fixture(scope="module")
def summary(demo_run: tuple[subprocess.CompletedProcess[str], Path]) -> dict[str, Any]:
    result, root = demo_run
    assert result.returncode == 0, result.stdout + result.stderr
    data: dict[str, Any] = json.loads((root / "out" / "summary.json").read_text(encoding="utf-8"))
    return data


def status(summary: dict[str, Any]) -> dict[str, str]:
    return {s["stage"]: s["status"] for s in summary["steps"]}


def test_no_step_failed_and_the_wired_ones_ran(summary: dict[str, Any]) -> None:
    steps = status(summary)
    assert list(steps) == [
        "workspace", "ingest", "refresh", "segments", "models", "previews", "consent", "campaign",
        "experiment", "journeys", "journey_experiment",
    ]  # fmt: skip
    assert all(steps[name] == "done" for name in WIRED), steps
    assert all(s in {"done", "unavailable", "skipped"} for s in steps.values()), steps


def test_output_says_what_to_open_and_run(
    demo_run: tuple[subprocess.CompletedProcess[str], Path], summary: dict[str, Any]
) -> None:
    out = demo_run[0].stdout
    assert "What the demo did" in out and "Open" in out and "Run" in out
    assert "segmint -w" in out and "status" in out
    for step in summary["steps"]:
        if step["status"] == "unavailable":
            assert "not available in this build" in out


def test_the_experiment_report_is_printed_and_its_arms_partition_the_recipients(
    demo_run: tuple[subprocess.CompletedProcess[str], Path], summary: dict[str, Any]
) -> None:
    out = demo_run[0].stdout
    assert "Experiment report: subject_lines" in out and "sample ratio" in out
    data = summary["facts"]["experiment"]
    assert [a["arm"] for a in data["arms"]] == ["control", "urgent", "holdout"]
    with Workspace.open(demo_run[1] / "shop") as ws:
        assigned = ws.store.fetchall(
            "SELECT count(*), count(DISTINCT profile_id) FROM experiment_assignments "
            "WHERE experiment = 'subject_lines'"
        )[0]
        sent = ws.store.fetchall(
            "SELECT count(*) FROM sends WHERE campaign = 'subject_test' AND status = 'sent'"
        )[0][0]
    assert assigned[0] == assigned[1] == sum(a["n"] for a in data["arms"])
    assert sent == sum(a["n"] for a in data["arms"] if not a["holdout"])


def test_the_abandoned_cart_reminder_experiment_is_reported_and_its_command_shown(
    demo_run: tuple[subprocess.CompletedProcess[str], Path], summary: dict[str, Any]
) -> None:
    """The journey step's arms: recorded by the journeys, reported, the command suggested."""
    out, root = demo_run[0].stdout, demo_run[1]
    assert "Experiment report: abandoned_cart.reminder" in out
    assert "experiments report abandoned_cart.reminder" in out  # the closing panel
    data = summary["facts"]["journey_experiment"]
    assert [a["arm"] for a in data["arms"]] == ["control", "personal", "holdout"]
    assert data["campaign"] == "journey:abandoned_cart:reminder"
    with Workspace.open(root / "shop", reads_only=True) as ws:
        arms = dict(ws.store.fetchall(
            "SELECT arm, count(*) FROM experiment_assignments "
            "WHERE experiment = 'abandoned_cart.reminder' GROUP BY arm"))  # fmt: skip
        sent = ws.store.fetchall(
            "SELECT count(*) FROM sends s JOIN experiment_assignments a "
            "ON a.profile_id = s.profile_id AND a.experiment = 'abandoned_cart.reminder' "
            "WHERE s.campaign LIKE 'journey:abandoned_cart:reminder:%' AND s.status = 'sent' "
            "AND a.arm = 'holdout'"
        )[0][0]
    assert arms == {a["arm"]: a["n"] for a in data["arms"] if a["n"]} and sum(arms.values()) > 0
    assert sent == 0  # the holdout arm got no reminder
    # the same figures as the command prints
    shown = subprocess.run(
        [sys.executable, "-m", "segmint", "-w", str(root / "shop"), "experiments", "report",
         "abandoned_cart.reminder", "--as-of", data["as_of"], "--format", "json"],
        capture_output=True, text=True, check=False, env=CLEAN_ENV,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["arms"] == data["arms"]


def test_ingest_stored_every_message_as_one_profile_per_customer(
    demo_run: tuple[subprocess.CompletedProcess[str], Path], summary: dict[str, Any]
) -> None:
    facts = summary["facts"]["ingest"]
    assert facts["customers"] == CUSTOMERS
    assert facts["accepted"] == facts["messages"] > 20 * CUSTOMERS
    with Workspace.open(demo_run[1] / "shop") as ws:
        store = ws.store
        # the models step adds score events (type 'score'), which are not ingested messages;
        # the experiment step adds its sends' deliveries and their simulated engagement
        stored = store.fetchall("SELECT count(*) FROM events WHERE type <> 'score'")[0][0]
        assert stored == facts["messages"] + summary["facts"].get("experiment_events", 0)
        live = store.fetchall("SELECT count(*) FROM profiles WHERE merged_into IS NULL")[0][0]
        assert live == CUSTOMERS  # anonymous sessions merged into the customer who identified
        assert store.fetchall("SELECT count(*) FROM quarantine")[0][0] == 0


def test_refresh_placed_every_profile_in_one_lifecycle_segment(
    demo_run: tuple[subprocess.CompletedProcess[str], Path], summary: dict[str, Any]
) -> None:
    if status(summary)["refresh"] != "done":
        assert "refresh" not in WIRED
        return
    with Workspace.open(demo_run[1] / "shop") as ws:
        lifecycle = [n for n, s in ws.definition.segments.items() if s.group == "lifecycle"]
        marks = ", ".join(f"'{n}'" for n in lifecycle)
        rows = ws.store.fetchall(
            f"SELECT profile_id, count(*) FROM memberships WHERE segment IN ({marks}) "
            "GROUP BY profile_id"
        )
    assert len(rows) == CUSTOMERS and all(n == 1 for _, n in rows)
    sizes = summary["facts"]["segments"]
    assert sizes["vip"] > 0 and sizes["churned"] > 0 and sizes["window_shoppers"] > 0


def test_archetypes_land_in_their_segments(summary: dict[str, Any]) -> None:
    if status(summary)["segments"] != "done":
        assert "segments" not in WIRED
        return
    landing = summary["facts"]["landing"]
    assert sum(sum(c.values()) for c in landing.values()) == CUSTOMERS
    assert set(landing["churned"]) == {"churned"}
    assert set(landing["lapsing"]) == {"lapsing"}
    for visitor in ("new_visitor", "window_shopper", "new_customer"):
        assert set(landing[visitor]) == {"new_customer"}
    vip = landing["vip"]
    assert vip["vip"] >= 0.75 * sum(vip.values())


def test_previews_were_written(
    demo_run: tuple[subprocess.CompletedProcess[str], Path], summary: dict[str, Any]
) -> None:
    if status(summary)["previews"] != "done":
        assert "previews" not in WIRED
        return
    previews = demo_run[1] / "out" / "previews"
    for segment, files in summary["facts"]["previews"].items():
        assert files, segment
        for html in files:
            assert Path(html).read_text(encoding="utf-8").startswith("<")
            eml = Path(html).with_suffix(".eml").read_bytes()
            assert b"Subject:" in eml and b"multipart/alternative" in eml
    assert (previews / "vip").is_dir()


def test_consent_came_from_identify_calls_unsubscribes_and_bounces(
    demo_run: tuple[subprocess.CompletedProcess[str], Path], summary: dict[str, Any]
) -> None:
    if status(summary)["consent"] != "done":
        assert "consent" not in WIRED
        return
    facts = summary["facts"]["consent"]
    events = summary["facts"]["ingest"]["by_event"]
    assert facts["unsubscribes_imported"] == events.get("Unsubscribed", 0)
    assert facts["unsubscribes_refused"] == 0
    assert facts["from_identify"] > 0
    with Workspace.open(demo_run[1] / "shop") as ws:
        suppressed = ws.store.fetchall("SELECT count(*) FROM suppressions")[0][0]
        statuses = dict(ws.store.fetchall("SELECT status, count(*) FROM consents GROUP BY status"))
    assert suppressed == facts["bounces_suppressed"] == events.get("Email Bounced", 0)
    assert statuses.get("unsubscribed", 0) == facts["unsubscribes_imported"]
    assert statuses["granted"] > statuses.get("denied", 0) > 0


def test_campaign_dry_run_wrote_its_outbox(
    demo_run: tuple[subprocess.CompletedProcess[str], Path], summary: dict[str, Any]
) -> None:
    if status(summary)["campaign"] != "done":
        assert "campaign" not in WIRED
        return
    report = summary["facts"]["campaign"]
    assert report["dry_run"] is True
    assert (
        report["written"] + sum(report["skipped"].values()) + sum(report["failed"].values())
        == report["audience"]
    )
    outbox = Path(summary["facts"]["outbox"])
    assert "sent" not in report  # a dry run sends nothing, and says so
    assert len(list(outbox.glob("*.eml"))) == report["written"]


def test_journeys_ran_the_abandoned_cart_into_an_outbox(
    demo_run: tuple[subprocess.CompletedProcess[str], Path], summary: dict[str, Any]
) -> None:
    _, root = demo_run
    report = summary["facts"]["journeys"]
    assert report["entered"]["entered"] > 0
    outbox = root / "out" / "journeys-outbox"
    assert len(list(outbox.glob("*.eml"))) == report["sent"] > 0
    with Workspace.open(root / "shop", reads_only=True) as ws:
        outcomes = dict(ws.store.fetchall(
            "SELECT outcome, count(*) FROM journey_history WHERE journey = 'abandoned_cart' "
            "GROUP BY outcome"
        ))  # fmt: skip
    assert outcomes["entered"] > 0 and outcomes["waited"] > 0


def test_a_second_run_starts_from_scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SEGMINT_DATABASE_URL", raising=False)
    options = DemoOptions(customers=20, directory=tmp_path / "shop", out=tmp_path / "out")
    for _ in range(2):
        console = Console(file=io.StringIO(), width=100)
        result = run_demo(options, console)
        assert result.ok, console.file.getvalue()  # type: ignore[attr-defined]
    with Workspace.open(tmp_path / "shop") as ws:
        events = ws.store.fetchall("SELECT count(*) FROM events WHERE type <> 'score'")[0][0]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text(encoding="utf-8"))
    facts = summary["facts"]
    assert events == facts["ingest"]["messages"] + facts.get("experiment_events", 0)


def test_refuses_a_foreign_folder(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "keep.txt").write_text("mine", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "segmint", "demo", "--customers", "5", "--dir", "mine"],
        capture_output=True, text=True, check=False, cwd=tmp_path, env=CLEAN_ENV,
    )  # fmt: skip
    assert result.returncode == 1
    assert "was not made by 'segmint demo'" in result.stdout + result.stderr
    assert (tmp_path / "mine" / "keep.txt").exists()


@pytest.mark.postgres
def test_the_demo_runs_on_postgresql(
    tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import psycopg

    name = f"segmint_demo_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_url, autocommit=True) as con:
        con.execute(f'CREATE DATABASE "{name}"')
    url = postgres_url.rsplit("/", 1)[0] + f"/{name}"
    monkeypatch.setenv("SEGMINT_DATABASE_URL", url)
    try:
        options = DemoOptions(customers=60, directory=tmp_path / "shop", out=tmp_path / "out")
        console = Console(file=io.StringIO(), width=100)
        result = run_demo(options, console)
        assert result.ok, console.file.getvalue()  # type: ignore[attr-defined]
        assert {o.stage: o.status for o in result.outcomes}.keys() >= WIRED
        assert all(o.status == "done" for o in result.outcomes if o.stage in WIRED)
        with Workspace.open(tmp_path / "shop") as ws:
            assert ws.store.dialect == "postgres"
            events = ws.store.fetchall("SELECT count(*) FROM events WHERE type <> 'score'")[0][0]
            members = ws.store.fetchall("SELECT count(*) FROM memberships")[0][0]
        summary = json.loads((tmp_path / "out" / "summary.json").read_text(encoding="utf-8"))
        facts = summary["facts"]
        assert events == facts["ingest"]["messages"] + facts.get("experiment_events", 0)
        assert members >= 60
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as con:
            con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_models_trained_on_the_shop_and_printed_clusters_and_risks(
    demo_run: tuple[subprocess.CompletedProcess[str], Path], summary: dict[str, Any]
) -> None:
    result, _ = demo_run
    facts = summary["facts"]
    assert {"clv", "rfm"} <= set(facts["models"])
    assert "Clusters of rfm" in result.stdout and "proposed rule" in result.stdout
    if "churn_risk" in facts["models"]:  # a 300-customer shop may be too small: it says so
        assert "Top 5 by churn_risk" in result.stdout
    else:
        assert "churn_risk: the" in result.stdout and "needs at least" in result.stdout
