"""The measurement commands as a new user runs them, right input and wrong."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from segmint.workspace import Workspace

from .conftest import T0, Shop

D = timedelta(days=1)
AS_OF = (T0 + 30 * D).isoformat()


@pytest.fixture
def shop(tmp_path: Path) -> Any:
    path = tmp_path / "ws"
    Workspace.init(path, name="cli-shop").close()
    text = (path / "segmint.yaml").read_text()
    (path / "segmint.yaml").write_text(
        text
        + """
experiments:
  subject_test:
    campaign: lifecycle_update
    metric: open
    variants:
      - {name: control}
      - {name: b, subject: "Hello"}
"""
    )
    ws = Workspace.open(path)
    s = Shop(ws)
    for user in ("ann", "bob"):
        s.sent("lifecycle_update", user, T0)
    s.opened("lifecycle_update", "ann", T0 + D)
    s.ordered("ann", T0 + 2 * D, 25)
    ws.close()
    return path


def run(cli: Callable[..., Any], path: Path, *args: str) -> Any:
    return cli("-w", str(path), *args)


def test_rebuild_then_kpis_in_every_format(cli: Callable[..., Any], shop: Path) -> None:
    done = run(cli, shop, "measure", "rebuild", "--as-of", AS_OF, "--format", "json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["by_campaign"] == {"lifecycle_update": 1}

    out = run(cli, shop, "report", "kpis", "--to", AS_OF, "--format", "json")
    data = json.loads(out.stdout)
    row = data["rows"][0]
    assert (row["campaign"], row["sent"], row["opened"], row["conversions"]) == (
        "lifecycle_update", 2, 1, 1)  # fmt: skip
    assert row["revenue_per_recipient"] == 12.5

    by_segment = run(cli, shop, "report", "kpis", "--by", "segment", "--to", AS_OF,
                     "--format", "csv")  # fmt: skip
    rows = {r["segment"]: r for r in csv.DictReader(io.StringIO(by_segment.stdout))}
    assert "churned" in rows and rows["churned"]["sent"] == "0"  # every segment is listed
    assert rows["vip"]["sent"] == rows["(total)"]["sent"] == "2"

    table = run(cli, shop, "report", "kpis", "--to", AS_OF, "--by", "template")
    assert table.returncode == 0 and "lifecycle" in table.stdout


def test_kpis_refuse_a_backwards_period_and_an_unknown_grouping(
    cli: Callable[..., Any], shop: Path
) -> None:
    backwards = run(cli, shop, "report", "kpis", "--from", "2026-05-01", "--to", "2026-04-01")
    assert backwards.returncode != 0 and "not before --to" in backwards.stderr
    unknown = run(cli, shop, "report", "kpis", "--by", "segmnt")
    assert unknown.returncode != 0 and "segment" in unknown.stderr
    bad = run(cli, shop, "report", "kpis", "--from", "last tuesday")
    assert bad.returncode != 0


def test_churn_needs_segments_and_a_known_target(cli: Callable[..., Any], shop: Path) -> None:
    wrong = run(cli, shop, "report", "kpis", "--churn-to", "churned")
    assert wrong.returncode == 2 and "--by segment" in wrong.stderr
    typo = run(cli, shop, "report", "kpis", "--by", "segment", "--churn-to", "churnd")
    assert typo.returncode == 1 and "did you mean 'churned'" in typo.stderr
    ok = run(cli, shop, "report", "kpis", "--by", "segment", "--churn-to", "churned",
             "--format", "json")  # fmt: skip
    assert {r["segment"]: r["churned"] for r in json.loads(ok.stdout)["rows"]}["vip"] == 0


def test_kpis_say_when_attribution_never_ran(cli: Callable[..., Any], shop: Path) -> None:
    out = run(cli, shop, "report", "kpis", "--to", AS_OF)
    assert out.returncode == 0 and "measure rebuild" in out.stderr


def test_experiment_list_and_report(cli: Callable[..., Any], shop: Path) -> None:
    listed = json.loads(run(cli, shop, "experiments", "list", "--format", "json").stdout)
    arm = {"weight": 1.0, "holdout": False}
    assert listed == [
        {"experiment": "subject_test", "campaign": "lifecycle_update", "metric": "open",
         "arms": [{"name": "control", **arm}, {"name": "b", **arm}]},
        {"experiment": "win_back.miss_you", "campaign": "journey:win_back:miss_you",  # init's
         "metric": "conversion", "arms": [
             {"name": "control", "weight": 45.0, "holdout": False},
             {"name": "personal", "weight": 45.0, "holdout": False},
             {"name": "holdout", "weight": 10.0, "holdout": True}]},
    ]  # fmt: skip
    report = run(cli, shop, "experiments", "report", "subject_test", "--as-of", AS_OF,
                 "--format", "json")  # fmt: skip
    data = json.loads(report.stdout)
    assert data["arms"][0]["n"] == 0  # (the sends were before the experiment)
    assert "Nobody is in an arm yet" in data["conclusion"]
    assert "segmint campaign send lifecycle_update" in data["conclusion"]
    table = run(cli, shop, "experiments", "report", "subject_test", "--as-of", AS_OF)
    assert table.returncode == 0 and "sample ratio ok" in table.stdout


def test_experiment_list_in_json_is_what_the_api_lists(cli: Callable[..., Any], shop: Path) -> None:
    """Arms are objects (name, weight, holdout) on both, the global holdout listed on both."""
    from tests.api.conftest import NOW, serve

    from segmint.clock import FixedClock

    yaml = shop / "segmint.yaml"
    yaml.write_text(yaml.read_text() + "measure:\n  global_holdout_percent: 5\n")
    listed = json.loads(run(cli, shop, "experiments", "list", "--format", "json").stdout)
    assert listed[-1]["experiment"] == "global_holdout"
    assert listed[-1]["arms"] == [
        {"name": "holdout", "weight": 5.0, "holdout": True},
        {"name": "marketed", "weight": 95.0, "holdout": False},
    ]
    ws = Workspace.open(shop)
    try:
        for live in serve(ws, FixedClock(NOW)):
            answer = httpx.get(f"{live.url}/v1/reports/experiments",
                               headers={"Authorization": f"Bearer {live.read_key}"})  # fmt: skip
            assert answer.status_code == 200
            assert answer.json() == {"experiments": listed}
    finally:
        ws.close()
    table = run(cli, shop, "experiments", "list")  # the table keeps its words
    assert "holdout (5 %)" in table.stdout and "(holdout)" in table.stdout


def test_unknown_experiment_suggests_the_nearest(cli: Callable[..., Any], shop: Path) -> None:
    out = run(cli, shop, "experiments", "report", "subject_tset")
    assert out.returncode == 1 and "did you mean 'subject_test'" in out.stderr


def test_experiment_on_a_removed_campaign_is_a_located_config_error(
    cli: Callable[..., Any], shop: Path
) -> None:
    yaml = shop / "segmint.yaml"
    yaml.write_text(yaml.read_text().replace("campaign: lifecycle_update", "campaign: gone"))
    out = run(cli, shop, "experiments", "list")
    assert out.returncode == 1
    assert "segmint.yaml:" in out.stderr and "unknown campaign 'gone'" in out.stderr
    assert "experiments.subject_test.campaign" in out.stderr


def test_one_arm_and_a_bad_window_are_config_errors(cli: Callable[..., Any], shop: Path) -> None:
    yaml = shop / "segmint.yaml"
    text = yaml.read_text()
    yaml.write_text(text.replace('      - {name: b, subject: "Hello"}\n', "")
                    + "measure:\n  window: 5 dayz\n")  # fmt: skip
    out = run(cli, shop, "experiments", "list")
    assert "at least two arms" in out.stderr and "cannot read duration '5 dayz'" in out.stderr


@pytest.mark.parametrize("section", ["experiments", "campaigns"])
def test_an_experiment_named_global_holdout_is_a_located_config_error(
    cli: Callable[..., Any], shop: Path, section: str
) -> None:
    """It was listed, its report was the global holdout's ('no global holdout'), and its
    arms were drawn from the very buckets that pick the global holdout."""
    yaml = shop / "segmint.yaml"
    text = yaml.read_text()
    if section == "experiments":
        text = text.replace("  subject_test:\n", "  global_holdout:\n")
    else:  # a campaign's own arms: an experiment named after it
        text = text[: text.index("\nexperiments:\n  subject_test:")].replace(
            "  lifecycle_update:\n    segment: vip\n",
            "  global_holdout:\n    segment: vip\n    variants: [{name: a}, {name: b}]\n",
        )
    yaml.write_text(text)
    out = run(cli, shop, "experiments", "list")
    assert out.returncode == 1
    assert "segmint.yaml:" in out.stderr and "'global_holdout' is the global holdout" in out.stderr


def test_what_is_not_an_experiment_is_said_so(cli: Callable[..., Any], shop: Path) -> None:
    """A campaign, a journey, a step without arms or a typo: each told what it is."""
    said = {
        "lifecycle_update": "campaign 'lifecycle_update' is split by experiment 'subject_test'",
        "abandoned_cart.reminder": "journey step 'abandoned_cart.reminder' has no experiment; "
        "give the step 'variants:'",
        "abandoned_cart.remindr": "journey 'abandoned_cart' has no step 'remindr' (did you "
        "mean 'reminder'?)",
        "abandoned_cart.one_day": "step 'one_day' of journey 'abandoned_cart' sends nothing",
        "win_back": "named JOURNEY.STEP; the send steps of 'win_back' are miss_you, last_try",
        "nope": "unknown experiment 'nope' (experiments: subject_test, win_back.miss_you)",
        "global_holdout": "no global holdout: set measure.global_holdout_percent",
    }
    for name, text in said.items():
        for fmt in ("table", "json"):
            out = run(cli, shop, "experiments", "report", name, "--format", fmt)
            assert out.returncode == 1 and text in out.stderr, (name, out.stderr)
            if fmt == "json":  # a script reading the output reads JSON, the error too
                assert text in json.loads(out.stdout)["error"]["message"]
            else:
                assert out.stdout == ""


def test_a_journey_step_experiment_nobody_reached_says_how_to_run_it(
    cli: Callable[..., Any], shop: Path
) -> None:
    out = run(cli, shop, "experiments", "report", "win_back.miss_you", "--as-of", AS_OF,
              "--format", "json")  # fmt: skip
    data = json.loads(out.stdout)
    assert [a["n"] for a in data["arms"]] == [0, 0, 0]
    assert "journey step win_back.miss_you assigns them" in data["conclusion"]
    assert "segmint journeys run" in data["conclusion"]


def test_report_from_is_for_the_global_holdout_and_before_as_of(
    cli: Callable[..., Any], shop: Path
) -> None:
    other = run(cli, shop, "experiments", "report", "subject_test", "--from", "2026-01-01")
    assert other.returncode == 2 and "--from applies to global_holdout only" in other.stderr
    backwards = run(cli, shop, "experiments", "report", "global_holdout",
                    "--from", "2026-05-01", "--as-of", "2026-04-01")  # fmt: skip
    assert backwards.returncode == 2 and "is not before --as-of" in backwards.stderr
    month = run(cli, shop, "report", "kpis", "--from", "2026-13-01")
    assert month.returncode == 2 and "month must be in 1..12" in month.stderr


def test_suggest_before_a_refresh_and_before_any_send(
    cli: Callable[..., Any], tmp_path: Path
) -> None:
    path = tmp_path / "fresh"
    Workspace.init(path, name="fresh").close()
    for fmt in ("table", "json"):  # an empty store: no traceback, what to run
        empty = run(cli, path, "segments", "suggest", "vip", "--format", fmt)
        assert empty.returncode == 1 and "run `segmint refresh` first" in empty.stderr
        assert "Traceback" not in empty.stderr
    assert run(cli, path, "refresh", "--as-of", AS_OF).returncode == 0
    table = run(cli, path, "segments", "suggest", "vip", "--as-of", AS_OF)
    assert table.returncode == 0, table.stderr
    assert "nothing sent yet" in table.stdout and "campaign send lifecycle_update" in table.stdout
    data = json.loads(run(cli, path, "segments", "suggest", "vip", "--as-of", AS_OF,
                          "--format", "json").stdout)  # fmt: skip
    assert (data["recipients"], data["rate"]) == (0, None)
    rebuilt = run(cli, path, "measure", "rebuild", "--as-of", AS_OF, "--format", "json")
    assert json.loads(rebuilt.stdout)["conversions"] == 0
    kpis = json.loads(run(cli, path, "report", "kpis", "--format", "json").stdout)
    assert kpis["rows"] == [] and kpis["total"]["sent"] == 0


def test_an_archived_segment_is_named_as_archived(cli: Callable[..., Any], shop: Path) -> None:
    yaml = shop / "segmint.yaml"
    yaml.write_text(
        yaml.read_text().replace("  high_value:\n", "  high_value:\n    archived: true\n")
    )
    assert run(cli, shop, "refresh", "--as-of", AS_OF).returncode == 0
    archived = run(cli, shop, "segments", "suggest", "high_value", "--as-of", AS_OF)
    assert archived.returncode == 1 and "segment 'high_value' is archived" in archived.stderr
    typo = run(cli, shop, "segments", "suggest", "high_valu", "--format", "json")
    assert typo.returncode == 1 and "did you mean 'high_value'" in typo.stderr
    # its history stays: churn into it is still counted; a typo is suggested the name
    churn = run(cli, shop, "report", "kpis", "--by", "segment", "--churn-to", "high_value",
                "--format", "json")  # fmt: skip
    assert churn.returncode == 0 and json.loads(churn.stdout)["churn_to"] == "high_value"
    wrong = run(cli, shop, "report", "kpis", "--by", "segment", "--churn-to", "high_valu")
    assert wrong.returncode == 1 and "did you mean 'high_value'" in wrong.stderr


def test_an_experiment_removed_from_the_workspace_says_so(
    cli: Callable[..., Any], shop: Path
) -> None:
    """Its assignments stay in the store: the answer says it was removed, not 'unknown'."""
    from segmint.measure.assign import assign

    with Workspace.open(shop) as ws:
        variants = ws.definition.experiments["subject_test"].variants
        people = [r[0] for r in ws.store.fetchall("SELECT DISTINCT profile_id FROM sends")]
        assign(ws.store, "subject_test", variants, people, T0)
    yaml_file = shop / "segmint.yaml"
    yaml_file.write_text(yaml_file.read_text().split("\nexperiments:\n")[0] + "\n")
    for fmt in ("table", "json"):
        out = run(cli, shop, "experiments", "report", "subject_test", "--format", fmt)
        assert out.returncode == 1
        assert "'subject_test' is no longer in segmint.yaml" in out.stderr
        assert "2 assigned" in out.stderr and "put its definition back" in out.stderr


def test_rebuild_refuses_a_later_instant(cli: Callable[..., Any], shop: Path) -> None:
    """``measure rebuild --as-of 2030-01-01`` stored an attribution "as of" an instant whose
    sends and conversions were not in yet (as refresh and models do, it is refused now)."""
    later = run(cli, shop, "measure", "rebuild", "--as-of", "+30d", "--format", "json")
    assert later.returncode == 2, later
    error = json.loads(later.stdout)["error"]
    assert error["field"] == "--as-of" and "later than now" in error["message"]
    with Workspace.open(shop) as ws:
        from segmint.measure.attribution import built_as_of

        assert built_as_of(ws.store) is None  # nothing stored
    done = run(cli, shop, "measure", "rebuild", "--as-of", AS_OF, "--format", "json")
    assert done.returncode == 0, done.stderr
