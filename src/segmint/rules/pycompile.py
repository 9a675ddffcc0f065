"""The Python compiler: a rule becomes a tree of closures, built once.

Evaluation calls the closures with ``(row, as_of)``: no parsing and no dispatch on node type
happen then. The meaning of every node, NULL included, is :mod:`segmint.rules.semantics`.
"""

# ruff: noqa: D102 -- visit_<Node> methods mean what the node's own docstring says.

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from segmint.rules import ast as A
from segmint.rules.checker import infer, meeting_type
from segmint.rules.lowering import lower_events
from segmint.rules.schema import COERCIBLE, RuleType, TraitSchema
from segmint.rules.semantics import SEGMENTS_KEY, like, like_regex, to_boolean, to_number, to_text

Row = Mapping[str, Any]
Evaluator = Callable[[Row, datetime], Any]
Getter = Callable[[str], Callable[[Row], Any]]
"""Maps a trait name to a function reading that trait's value from a row."""

_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq, "!=": operator.ne, "<": operator.lt,
    "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}  # fmt: skip
_ARITH: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add, "-": operator.sub, "*": operator.mul,
}  # fmt: skip
_CONVERT: dict[str, Callable[[Any], Any]] = {
    "number": to_number,
    "string": to_text,
    "boolean": to_boolean,
}


def compile_python(
    expr: A.Expr, *, schema: TraitSchema | None = None, getter: Getter | None = None
) -> Evaluator:
    """Compile a rule into a closure ``(row, as_of) -> bool | None``.

    Args:
        expr: The rule (event conditions are lowered to implicit traits first).
        schema: Trait types; names typed ``dynamic`` are coerced as the semantics say.
            Without a schema, values are taken to have the types the rule uses.
        getter: Maps a trait name to a reader of that value from a row; the default reads
            ``row.get(name)``. A row may be a profile's traits or one event's properties.

    Returns:
        For a rule, a function returning True, False or None (NULL). Segment membership
        is read from ``row["__segments__"]`` (a collection of segment names). For a
        non-boolean expression (a derived trait), the function returns its value.
    """
    lowered, aggregates = lower_events(expr)
    implicit = {agg.name: _implicit_type(agg.func) for agg in aggregates}
    base = schema or TraitSchema()
    full = TraitSchema({**base.types, **implicit}, base.segments, base.default, base.profile)
    # A dynamic value standing alone is a condition (to boolean), as it is under and/or/not.
    return PythonCompiler(full, getter).typed(lowered, "boolean")


def _implicit_type(func: str) -> RuleType:
    return "number" if func == "count" else "timestamp"


class PythonCompiler:
    """One visit method per node type; each returns the node's closure."""

    def __init__(self, schema: TraitSchema, getter: Getter | None) -> None:
        self.schema = schema
        self.getter = getter

    def visit(self, node: A.Expr) -> Evaluator:
        """Compile ``node`` (children first)."""
        result: Evaluator = getattr(self, f"visit_{type(node).__name__}")(node)
        return result

    def typed(self, node: A.Expr, target: RuleType | None) -> Evaluator:
        """Compile ``node``, coercing it to ``target`` if it is dynamic."""
        fn = self.visit(node)
        if target in COERCIBLE and infer(node, self.schema) == "dynamic":
            convert = _CONVERT[target or ""]
            return lambda row, as_of: convert(fn(row, as_of))
        return fn

    def visit_Literal(self, node: A.Literal) -> Evaluator:
        value = node.value
        if isinstance(value, datetime) and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return lambda row, as_of: value

    def visit_TraitRef(self, node: A.TraitRef) -> Evaluator:
        name = node.name
        if self.getter is not None:
            read = self.getter(name)
            return lambda row, as_of: read(row)
        return lambda row, as_of: row.get(name)

    def visit_Now(self, node: A.Now) -> Evaluator:
        return lambda row, as_of: as_of

    def visit_Interval(self, node: A.Interval) -> Evaluator:
        duration = node.duration
        return lambda row, as_of: duration

    def visit_Arithmetic(self, node: A.Arithmetic) -> Evaluator:
        numeric = infer(node, self.schema) == "number"
        target: RuleType | None = "number" if numeric else None
        left, right = self.typed(node.left, target), self.typed(node.right, target)
        if node.op == "/":
            return _divide(left, right)
        op = _ARITH[node.op]

        def arithmetic(row: Row, as_of: datetime) -> Any:
            a = left(row, as_of)
            if a is None:
                return None
            b = right(row, as_of)
            return None if b is None else op(a, b)

        return arithmetic

    def _conditions(self, operands: tuple[A.Expr, ...]) -> list[Evaluator]:
        return [self.typed(o, "boolean") for o in operands]

    def visit_And(self, node: A.And) -> Evaluator:
        fns = self._conditions(node.operands)

        def and_(row: Row, as_of: datetime) -> bool | None:
            unknown = False
            for fn in fns:
                value = fn(row, as_of)
                if value is None:
                    unknown = True
                elif not value:
                    return False
            return None if unknown else True

        return and_

    def visit_Or(self, node: A.Or) -> Evaluator:
        fns = self._conditions(node.operands)

        def or_(row: Row, as_of: datetime) -> bool | None:
            unknown = False
            for fn in fns:
                value = fn(row, as_of)
                if value is None:
                    unknown = True
                elif value:
                    return True
            return None if unknown else False

        return or_

    def visit_Not(self, node: A.Not) -> Evaluator:
        return _negate(self.typed(node.operand, "boolean"))

    def visit_Compare(self, node: A.Compare) -> Evaluator:
        meet = meeting_type(infer(node.left, self.schema), infer(node.right, self.schema))
        op = _COMPARE[node.op]
        fast = self._compare_ref_literal(node, meet, op)
        if fast is not None:
            return fast
        left, right = self.typed(node.left, meet), self.typed(node.right, meet)

        def compare(row: Row, as_of: datetime) -> bool | None:
            a = left(row, as_of)
            if a is None:
                return None
            b = right(row, as_of)
            return None if b is None else op(a, b)

        return compare

    def _compare_ref_literal(
        self, node: A.Compare, meet: RuleType | None, op: Callable[[Any, Any], bool]
    ) -> Evaluator | None:
        """The common ``trait op constant`` leaf as a single closure."""
        left, right = node.left, node.right
        if not isinstance(left, A.TraitRef) or not isinstance(right, A.Literal):
            return None
        if self.getter is not None or right.value is None or isinstance(right.value, datetime):
            return None
        name, constant = left.name, right.value
        if meet in COERCIBLE and self.schema.type_of(name) == "dynamic":
            convert = _CONVERT[meet or ""]

            def coerced(row: Row, as_of: datetime) -> bool | None:
                value = convert(row.get(name))
                return None if value is None else op(value, constant)

            return coerced

        def direct(row: Row, as_of: datetime) -> bool | None:
            value = row.get(name)
            return None if value is None else op(value, constant)

        return direct

    def visit_InList(self, node: A.InList) -> Evaluator:
        meet = infer(node.operand, self.schema)
        for item in node.items:
            meet = meeting_type(meet, infer(item, self.schema))
        operand = self.typed(node.operand, meet)
        items = [self.typed(i, meet) for i in node.items]

        def in_list(row: Row, as_of: datetime) -> bool | None:
            value = operand(row, as_of)
            if value is None:
                return None
            unknown = False
            for item in items:
                candidate = item(row, as_of)
                if candidate is None:
                    unknown = True
                elif candidate == value:
                    return True
            return None if unknown else False

        return _negate(in_list) if node.negated else in_list

    def visit_ListContains(self, node: A.ListContains) -> Evaluator:
        item, container = self.typed(node.item, "string"), self.visit(node.container)

        def contains(row: Row, as_of: datetime) -> bool | None:
            value, values = item(row, as_of), container(row, as_of)
            if value is None or values is None:
                return None
            return value in values

        return _negate(contains) if node.negated else contains

    def visit_Between(self, node: A.Between) -> Evaluator:
        meet = meeting_type(infer(node.operand, self.schema), infer(node.low, self.schema))
        meet = meeting_type(meet, infer(node.high, self.schema))
        operand = self.typed(node.operand, meet)
        low, high = self.typed(node.low, meet), self.typed(node.high, meet)

        def between(row: Row, as_of: datetime) -> bool | None:
            value = operand(row, as_of)
            if value is None:
                return None
            lo, hi = low(row, as_of), high(row, as_of)
            above = None if lo is None else value >= lo
            below = None if hi is None else value <= hi
            if above is False or below is False:
                return False
            return None if above is None or below is None else True

        return _negate(between) if node.negated else between

    def visit_IsNull(self, node: A.IsNull) -> Evaluator:
        operand = self.visit(node.operand)
        if node.negated:
            return lambda row, as_of: operand(row, as_of) is not None
        return lambda row, as_of: operand(row, as_of) is None

    def visit_Like(self, node: A.Like) -> Evaluator:
        operand = self.typed(node.operand, "string")
        ci = node.case_insensitive
        pattern = node.pattern
        if isinstance(pattern, A.Literal) and isinstance(pattern.value, str):
            regex = like_regex(pattern.value, ci)

            def like_constant(row: Row, as_of: datetime) -> bool | None:
                value = operand(row, as_of)
                if value is None:
                    return None
                return regex.fullmatch(value.lower() if ci else value) is not None

            result: Evaluator = like_constant
        else:
            result = _binary_text(
                operand, self.typed(pattern, "string"), lambda v, p: like(v, p, ci)
            )
        return _negate(result) if node.negated else result

    def visit_StringMatch(self, node: A.StringMatch) -> Evaluator:
        operand, needle = self.typed(node.operand, "string"), self.typed(node.needle, "string")
        test: Callable[[str, str], bool] = {
            "contains": lambda v, n: n in v,
            "starts_with": str.startswith,
            "ends_with": str.endswith,
        }[node.func]
        if node.case_insensitive:
            plain = test
            test = lambda v, n: plain(v.lower(), n.lower())  # noqa: E731
        return _binary_text(operand, needle, test)

    def visit_Within(self, node: A.Within) -> Evaluator:
        operand, duration = self.visit(node.operand), node.duration

        def within(row: Row, as_of: datetime) -> bool | None:
            value = operand(row, as_of)
            if value is None:
                return None
            return bool(as_of - duration <= value <= as_of)

        return within

    def visit_DaysSince(self, node: A.DaysSince) -> Evaluator:
        operand = self.visit(node.operand)

        def days_since(row: Row, as_of: datetime) -> float | None:
            value = operand(row, as_of)
            return None if value is None else (as_of - value).total_seconds() / 86400

        return days_since

    def visit_InSegment(self, node: A.InSegment) -> Evaluator:
        name = node.segment

        def in_segment(row: Row, as_of: datetime) -> bool:
            segments = row.get(SEGMENTS_KEY)
            return segments is not None and name in segments

        return in_segment


def _negate(fn: Evaluator) -> Evaluator:
    def negate(row: Row, as_of: datetime) -> bool | None:
        value = fn(row, as_of)
        return None if value is None else not value

    return negate


def _divide(left: Evaluator, right: Evaluator) -> Evaluator:
    def divide(row: Row, as_of: datetime) -> float | None:
        a = left(row, as_of)
        if a is None:
            return None
        b = right(row, as_of)
        return None if b is None or b == 0 else a / b

    return divide


def _binary_text(left: Evaluator, right: Evaluator, test: Callable[[str, str], bool]) -> Evaluator:
    def text(row: Row, as_of: datetime) -> bool | None:
        a = left(row, as_of)
        if a is None:
            return None
        b = right(row, as_of)
        return None if b is None else test(a, b)

    return text
