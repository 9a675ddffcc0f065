"""The walk-through reports each step honestly: done, unavailable, skipped or failed."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from segmint.demo import runner
from segmint.demo.stage import DemoContext, DemoOptions, StageUnavailable, count, need
from segmint.errors import SegmintError


def missing_api(ctx: DemoContext) -> str:
    need("segmint.no_such_package", "Thing")
    return "never"


def missing_name(ctx: DemoContext) -> str:
    need("segmint.demo", "NoSuchName")
    return "never"


def broken(ctx: DemoContext) -> str:
    raise SegmintError("the [store] is on fire")


def buggy(ctx: DemoContext) -> str:
    return str({}["key"])


def fine(ctx: DemoContext) -> str:
    ctx.facts["fine"] = True
    return "all good"


STEPS = (
    runner.StepDef("first", "First", fine),
    runner.StepDef("absent", "Absent", missing_api),
    runner.StepDef("after_absent", "After", fine, ("absent",)),
    runner.StepDef("renamed", "Renamed", missing_name),
    runner.StepDef("broken", "Broken", broken),
    runner.StepDef("buggy", "Buggy", buggy),
    runner.StepDef("last", "Last", fine, ("first",)),
)


def test_each_step_says_what_happened(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "STEPS", STEPS)
    out = io.StringIO()
    options = DemoOptions(customers=1, directory=tmp_path / "shop", out=tmp_path / "out")
    result = runner.run_demo(options, Console(file=out, width=200))
    statuses = {o.stage: o.status for o in result.outcomes}
    assert statuses == {
        "first": "done",
        "absent": "unavailable",
        "after_absent": "skipped",
        "renamed": "unavailable",
        "broken": "failed",
        "buggy": "failed",
        "last": "done",
    }
    assert not result.ok
    text = out.getvalue()
    assert "not available in this build: segmint.no_such_package is not available yet" in text
    assert "segmint.demo does not provide NoSuchName yet" in text
    assert "needs the absent step, which did not run" in text
    assert "the [store] is on fire" in text  # printed as written, not eaten as markup
    assert "KeyError: 'key'" in text


def test_need_returns_what_it_found() -> None:
    (found,) = need("segmint.demo", "Shop")
    assert found.__name__ == "Shop"
    with pytest.raises(StageUnavailable):
        need("segmint.demo", "Shop", "Nope")


def test_count_says_one_or_many() -> None:
    assert count(1, "customer") == "1 customer"
    assert count(20_000, "customer") == "20,000 customers"
    assert count(0, "profile") == "0 profiles"


def test_the_experiment_commands_read_at_the_instant_their_reports_did(tmp_path: Path) -> None:
    """Both experiments' reports are read five days on; so are the commands suggested."""
    from segmint.demo.report import _to_run

    options = DemoOptions(customers=1, directory=tmp_path / "shop", out=tmp_path / "out")
    ctx = DemoContext(options, Console(file=io.StringIO()))
    runs = [text for path, text in _to_run(ctx, {"experiment", "journey_experiment"})
            if path == "experiments"]  # fmt: skip
    read = f"--as-of {options.as_of.replace(day=options.as_of.day + 5):%Y-%m-%dT%H:%M:%SZ}"
    assert runs == [
        f"segmint -w {options.directory} experiments report subject_lines {read}",
        f"segmint -w {options.directory} experiments report abandoned_cart.reminder {read}",
    ]
    assert [t for p, t in _to_run(ctx, set()) if p == "experiments"] == []
