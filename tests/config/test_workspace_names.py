"""Names a workspace cannot give, and segments no plan can order: config errors at their line.

A trait named like a built-in trait, the profile key or a rule keyword, and a segment that is
its own parent, in a parent cycle or reading its own exclusive group, loaded without a word;
the first broke rules or refresh later, the second failed ``segmint refresh`` with "segment
'X' reads itself" and no file or line.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from segmint.config import ConfigErrors, scaffold
from segmint.workspace import Workspace


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    scaffold(tmp_path / "ws")
    return tmp_path / "ws"


def _add(folder: Path, section: str, text: str) -> int:
    """Put ``text`` first in ``section``; return the line number of its first line."""
    path = folder / "segmint.yaml"
    body = path.read_text()
    assert f"\n{section}:\n" in body
    head = body.split(f"\n{section}:\n", 1)[0]
    path.write_text(body.replace(f"\n{section}:\n", f"\n{section}:\n{text}", 1))
    return head.count("\n") + 3


def _errors(folder: Path) -> list[str]:
    with pytest.raises(ConfigErrors) as info:
        Workspace.open(folder)
    return [f"{e.location.line}:{e.location.column} {e.key_path} {e.message}"
            for e in info.value.errors if e.location is not None]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("last_seen_at", "built-in trait"),
        ("first_seen_at", "built-in trait"),
        ("event_count", "built-in trait"),
        ("profile_id", "profile key"),
        ("not", "keyword of the rule language"),
        ("between", "keyword of the rule language"),
        ("In", "keyword of the rule language"),
        ("true", "keyword of the rule language"),  # YAML reads the key as a boolean
        ("null", "keyword of the rule language"),  # ... and this one as null
    ],
)
@pytest.mark.parametrize(
    "definition", ["{from: identify, type: string}", "{count: events, event: Order Completed}",
                   "{expr: 'orders + 1', type: number}"],
)  # fmt: skip
def test_a_trait_cannot_take_a_reserved_name(
    folder: Path, name: str, says: str, definition: str
) -> None:
    line = _add(folder, "traits", f"  {name}: {definition}\n")
    [error] = _errors(folder)
    key = {"true": "True", "null": "None"}.get(name, name)
    assert error.startswith(f"{line}:3 traits.{key} trait name '{name}'"), error
    assert says in error


SELF_PARENT = """\
  own:
    rule: "orders > 1"
    parent: own
"""
PARENT_CYCLE = """\
  a:
    rule: "orders > 1"
    parent: b
  b:
    rule: "orders > 2"
    parent: a
"""
MIXED_CYCLE = """\
  a:
    rule: "in_segment('b')"
  b:
    rule: "orders > 2"
    parent: a
"""
READS_OWN_GROUP = """\
  a:
    rule: "orders > 1 and not in_segment('a')"
    group: lifecycle
"""
READS_FELLOW = """\
  a:
    rule: "in_segment('vip') and orders > 1"
    group: lifecycle
"""
NESTS_IN_FELLOW = """\
  a:
    rule: "orders > 1"
    group: lifecycle
    parent: vip
"""


@pytest.mark.parametrize(
    ("text", "key", "says"),
    [
        (SELF_PARENT, "segments.own", "segment 'own' is its own parent"),
        (PARENT_CYCLE, "segments.a", "segments read each other in a cycle: a → b → a"),
        (MIXED_CYCLE, "segments.a", "segments read each other in a cycle: a → b → a"),
        (READS_OWN_GROUP, "segments.a.rule", "depends on itself: a → a in segment 'a'"),
        (READS_FELLOW, "segments.a", "segment 'a' reads 'vip' of its own exclusive group"),
        (NESTS_IN_FELLOW, "segments.a", "segment 'a' nests in 'vip' of its own exclusive group"),
    ],
)
def test_segments_no_plan_can_order_are_config_errors(
    folder: Path, text: str, key: str, says: str
) -> None:
    line = _add(folder, "segments", text)
    [error] = _errors(folder)
    if key.endswith(".rule"):  # the rule checker's, at the in_segment that reads itself
        at = text.splitlines()[1].index("in_segment") + 1
        assert error.startswith(f"{line + 1}:{at} {key} segment 'a' {says}"), error
    else:
        assert error.startswith(f"{line}:3 {key} {says}"), error
