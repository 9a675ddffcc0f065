"""Bad trait definitions: each is refused with file:line, a caret and a suggestion."""

from __future__ import annotations

from pathlib import Path

import pytest

from segmint.config.errors import ConfigError
from segmint.config.loader import load_workspace_def
from segmint.traits import TraitCycleError, TraitDefinitionError
from segmint.traits.validate import workspace_catalog
from segmint.workspace import Workspace

HEAD = "name: t\ntraits:\n  orders: {count: events, event: Order Completed}\n"


def open_ws(tmp_path: Path, traits: str) -> Workspace:
    (tmp_path / "segmint.yaml").write_text(HEAD + traits, encoding="utf-8")
    return Workspace.open(tmp_path)


def refused(tmp_path: Path, traits: str) -> TraitDefinitionError:
    """The traits package's own error (the workspace is loaded without rule checks)."""
    (tmp_path / "segmint.yaml").write_text(HEAD + traits, encoding="utf-8")
    ws = Workspace(tmp_path, load_workspace_def(tmp_path / "segmint.yaml"))
    with pytest.raises(TraitDefinitionError) as info:
        workspace_catalog(ws)
    return info.value


def test_wrong_target_names_the_line(tmp_path: Path) -> None:
    error = refused(tmp_path, "  n: {count: properties.total}\n")
    assert str(error).startswith(f"{tmp_path / 'segmint.yaml'}:4:")
    assert "'count' reads 'events'" in str(error)
    assert error.hint == "write count: events"


def test_filter_that_does_not_type_check_points_into_the_rule(tmp_path: Path) -> None:
    error = refused(tmp_path, '  n: {count: events, where: "total > now()"}\n')
    assert error.key_path == "traits.n.where"
    assert error.location is not None and error.location.line == 4
    detail = error.detailed_message()
    line, caret = detail.splitlines()[1:3]
    column = caret.index("^") - caret.index("|") + line.index("|")
    assert line[column:].startswith("now()") or line[column:].startswith("total")


def test_derived_trait_with_unknown_name_suggests(tmp_path: Path) -> None:
    error = refused(tmp_path, '  n: {expr: "orderz + 1"}\n')
    assert "did you mean 'orders'?" in (error.hint or "")
    assert error.location is not None and error.location.line == 4


def test_derived_cycle_is_refused(tmp_path: Path) -> None:
    error = refused(tmp_path, '  a: {expr: "b + 1"}\n  b: {expr: "a * 2"}\n')
    assert isinstance(error, TraitCycleError)
    assert "a -> b -> a" in str(error)


def test_declared_type_must_fit_the_aggregate(tmp_path: Path) -> None:
    error = refused(tmp_path, "  n: {sum: properties.total, type: string}\n")
    assert error.key_path == "traits.n.type"
    assert "use type: number" in str(error)


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        ("  n: {count: events, within: 30 fortnights}\n", "cannot read duration"),
        ("  n: {counts: events}\n", "aggregates are"),
    ],
)
def test_bad_window_and_unknown_aggregate_fail_at_load(
    tmp_path: Path, line: str, needle: str
) -> None:
    with pytest.raises(ConfigError) as info:
        open_ws(tmp_path, line)
    assert needle in str(info.value)
    assert ":4:" in str(info.value)


def test_check_traits_lists_the_problem(tmp_path: Path) -> None:
    from segmint.traits.validate import check_traits

    path = tmp_path / "segmint.yaml"
    path.write_text(HEAD + "  n: {avg: timestamp}\n", encoding="utf-8")
    problems = check_traits(load_workspace_def(path), path)
    assert [p.key_path for p in problems] == ["traits.n.avg"]
    assert problems[0].location is not None and problems[0].location.line == 4
    path.write_text(HEAD, encoding="utf-8")
    assert check_traits(load_workspace_def(path), path) == []


def test_profile_id_is_not_a_trait_name(tmp_path: Path) -> None:
    error = refused(tmp_path, "  profile_id: {count: events}\n")
    assert "profile key" in str(error)
    assert error.location is not None and error.location.line == 4
