"""Property test of next_transition.

No time-relative leaf changes before the instant it returns, and at that instant one does.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from segmint.rules import Expr, compile_python, next_transition
from segmint.rules.timing import RECHECK, time_leaves

from .conftest import SCHEMA  # type: ignore[import-not-found]
from .test_agreement import AS_OF, profiles, rules  # type: ignore[import-not-found]


@settings(max_examples=100, deadline=None)
@given(rule=rules(), person=profiles(), fractions=st.lists(st.floats(0, 1), max_size=5))
def test_leaves_hold_until_the_transition(rule: Expr, person: Any, fractions: list[float]) -> None:
    row = dict(person.traits)
    leaves = [compile_python(leaf, schema=SCHEMA) for leaf in time_leaves(rule)]
    found = next_transition(rule, row, AS_OF, schema=SCHEMA)
    now = [leaf(row, AS_OF) for leaf in leaves]
    horizon = found if found is not None else AS_OF + timedelta(days=30)
    for fraction in fractions:
        instant = AS_OF + (horizon - AS_OF) * fraction
        if instant < horizon:
            assert [leaf(row, instant) for leaf in leaves] == now
    if found is not None:
        assert found > AS_OF
        if found - AS_OF != RECHECK:  # a leaf not linear in time is only looked at again
            assert [leaf(row, found) for leaf in leaves] != now


def test_a_dynamic_number_written_as_text_moves_with_time() -> None:
    """Found by the property above: ``d1 + days_since(t1) between n1 and n2`` with ``d1``
    the text '-3' (a dynamic trait). The evaluator reads it as the number -3; the linear
    forms took the text for no number, so the flip at ``<= -2`` was never scheduled."""
    from datetime import UTC, datetime

    from segmint.rules import parse

    rule = parse("d1 + days_since(t1) between n1 and n2")
    row = {"n1": None, "n2": -2, "d1": "-3", "t1": datetime(2024, 5, 1, 12, tzinfo=UTC)}
    (leaf,) = [compile_python(leaf, schema=SCHEMA) for leaf in time_leaves(rule)]
    found = next_transition(rule, row, AS_OF, schema=SCHEMA)
    assert found is not None and found > AS_OF
    assert leaf(row, found) != leaf(row, AS_OF)
    assert leaf(row, found - timedelta(microseconds=1)) == leaf(row, AS_OF)
