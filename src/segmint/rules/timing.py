"""When time alone changes a rule: :func:`next_transition`.

A time-relative leaf (a comparison, ``between`` or ``in`` involving ``now()`` or
``days_since``, and ``within``) is linear in the evaluation instant ``t``: each side is
``(a·t + b) / d`` with integers ``a``, ``b`` and ``d > 0`` (``t`` in microseconds), so the
instant where a comparison can flip is solved exactly, then confirmed by evaluating the leaf
itself around that instant with the Python compiler. Windowed aggregates
(``performed(…, within => …)``) expire by the traits engine's ``next_expiry``, not here.

Each leaf is compiled once (per schema) into a :class:`LeafTimer`: a tree of closures
computing the linear forms from a row, so the real-time engine pays for integer arithmetic
and a few evaluations of the leaf per profile, not for walking the rule.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from segmint.rules import ast as A
from segmint.rules.lowering import lower_events
from segmint.rules.pycompile import compile_python
from segmint.rules.schema import TraitSchema

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DAY_US = 86_400_000_000
RECHECK = timedelta(hours=1)
"""How soon to look again at a leaf that is not linear in time (e.g. days_since squared)."""
Linear = tuple[int, int, int]
"""``(a, b, d)``: the value ``(a·t + b) / d`` at instant ``t`` (µs since the epoch), d > 0."""
LAST_US = (datetime.max.replace(tzinfo=UTC) - EPOCH) // timedelta(microseconds=1)
"""The last instant a datetime can hold, in µs since the epoch: later flips never happen."""
Form = Callable[[Mapping[str, Any], datetime], Linear | None]


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
    for timer in leaf_timers(expr, schema):
        found = timer.next(row, as_of)
        if found is not None and (best is None or found < best):
            best = found
    return best


@functools.lru_cache(maxsize=512)
def time_leaves(expr: A.Expr) -> tuple[A.Expr, ...]:
    """The leaves of ``expr`` (events lowered to traits) that time alone can flip."""
    lowered, _ = lower_events(expr)
    return tuple(dict.fromkeys(_leaves(lowered)))


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


_TIMERS: dict[tuple[A.Expr, int], tuple[TraitSchema | None, tuple[LeafTimer, ...]]] = {}


def leaf_timers(expr: A.Expr, schema: TraitSchema | None = None) -> tuple[LeafTimer, ...]:
    """The compiled timers of ``expr``'s time leaves (cached per rule and schema)."""
    # Keyed by the schema's identity (schemas are long-lived; the stored reference keeps the
    # id from being reused while the entry exists).
    key = (expr, id(schema))
    found = _TIMERS.get(key)
    if found is None:
        if len(_TIMERS) > 4096:
            _TIMERS.clear()
        found = (schema, tuple(LeafTimer(leaf, schema) for leaf in time_leaves(expr)))
        _TIMERS[key] = found
    return found[1]


class LeafTimer:
    """One time leaf, compiled: :meth:`next` says when time alone next flips it.

    Args:
        leaf: A leaf from :func:`time_leaves`.
        schema: The trait types the rule was compiled with.

    Attributes:
        leaf: The leaf.
        traits: The traits the leaf reads (its next flip changes only when they change).
    """

    __slots__ = ("_evaluate", "_sides", "_within", "leaf", "traits")

    def __init__(self, leaf: A.Expr, schema: TraitSchema | None = None) -> None:
        self.leaf = leaf
        self.traits = frozenset(n.name for n in A.walk(leaf) if isinstance(n, A.TraitRef))
        self._evaluate = compile_python(leaf, schema=schema)
        self._within: tuple[Form, int] | None = None
        self._sides: tuple[tuple[Form, Form], ...] = ()
        if isinstance(leaf, A.Within):
            self._within = (_form(leaf.operand, schema), _micros_of(leaf.duration))
        elif isinstance(leaf, A.Compare):
            self._sides = ((_form(leaf.left, schema), _form(leaf.right, schema)),)
        elif isinstance(leaf, A.Between):
            operand = _form(leaf.operand, schema)
            self._sides = ((operand, _form(leaf.low, schema)), (operand, _form(leaf.high, schema)))
        elif isinstance(leaf, A.InList):
            operand = _form(leaf.operand, schema)
            self._sides = tuple((operand, _form(item, schema)) for item in leaf.items)

    def next(self, row: Mapping[str, Any], as_of: datetime) -> datetime | None:
        """The earliest instant after ``as_of`` at which the leaf's value differs, or None."""
        try:
            crossings = self._crossings(row, as_of)
        except NonLinear:
            return as_of + RECHECK
        if not crossings:
            return None
        now_us = _micros(as_of)
        if len(crossings) == 1:  # the usual case: four instants around one crossing, in order
            c = crossings[0]
            candidates = [m for m in (c - 1, c, c + 1, c + 2) if m > now_us]
        else:
            candidates = sorted({c + d for c in crossings for d in (-1, 0, 1, 2) if c + d > now_us})
        if not candidates:
            return None
        evaluate = self._evaluate
        current = evaluate(row, as_of)
        for micros in candidates:
            if micros > LAST_US:  # past year 9999: no instant a datetime can hold, so never
                return None
            instant = EPOCH + timedelta(microseconds=micros)
            if evaluate(row, instant) != current:
                return instant
        return None

    def _crossings(self, row: Mapping[str, Any], as_of: datetime) -> list[int]:
        """Instants (µs, rounded down) where the two sides of a comparison meet."""
        if self._within is not None:
            form, duration = self._within
            linear = form(row, as_of)
            if linear is None or linear[0] != 0:
                return []
            start = linear[1] // linear[2]
            return [start, start + duration]
        found = []
        for left, right in self._sides:
            lf, rf = left(row, as_of), right(row, as_of)
            if lf is None or rf is None:
                continue
            # (a1·t + b1)/d1 = (a2·t + b2)/d2  <=>  (a1·d2 - a2·d1)·t = b2·d1 - b1·d2
            slope = lf[0] * rf[2] - rf[0] * lf[2]
            if slope:
                found.append((rf[1] * lf[2] - lf[1] * rf[2]) // slope)
        return found


def _form(node: A.Expr, schema: TraitSchema | None) -> Form:
    """Compile ``node`` into a function returning its linear form (None when NULL)."""
    if isinstance(node, A.Now):
        return _now_form
    if not _timed(node):  # a constant of a linear form: a dynamic trait read as a number
        evaluate = compile_python(node, schema=schema, dynamic_as="number")
        return lambda row, as_of: _constant(evaluate(row, as_of))
    if isinstance(node, A.DaysSince):
        return _days_since(_form(node.operand, schema))
    if isinstance(node, A.Arithmetic):
        return _arith(node.op, _form(node.left, schema), _form(node.right, schema))
    return _nonlinear


def _now_form(row: Mapping[str, Any], as_of: datetime) -> Linear:
    return (1, 0, 1)


def _nonlinear(row: Mapping[str, Any], as_of: datetime) -> Linear:
    raise NonLinear


def _days_since(inner: Form) -> Form:
    def form(row: Mapping[str, Any], as_of: datetime) -> Linear | None:
        found = inner(row, as_of)
        if found is None:
            return None
        a, b, d = found
        # (t - (a·t + b)/d) / DAY = ((d - a)·t - b) / (d·DAY)
        return d - a, -b, d * DAY_US

    return form


def _arith(op: str, left: Form, right: Form) -> Form:
    def form(row: Mapping[str, Any], as_of: datetime) -> Linear | None:
        lf, rf = left(row, as_of), right(row, as_of)
        if lf is None or rf is None:
            return None
        a1, b1, d1 = lf
        a2, b2, d2 = rf
        if op == "+":
            return a1 * d2 + a2 * d1, b1 * d2 + b2 * d1, d1 * d2
        if op == "-":
            return a1 * d2 - a2 * d1, b1 * d2 - b2 * d1, d1 * d2
        if op == "*" and (a1 == 0 or a2 == 0):
            return a1 * b2 + a2 * b1, b1 * b2, d1 * d2
        if op == "/" and a2 == 0:
            if b2 == 0:
                return None
            # ((a1·t + b1)/d1) / (b2/d2) = (a1·d2·t + b1·d2) / (d1·b2)
            sign = 1 if b2 > 0 else -1
            return sign * a1 * d2, sign * b1 * d2, d1 * b2 * sign
        raise NonLinear

    return form


def _constant(value: Any) -> Linear | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, datetime):
        return 0, _micros(value), 1
    if isinstance(value, timedelta):
        return 0, _micros_of(value), 1
    if isinstance(value, int):
        return 0, value, 1
    if isinstance(value, float | Decimal):
        if not math.isfinite(value):
            return None
        numerator, denominator = value.as_integer_ratio()
        return 0, numerator, denominator
    return None


def _micros(value: datetime) -> int:
    delta = (value if value.tzinfo else value.replace(tzinfo=UTC)) - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _micros_of(value: timedelta) -> int:
    return value // timedelta(microseconds=1)
