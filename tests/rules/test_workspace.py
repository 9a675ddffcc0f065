from __future__ import annotations

from pathlib import Path

import pytest

from segmint.config.errors import ConfigErrors
from segmint.config.loader import load_workspace_def
from segmint.rules import check_workspace, workspace_schema
from segmint.workspace import Workspace

EXAMPLE = Path(__file__).parents[2] / "src/segmint/config/example/segmint.yaml"

BROKEN = """\
name: broken
traits:
  orders: {count: events, event: Order Completed}
  avg_order_value: {avg: properties.total, event: Order Completed}
  last_purchase_at: {last: timestamp, event: Order Completed}
  big: {count: events, event: Order Completed, where: "total >"}
  loop_a: {expr: "loop_b + 1"}
  loop_b: {expr: "loop_a * 2"}
  wrong: {expr: "orders > 1", type: number}
  cat: {max: properties.category, type: string}
segments:
  high_value:
    rule: "avg_order_valu > 200"
  quoted: {rule: 'cat = ''it''''s'' and ordrs > 1'}
  plain:
    rule: orders > 1 and last_purchase_at > 3
  block:
    rule: |
      orders > 1
        and in_segment('hig_value')
  a: {rule: "in_segment('b') and orders > 1"}
  b: {rule: "orders > 2 or in_segment('a')"}
  self_ref: {rule: "in_segment('self_ref')"}
"""


def errors_of(tmp_path: Path, text: str) -> list[tuple[int, int, str, str | None]]:
    path = tmp_path / "segmint.yaml"
    path.write_text(text)
    problems = check_workspace(load_workspace_def(path), path)
    out = []
    for e in problems:
        assert e.location is not None
        out.append((e.location.line, e.location.column, e.message, e.hint))
    return out


def test_example_workspace_validates() -> None:
    assert check_workspace(load_workspace_def(EXAMPLE), EXAMPLE) == []


def test_schema_types() -> None:
    types = workspace_schema(load_workspace_def(EXAMPLE)).types
    assert types["orders"] == "number"
    assert types["last_purchase_at"] == "timestamp"
    assert types["favorite_category"] == "string"
    assert types["email_consent"] == "boolean"
    assert types["days_since_purchase"] == "number"
    assert types["first_seen_at"] == "timestamp" and types["event_count"] == "number"


def test_errors_are_located_inside_the_yaml(tmp_path: Path) -> None:
    found = errors_of(tmp_path, BROKEN)
    assert found == [
        (13, 12, "unknown trait 'avg_order_valu' in segment 'high_value'",
         "did you mean 'avg_order_value'?"),
        (14, 41, "unknown trait 'ordrs' in segment 'quoted'", "did you mean 'orders'?"),
        (16, 26, "cannot compare timestamp with number in segment 'plain'",
         "compare a timestamp with now() - interval '30 days', or use days_since()"),
        (20, 13, "unknown segment 'hig_value' in segment 'block'", "did you mean 'high_value'?"),
        (6, 63, "expected a value, found the end of the rule in trait 'big'", None),
        (9, 18, "expression is boolean, but the trait is declared number in trait 'wrong'", None),
        (21, 14, "segment 'a' depends on itself: a → b → a in segment 'a'", None),
        (23, 21, "segment 'self_ref' depends on itself: self_ref → self_ref in segment 'self_ref'",
         None),
        (7, 19, "trait 'loop_a' depends on itself: loop_a → loop_b → loop_a in trait 'loop_a'",
         None),
    ]  # fmt: skip


def test_caret_points_at_the_yaml_text(tmp_path: Path) -> None:
    path = tmp_path / "segmint.yaml"
    path.write_text(BROKEN)
    problems = check_workspace(load_workspace_def(path), path)
    assert (
        problems[0]
        .detailed_message()
        .endswith(
            '  13 |     rule: "avg_order_valu > 200"\n'
            "     |            ^^^^^^^^^^^^^^ did you mean 'avg_order_value'?"
        )
    )


def test_workspace_open_refuses_a_broken_rule(tmp_path: Path) -> None:
    (tmp_path / "segmint.yaml").write_text(BROKEN)
    with pytest.raises(ConfigErrors) as info:
        Workspace.open(tmp_path)
    assert len(info.value.errors) == 9
    assert str(info.value).startswith(f"{tmp_path / 'segmint.yaml'}:13:12: unknown trait")
