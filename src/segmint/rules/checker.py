"""Type checking of rules against a :class:`TraitSchema`.

A visitor with one method per node; each returns the node's type, or None when the type
is unknown (a name the schema does not know, or an operand that already failed). Errors are
collected, so one pass reports every problem, each at its position.
"""

# ruff: noqa: D102 -- visit_<Node> methods mean what the node's own docstring says.

from __future__ import annotations

from segmint.common import did_you_mean
from segmint.rules import ast as A
from segmint.rules.errors import RuleError, RuleNameError, RuleTypeError
from segmint.rules.schema import COERCIBLE, RuleType, TraitSchema

Type = RuleType | None
_ORDERED = frozenset({"number", "string", "timestamp", "boolean", "dynamic"})


def check(expr: A.Expr, schema: TraitSchema, *, expect: RuleType | None = "boolean") -> RuleType:
    """Type-check ``expr`` and return its type.

    Args:
        expr: The rule.
        schema: The traits and segments it may use.
        expect: The type the whole rule must have (``boolean`` for segment rules and
            filters); None to accept any type (derived traits).

    Raises:
        RuleError: The first problem (a RuleNameError, RuleTypeError or RuleSyntaxError).
    """
    found, errors = diagnose(expr, schema, expect=expect)
    if errors:
        raise errors[0]
    return found or "null"


def diagnose(
    expr: A.Expr, schema: TraitSchema, *, expect: RuleType | None = "boolean"
) -> tuple[Type, list[RuleError]]:
    """Type-check ``expr``, returning its type and every problem found (not raising)."""
    checker = Checker(schema, strict=True)
    found = checker.visit(expr)
    if expect is not None and found is not None and not _fits(found, expect):
        checker.fail(RuleTypeError, f"a rule must be {expect}, this is {found}", expr)
    return found, checker.errors


def infer(expr: A.Expr, schema: TraitSchema | None) -> Type:
    """The type of ``expr`` without reporting problems (unknown names have type None)."""
    return Checker(schema or TraitSchema(), strict=False).visit(expr)


def _fits(found: RuleType, wanted: RuleType) -> bool:
    return found == wanted or found == "null" or (found == "dynamic" and wanted in COERCIBLE)


def comparable(left: Type, right: Type) -> bool:
    """True if values of the two types may be compared (None: unknown, accepted)."""
    if left is None or right is None or "null" in (left, right) or left == right:
        return left not in ("interval", "list") and right not in ("interval", "list")
    if "dynamic" in (left, right):
        other = right if left == "dynamic" else left
        return other in COERCIBLE
    return False


def meeting_type(left: Type, right: Type) -> Type:
    """The type two compared operands are brought to (a dynamic side takes the other's)."""
    if left == "dynamic" and right == "dynamic":
        return "string"
    if left in (None, "null", "dynamic"):
        return right if right not in (None, "null") else left
    return left


class Checker:
    """Computes types; in strict mode records every problem in :attr:`errors`."""

    def __init__(self, schema: TraitSchema, *, strict: bool) -> None:
        self.schema = schema
        self.strict = strict
        self.errors: list[RuleError] = []

    def visit(self, node: A.Expr) -> Type:
        """The type of ``node``, checking its children first."""
        method = getattr(self, f"visit_{type(node).__name__}")
        result: Type = method(node)
        return result

    def fail(
        self, kind: type[RuleError], message: str, node: A.Expr, hint: str | None = None
    ) -> None:
        """Record a problem at ``node`` (strict mode only)."""
        if self.strict:
            self.errors.append(kind(message, node.span, hint))

    def _profile_only(self, node: A.Expr, what: str) -> None:
        if not self.schema.profile:
            self.fail(RuleTypeError, f"{what} cannot be used in a filter over one event", node)

    def _want(self, node: A.Expr, allowed: frozenset[str], role: str) -> Type:
        found = self.visit(node)
        if found is not None and found != "null" and found not in allowed:
            wanted = " or ".join(sorted(allowed - {"dynamic"}))
            self.fail(RuleTypeError, f"{role} must be {wanted}, not {found}", node)
            return None
        return found

    def visit_Literal(self, node: A.Literal) -> Type:
        value = node.value
        if value is None:
            return "null"
        if isinstance(value, bool):
            return "boolean"
        if isinstance(value, str):
            return "string"
        if isinstance(value, int | float):
            return "number"
        return "timestamp"

    def visit_TraitRef(self, node: A.TraitRef) -> Type:
        found = self.schema.type_of(node.name)
        if found is None and self.strict:
            hint = did_you_mean(node.name, self.schema.types)
            what = "trait" if self.schema.profile else "property"
            self.fail(RuleNameError, f"unknown {what} '{node.name}'", node, hint)
        return found

    def visit_Now(self, node: A.Now) -> Type:
        self._profile_only(node, "now()")
        return "timestamp"

    def visit_Interval(self, node: A.Interval) -> Type:
        return "interval"

    def visit_Arithmetic(self, node: A.Arithmetic) -> Type:
        left, right = self.visit(node.left), self.visit(node.right)
        numeric = {"number", "dynamic", "null", None}
        if left in numeric and right in numeric:
            return "number"
        if node.op in "+-" and left in ("timestamp", None) and right == "interval":
            return "timestamp"
        if node.op == "+" and left == "interval" and right in ("timestamp", None):
            return "timestamp"
        self.fail(
            RuleTypeError,
            f"cannot apply '{node.op}' to {left or 'unknown'} and {right or 'unknown'}",
            node,
            "add or subtract an interval to a timestamp; use days_since() for ages"
            if "timestamp" in (left, right)
            else None,
        )
        return None

    def _logical(self, operands: tuple[A.Expr, ...]) -> Type:
        for operand in operands:
            self._want(operand, frozenset({"boolean", "dynamic"}), "a condition")
        return "boolean"

    def visit_And(self, node: A.And) -> Type:
        return self._logical(node.operands)

    def visit_Or(self, node: A.Or) -> Type:
        return self._logical(node.operands)

    def visit_Not(self, node: A.Not) -> Type:
        return self._logical((node.operand,))

    def _compare(self, node: A.Expr, left: Type, right: Type, ordered: bool) -> None:
        if not comparable(left, right):
            hint = None
            if {left, right} == {"timestamp", "number"}:
                hint = "compare a timestamp with now() - interval '30 days', or use days_since()"
            self.fail(RuleTypeError, f"cannot compare {left} with {right}", node, hint)
        elif ordered and meeting_type(left, right) not in (*_ORDERED, None, "null"):
            self.fail(RuleTypeError, f"{meeting_type(left, right)} values have no order", node)

    def visit_Compare(self, node: A.Compare) -> Type:
        left, right = self.visit(node.left), self.visit(node.right)
        self._compare(node, left, right, node.op not in ("=", "!="))
        return "boolean"

    def visit_InList(self, node: A.InList) -> Type:
        operand = self.visit(node.operand)
        for item in node.items:
            self._compare(item, operand, self.visit(item), False)
        return "boolean"

    def visit_ListContains(self, node: A.ListContains) -> Type:
        self._want(node.item, frozenset({"string", "dynamic"}), "the value looked for")
        self._want(node.container, frozenset({"list"}), "the right side of 'in'")
        return "boolean"

    def visit_Between(self, node: A.Between) -> Type:
        operand = self.visit(node.operand)
        for bound in (node.low, node.high):
            self._compare(bound, operand, self.visit(bound), True)
        return "boolean"

    def visit_IsNull(self, node: A.IsNull) -> Type:
        self.visit(node.operand)
        return "boolean"

    def _text(self, *nodes: A.Expr) -> Type:
        for node in nodes:
            self._want(node, frozenset({"string", "dynamic"}), "text matching")
        return "boolean"

    def visit_Like(self, node: A.Like) -> Type:
        return self._text(node.operand, node.pattern)

    def visit_StringMatch(self, node: A.StringMatch) -> Type:
        return self._text(node.operand, node.needle)

    def visit_Within(self, node: A.Within) -> Type:
        self._profile_only(node, "within()")
        self._want(node.operand, frozenset({"timestamp"}), "within()'s first argument")
        return "boolean"

    def visit_DaysSince(self, node: A.DaysSince) -> Type:
        self._profile_only(node, "days_since()")
        self._want(node.operand, frozenset({"timestamp"}), "days_since()'s argument")
        return "number"

    def visit_Performed(self, node: A.Performed) -> Type:
        self._profile_only(node, "performed()")
        if node.where is not None:
            inner = Checker(TraitSchema.event_properties(), strict=self.strict)
            found = inner.visit(node.where)
            if found is not None and not _fits(found, "boolean"):
                inner.fail(
                    RuleTypeError, f"a where filter must be boolean, not {found}", node.where
                )
            self.errors.extend(inner.errors)
        return "boolean"

    def visit_LastPerformed(self, node: A.LastPerformed) -> Type:
        self._profile_only(node, "last_performed()")
        return "timestamp"

    def visit_InSegment(self, node: A.InSegment) -> Type:
        self._profile_only(node, "in_segment()")
        known = self.schema.segments
        if known is not None and node.segment not in known:
            hint = did_you_mean(node.segment, known)
            self.fail(RuleNameError, f"unknown segment '{node.segment}'", node, hint)
        return "boolean"
