"""Cheaper equivalents of rules: each rewrite keeps the value on every row, NULL included."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segmint.rules import TraitSchema, check, compile_python, parse, simplify

SCHEMA = TraitSchema({"a": "number", "b": "number", "x": "string"})
AS_OF = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("rule", "simpler", "kinds"),
    [
        ("a > 5 and a > 3", "a > 5", ["implied"]),
        ("a > 5 or a > 3", "a > 3", ["implied"]),
        ("a >= 5 and a > 5", "a > 5", ["implied"]),
        ("a < 2 and b > 1 and a <= 1", "a <= 1 and b > 1", ["implied"]),
        ("x = 'v' or x = 'w' or b = 1", "x in ('v', 'w') or b = 1", ["in_list"]),
        ("x in ('v') or x = 'w'", "x in ('v', 'w')", ["in_list"]),
        ("b = 1 and b = 1", "b = 1", ["repeated"]),
        ("not (a > 5)", "a <= 5", ["negation"]),
        ("a > 5 and b > 3", "a > 5 and b > 3", []),
        ("a > 5 and a < 9", "a > 5 and a < 9", []),
        ("x = 'v' and x = 'w'", "x = 'v' and x = 'w'", []),
    ],
)
def test_examples(rule: str, simpler: str, kinds: list[str]) -> None:
    found, steps = simplify(parse(rule))
    assert str(found) == simpler
    assert [s.kind for s in steps] == kinds


OPS = st.sampled_from(["<", "<=", ">", ">=", "=", "!="])
NUMS = st.sampled_from(["0", "1", "1.5", "2", "3"])
LEAF = st.one_of(
    st.builds(lambda t, o, n: f"{t} {o} {n}", st.sampled_from(["a", "b"]), OPS, NUMS),
    st.builds(lambda v: f"x = '{v}'", st.sampled_from(["v", "w"])),
    st.builds(
        lambda v, w: f"x in ('{v}', '{w}')",
        st.sampled_from(["v", "z"]),
        st.sampled_from(["w", "v"]),
    ),
    st.builds(lambda o, n: f"not (a {o} {n})", OPS, NUMS),
)
RULE = st.recursive(
    LEAF,
    lambda inner: st.builds(
        lambda ops, word: "(" + f" {word} ".join(ops) + ")",
        st.lists(inner, min_size=2, max_size=4),
        st.sampled_from(["and", "or"]),
    ),
    max_leaves=8,
)
ROWS = [
    {"a": a, "b": b, "x": x}
    for a in (None, 0, 1, 1.5, 2, 3, 4)
    for b in (None, 1, 2)
    for x in (None, "v", "w", "z")
]


@settings(max_examples=300, deadline=None)
@given(rule=RULE)
def test_simplified_rules_agree_on_every_row(rule: str) -> None:
    expr = parse(rule)
    check(expr, SCHEMA)
    simpler, _ = simplify(expr)
    assert parse(str(simpler)) == simpler  # prints as a valid rule
    before = compile_python(expr, schema=SCHEMA)
    after = compile_python(simpler, schema=SCHEMA)
    for row in ROWS:
        assert before(row, AS_OF) == after(row, AS_OF), (rule, str(simpler), row)
