"""The demo resets only folders it made, and lays out a workspace that validates."""

from __future__ import annotations

from pathlib import Path

import pytest

from segmint.demo import DemoError
from segmint.demo.layout import MARKER, check_separate, lay_out_workspace, reset_folder
from segmint.workspace import Workspace


def test_lays_out_a_workspace_that_validates(tmp_path: Path) -> None:
    folder = lay_out_workspace(tmp_path / "shop")
    assert (folder / MARKER).exists()
    assert {p.name for p in (folder / "templates").iterdir()} == {
        "layout.html", "lifecycle.html", "cart_reminder.html", "cart_discount.html",
    }  # fmt: skip
    with Workspace.open(folder) as ws:
        definition = ws.definition
    assert {"vip", "loyal_customer", "churned", "lapsing", "new_customer"} <= set(
        definition.segments
    )
    assert {"cart_abandoners", "bargain_hunters", "window_shoppers", "high_value"} <= set(
        definition.segments
    )
    lifecycle = [n for n, s in definition.segments.items() if s.group == "lifecycle"]
    assert [n for n in lifecycle if definition.segments[n].default] == ["new_customer"]
    for campaign in definition.campaigns.values():
        assert campaign.segment in definition.segments
        assert (folder / "templates" / f"{campaign.template}.html").exists()


def test_every_rule_type_checks_against_the_workspace_traits(tmp_path: Path) -> None:
    from segmint.rules import TraitSchema, check, parse
    from segmint.traits import build_catalog

    with Workspace.open(lay_out_workspace(tmp_path / "shop")) as ws:
        definition = ws.definition
    catalog = build_catalog(definition)
    schema = TraitSchema(catalog.types(), frozenset(definition.segments))  # type: ignore[arg-type]
    for name, segment in definition.segments.items():
        if segment.rule is not None:
            assert check(parse(segment.rule), schema) == "boolean", name


def test_a_second_run_resets_the_demo_folder(tmp_path: Path) -> None:
    folder = lay_out_workspace(tmp_path / "shop")
    (folder / "notes.txt").write_text("left over", encoding="utf-8")
    lay_out_workspace(folder)
    assert not (folder / "notes.txt").exists()
    assert (folder / "segmint.yaml").exists()


def test_refuses_to_reset_a_folder_it_did_not_make(tmp_path: Path) -> None:
    precious = tmp_path / "mine"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work", encoding="utf-8")
    with pytest.raises(DemoError, match="was not made by 'segmint demo'"):
        reset_folder(precious, "workspace")
    assert (precious / "thesis.tex").read_text(encoding="utf-8") == "years of work"
    file = tmp_path / "file"
    file.write_text("x", encoding="utf-8")
    with pytest.raises(DemoError, match="is a file"):
        reset_folder(file, "output folder")


def test_an_empty_folder_is_fine(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert (reset_folder(tmp_path / "empty", "output folder") / MARKER).exists()


def test_the_templates_lint_clean(tmp_path: Path) -> None:
    from segmint.personalize.lint import lint_templates

    with Workspace.open(lay_out_workspace(tmp_path / "shop")) as ws:
        issues, sources = lint_templates(ws.templates_dir, ws.definition, None)
    assert set(sources) >= {"layout.html", "lifecycle.html"}
    assert [i.to_dict() for i in issues] == []


def test_workspace_and_output_must_be_separate(tmp_path: Path) -> None:
    check_separate(tmp_path / "shop", tmp_path / "out")
    for workspace, out in [("a", "a"), ("a", "a/out"), ("a/shop", "a")]:
        with pytest.raises(DemoError, match="must be separate"):
            check_separate(tmp_path / workspace, tmp_path / out)
