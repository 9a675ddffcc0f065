"""When time alone changes a rule: :func:`next_transition`.

A time-relative leaf (a comparison, ``between`` or ``in`` involving ``now()`` or
``days_since``, and ``within``) is linear in the evaluation instant ``t``: each side is
``a·t + b`` with exact rational ``a`` and ``b`` (microseconds), so the instant where a
comparison can flip is solved exactly, then confirmed by evaluating the leaf itself around
that instant with the Python compiler. Windowed aggregates (``performed(…, within => …)``)
expire by the traits engine's ``next_expiry``, not here.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any

from segmint.rules import ast as A
from segmint.rules.lowering import lower_events
from segmint.rules.pycompile import Evaluator, compile_python
from segmint.rules.schema import TraitSchema

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DAY_US = 86_400_000_000
RECHECK = timedelta(hours=1)
"""How soon to look again at a leaf that is not linear in time (e.g. days_since squared)."""
Linear = tuple[Fraction, Fraction]


class NonLinear(Exception):
    """A leaf whose value is not linear in time; it is rechecked after :data:`RECHECK`."""


def next_transition(
    expr: A.Expr,
    row: Mapping[str, Any],
    as_of: datetime,
    *,
    schema: TraitSchema | None = None,
) -> datetime | None:
    """The earliest instant after ``as_of`` at which a time-relative leaf could flip.

    Args:
        expr: The rule.
        row: The profile's trait values (as for :func:`compile_python`).
        as_of: The instant the rule was last evaluated at.
        schema: The trait types the rule was compiled with, so dynamic values are coerced
            here exactly as in the rule itself.

    Returns:
        The instant, or None if no leaf can change with time alone for these values.
    """
    best: datetime | None = None
    for leaf in time_leaves(expr):
        found = _leaf_transition(leaf, row, as_of, schema)
        if found is not None and (best is None or found < best):
            best = found
    return best


@functools.lru_cache(maxsize=512)
def time_leaves(expr: A.Expr) -> tuple[A.Expr, ...]:
    """The leaves of ``expr`` (events lowered to traits) that time alone can flip."""
    lowered, _ = lower_events(expr)
    return tuple(_leaves(lowered))


def _leaves(node: A.Expr) -> Iterator[A.Expr]:
    if isinstance(node, A.And | A.Or | A.Not):
        for child in A.children(node):
            yield from _leaves(child)
    elif isinstance(node, A.Within) or (
        isinstance(node, A.Compare | A.Between | A.InList) and _timed(node)
    ):
        yield node


@functools.lru_cache(maxsize=4096)
def _timed(node: A.Expr) -> bool:
    return any(isinstance(n, A.Now | A.DaysSince | A.Within) for n in A.walk(node))


_EVALUATORS: dict[tuple[A.Expr, int], tuple[TraitSchema | None, Evaluator]] = {}


def _evaluator(node: A.Expr, schema: TraitSchema | None) -> Evaluator:
    # Keyed by the schema's identity (schemas are long-lived; the stored reference keeps the
    # id from being reused while the entry exists).
    key = (node, id(schema))
    found = _EVALUATORS.get(key)
    if found is None:
        if len(_EVALUATORS) > 4096:
            _EVALUATORS.clear()
        found = (schema, compile_python(node, schema=schema))
        _EVALUATORS[key] = found
    return found[1]


def _leaf_transition(
    leaf: A.Expr, row: Mapping[str, Any], as_of: datetime, schema: TraitSchema | None
) -> datetime | None:
    try:
        crossings = list(_crossings(leaf, row, as_of, schema))
    except NonLinear:
        return as_of + RECHECK
    evaluate = _evaluator(leaf, schema)
    current = evaluate(row, as_of)
    now_us = _micros(as_of)
    candidates = sorted(
        {int(c) + d for c in crossings for d in (-1, 0, 1, 2)} if crossings else set()
    )
    for micros in candidates:
        if micros > now_us:
            instant = EPOCH + timedelta(microseconds=micros)
            if evaluate(row, instant) != current:
                return instant
    return None


def _crossings(
    leaf: A.Expr, row: Mapping[str, Any], as_of: datetime, schema: TraitSchema | None
) -> Iterator[Fraction]:
    if isinstance(leaf, A.Within):
        form = _linear(leaf.operand, row, as_of, schema)
        if form is not None and form[0] == 0:
            start = form[1]
            yield from (start, start + _micros_of(leaf.duration))
        return
    pairs: list[tuple[A.Expr, A.Expr]] = []
    if isinstance(leaf, A.Compare):
        pairs = [(leaf.left, leaf.right)]
    elif isinstance(leaf, A.Between):
        pairs = [(leaf.operand, leaf.low), (leaf.operand, leaf.high)]
    elif isinstance(leaf, A.InList):
        pairs = [(leaf.operand, item) for item in leaf.items]
    for left, right in pairs:
        a, b = _linear(left, row, as_of, schema), _linear(right, row, as_of, schema)
        if a is not None and b is not None and a[0] != b[0]:
            yield -(a[1] - b[1]) / (a[0] - b[0])


def _linear(
    node: A.Expr, row: Mapping[str, Any], as_of: datetime, schema: TraitSchema | None
) -> Linear | None:
    """``(a, b)`` with value = a·t + b (t in microseconds); None when the value is NULL."""
    if isinstance(node, A.Now):
        return Fraction(1), Fraction(0)
    if not _timed(node):
        return _constant(_evaluator(node, schema)(row, as_of))
    if isinstance(node, A.DaysSince):
        inner = _linear(node.operand, row, as_of, schema)
        if inner is None:
            return None
        return (1 - inner[0]) / DAY_US, -inner[1] / DAY_US
    if isinstance(node, A.Arithmetic):
        return _arith(node, row, as_of, schema)
    raise NonLinear


def _arith(
    node: A.Arithmetic, row: Mapping[str, Any], as_of: datetime, schema: TraitSchema | None
) -> Linear | None:
    left, right = _linear(node.left, row, as_of, schema), _linear(node.right, row, as_of, schema)
    if left is None or right is None:
        return None
    if node.op in "+-":
        sign = 1 if node.op == "+" else -1
        return left[0] + sign * right[0], left[1] + sign * right[1]
    if node.op == "*" and (left[0] == 0 or right[0] == 0):
        scale, form = (left[1], right) if left[0] == 0 else (right[1], left)
        return form[0] * scale, form[1] * scale
    if node.op == "/" and right[0] == 0:
        return None if right[1] == 0 else (left[0] / right[1], left[1] / right[1])
    raise NonLinear


def _constant(value: Any) -> Linear | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, datetime):
        return Fraction(0), Fraction(_micros(value))
    if isinstance(value, timedelta):
        return Fraction(0), Fraction(_micros_of(value))
    if isinstance(value, int | float):
        return Fraction(0), Fraction(value)
    return None


def _micros(value: datetime) -> int:
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    return (aware - EPOCH) // timedelta(microseconds=1)


def _micros_of(value: timedelta) -> int:
    return value // timedelta(microseconds=1)
