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
