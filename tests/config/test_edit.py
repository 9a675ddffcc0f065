"""Saving a segment into segmint.yaml: what is written reads back the same, nothing else moves."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segmint.config.edit import DefinitionEditor, text_version
from segmint.config.errors import ConfigErrors, StaleDefinitionError
from segmint.workspace import Workspace

RULES = ["orders > 1", "lifetime_value >= 1000", "email is null",
         "performed('Order Completed', within => '30 days')",
         "country in ('DE', 'FR') and not in_segment('vip')"]  # fmt: skip
TEXT = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zl", "Zp")),
    min_size=1,
    max_size=30,
).filter(lambda t: t.strip() == t and t)
TAGS = st.lists(st.from_regex(r"[a-z][a-z0-9_-]{0,8}", fullmatch=True), max_size=3, unique=True)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    Workspace.init(tmp_path / "ws", name="edit-shop").close()
    return tmp_path / "ws"


def _outside(lines: list[str], name: str) -> list[str]:
    """The lines that are not segment ``name``'s entry."""
    out, inside = [], False
    for line in lines:
        if line.startswith(f"  {name}:"):
            inside = True
            continue
        if inside and (line.startswith("    ") or not line.strip()):
            if not line.strip():
                inside = False
                out.append(line)
            continue
        inside = False
        out.append(line)
    return out


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    name=st.sampled_from(["vip", "churned", "fresh_one"]),
    rule=st.sampled_from(RULES),
    description=st.none() | TEXT,
    tags=TAGS,
    priority=st.integers(min_value=-5, max_value=500),
)
def test_a_saved_segment_reads_back_and_nothing_else_moves(
    folder: Path, name: str, rule: str, description: str | None, tags: list[str], priority: int
) -> None:
    editor = DefinitionEditor(folder)
    before = editor.path.read_text(encoding="utf-8")
    fields = {"rule": rule, "description": description, "tags": tags or None}
    if name != "fresh_one":  # keep the lifecycle group as it was
        fields |= {"group": "lifecycle", "priority": priority}
    if "in_segment('vip')" in rule and name != "fresh_one":
        rule = fields["rule"] = "orders > 1"  # no lifecycle member can read vip, nor vip itself
    try:
        saved = editor.put_segment(name, fields)
        got = Workspace.open(folder).definition.segments[name]
        assert got.rule == rule and got.description == description
        assert list(got.tags) == tags
        assert saved.version == text_version(editor.path.read_text(encoding="utf-8"))
        after = editor.path.read_text(encoding="utf-8").splitlines()
        assert _outside(after, name) == _outside(before.splitlines(), name)
    finally:
        editor.path.write_text(before, encoding="utf-8")


def test_refused_saves_write_nothing(folder: Path) -> None:
    editor = DefinitionEditor(folder)
    before = editor.path.read_text(encoding="utf-8")
    with pytest.raises(ConfigErrors) as caught:
        editor.put_segment("vip", {"rule": "in_segment('vip')"})
    assert "segments.vip.rule" in str(caught.value)
    with pytest.raises(StaleDefinitionError):
        editor.put_segment("x", {"rule": "orders > 1"}, version="0" * 16)
    editor.put_segment("x", {"rule": "orders > 1"}, dry_run=True)
    assert editor.path.read_text(encoding="utf-8") == before


def test_first_segment_of_a_file_without_segments(tmp_path: Path) -> None:
    folder = tmp_path / "ws"
    folder.mkdir()
    (folder / "segmint.yaml").write_text(
        "name: bare  # a comment that stays\n"
        "traits:\n  orders: {count: events, event: Order Completed}\n"
    )
    DefinitionEditor(folder).put_segment("buyers", {"rule": "orders > 0"})
    text = (folder / "segmint.yaml").read_text()
    assert text.startswith("name: bare  # a comment that stays\n")
    assert Workspace.open(folder).definition.segments["buyers"].rule == "orders > 0"
