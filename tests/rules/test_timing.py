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
