"""The Python compiler: a rule becomes one Python function, generated and compiled once.

A visitor with one method per node type emits a Python expression for each node, children
first; the whole rule becomes the body of ``def rule(row, as_of)``. Values enter the code
only as bound constants (``_c0``, ``_c1``, …) or as ``repr`` of numbers and names, never as
rule text. Evaluation then does no parsing, no dispatch on node type and no per-node call,
which keeps it close to a hand-written function. NULL is ``None``; the meaning of every node
is :mod:`segmint.rules.semantics`.
"""

# ruff: noqa: D102 -- visit_<Node> methods mean what the node's own docstring says.

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from segmint.rules import ast as A
from segmint.rules.checker import infer, meeting_type
from segmint.rules.lowering import lower_events
from segmint.rules.schema import COERCIBLE, RuleType, TraitSchema
from segmint.rules.semantics import (
    SEGMENTS_KEY,
    between,
    in_list,
    like,
    like_regex,
    not_between,
    not_in_list,
    plain_like,
    to_boolean,
    to_number,
    to_text,
)

Row = Mapping[str, Any]
Evaluator = Callable[[Row, datetime], Any]
Getter = Callable[[str], Callable[[Row], Any]]
"""Maps a trait name to a function reading that trait's value from a row."""

_CONVERT: dict[str, Callable[[Any], Any]] = {
    "number": to_number, "string": to_text, "boolean": to_boolean,
}  # fmt: skip
_PY_OP = {"=": "==", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


def compile_python(
    expr: A.Expr,
    *,
    schema: TraitSchema | None = None,
    getter: Getter | None = None,
    dynamic_as: RuleType = "boolean",
) -> Evaluator:
    """Compile a rule into a function ``(row, as_of) -> bool | None``.

    Args:
        expr: The rule (event conditions are lowered to implicit traits first).
        schema: Trait types; names typed ``dynamic`` are coerced as the semantics say.
            Without a schema, values are taken to have the types the rule uses.
        getter: Maps a trait name to a reader of that value from a row; the default reads
            ``row.get(name)``. A row may be a profile's traits or one event's properties.
        dynamic_as: What a ``dynamic`` root is coerced to: a condition by default; a part
            of a larger expression compiled alone passes the type its place reads it as
            (``number`` in arithmetic).

    Returns:
        For a rule, a function returning True, False or None (NULL). Segment membership
        is read from ``row["__segments__"]`` (a collection of segment names). For a
        non-boolean expression (a derived trait), the function returns its value.
    """
    lowered, aggregates = lower_events(expr)
    implicit = {agg.name: _implicit_type(agg.func) for agg in aggregates}
    base = schema or TraitSchema()
    full = TraitSchema({**base.types, **implicit}, base.segments, base.default, base.profile)
    return PythonCompiler(full, getter).function(lowered, dynamic_as)


def _implicit_type(func: str) -> RuleType:
    return "number" if func == "count" else "timestamp"


_LEAVES = (A.Compare, A.InList, A.ListContains, A.Between, A.Like, A.StringMatch, A.Within)


def nullable(node: A.Expr) -> bool:
    """False for nodes that are never NULL (so generated code skips their NULL test)."""
    if isinstance(node, A.Literal):
        return node.value is None
    if isinstance(node, A.Now | A.Interval | A.IsNull | A.InSegment):
        return False
    if isinstance(node, A.Arithmetic) and node.op != "/":
        return nullable(node.left) or nullable(node.right)
    return True


class PythonCompiler:
    """Emits one Python expression per node; :meth:`function` compiles the whole rule."""

    def __init__(self, schema: TraitSchema, getter: Getter | None) -> None:
        self.schema = schema
        self.getter = getter
        self.namespace: dict[str, Any] = {"__builtins__": {}}
        self.temps = 0
        self.reads: dict[str, str] = {}
        self.shared: set[str] = set()
        self.guards: dict[str, tuple[list[tuple[str, str]], list[str], str]] = {}
        self._capture: list[tuple[list[tuple[str, str]], str | None]] | None = None

    def function(self, node: A.Expr, dynamic_as: RuleType = "boolean") -> Evaluator:
        """Compile ``node`` into ``rule(row, as_of)``; a dynamic root is a ``dynamic_as``."""
        names = [n.name for n in A.walk(node) if isinstance(n, A.TraitRef)]
        self.shared = {n for n in names if names.count(n) > 1}
        body = self.typed(node, dynamic_as)
        # A trait read more than once is read once, up front, into a local; others inline.
        reads = "".join(f"    {local} = {read}\n" for read, local in self.reads.items())
        source = f"def rule(row, as_of):\n    _get = row.get\n{reads}    return {body}\n"
        exec(compile(source, "<rule>", "exec"), self.namespace)  # noqa: S102 (generated here)
        result: Evaluator = self.namespace["rule"]
        return result

    def const(self, value: Any) -> str:
        """Bind ``value`` to a fresh constant name and return the name."""
        name = f"_c{len(self.namespace)}"
        self.namespace[name] = value
        return name

    def temp(self) -> str:
        """A fresh local variable name."""
        self.temps += 1
        return f"_t{self.temps}"

    def visit(self, node: A.Expr) -> str:
        """The Python expression of ``node`` (children first)."""
        result: str = getattr(self, f"visit_{type(node).__name__}")(node)
        return result

    def typed(self, node: A.Expr, target: RuleType | None) -> str:
        """The expression of ``node``, coerced to ``target`` if it is dynamic."""
        code = self.visit(node)
        if target in COERCIBLE and infer(node, self.schema) == "dynamic":
            return f"{self.const(_CONVERT[target or ''])}({code})"
        return code

    def guarded(
        self,
        parts: list[tuple[A.Expr, str]] | list[tuple[A.Expr | None, str]],
        make: Callable[[list[str]], str],
        *,
        total: bool = True,
    ) -> str:
        """``None`` if a nullable part is NULL, else ``make(values)``.

        ``total``: ``make`` is never NULL once the parts are not (False for helpers such as
        ``in`` with expressions in the list, which may still answer NULL).

        Nullable parts are evaluated once into temporaries; parts that are never NULL are
        pure (literals, ``now()``, intervals, ``is null``, ``in_segment``) and used inline.
        """
        names: list[str] = []
        tests: list[str] = []
        temps: list[tuple[str, str]] = []
        for node, code in parts:
            if node is None:
                inner_temps, inner_tests, inner_result = self.guards[code]
                temps.extend(inner_temps)
                tests.extend(inner_tests)
                names.append(f"({inner_result})")
                continue
            if not nullable(node):
                names.append(code)
                continue
            if code.isidentifier():  # a local already holding the value
                names.append(code)
                temps.append((code, ""))
                tests.append(f"{code} is None")
                continue
            name = self.temp()
            names.append(name)
            temps.append((name, code))
            tests.append(f"({name} := {code}) is None")
        result = make(names)
        if self._capture is not None:
            self._capture.append((temps, result if total else None))
        code = f"(None if {' or '.join(tests)} else {result})" if tests else f"({result})"
        if total and tests:
            self.guards[code] = (temps, tests, result)
        return code

    def absorbed(self, parts: list[tuple[A.Expr, str]]) -> list[tuple[A.Expr | None, str]]:
        """Open up parts whose code is itself a guarded expression (node None marks them).

        Their NULL tests join the caller's and their result is used directly, so the
        caller must use each value once (comparisons do).
        """
        return [(None if code in self.guards else node, code) for node, code in parts]

    def visit_Literal(self, node: A.Literal) -> str:
        value = node.value
        if value is None or isinstance(value, bool | int):
            return repr(value)
        if isinstance(value, float) and value == value and abs(value) != float("inf"):
            return repr(value)
        if isinstance(value, datetime) and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return self.const(value)

    def visit_TraitRef(self, node: A.TraitRef) -> str:
        if self.getter is not None:
            read = f"{self.const(self.getter(node.name))}(row)"
        else:
            read = f"_get({node.name!r})"
        if node.name not in self.shared:
            return read
        return self.reads.setdefault(read, f"_r{len(self.reads)}")

    def visit_Now(self, node: A.Now) -> str:
        return "as_of"

    def visit_Interval(self, node: A.Interval) -> str:
        return self.const(node.duration)

    def visit_Arithmetic(self, node: A.Arithmetic) -> str:
        target: RuleType | None = "number" if infer(node, self.schema) == "number" else None
        parts = [
            (node.left, self.typed(node.left, target)),
            (node.right, self.typed(node.right, target)),
        ]
        if node.op == "/":
            # Not total: a division by zero is NULL even when both operands are not, so a
            # comparison must test the quotient itself, not only the operands.
            return self.guarded(
                parts, lambda v: f"None if {v[1]} == 0 else {v[0]} / {v[1]}", total=False
            )
        return self.guarded(parts, lambda v: f"{v[0]} {node.op} {v[1]}")

    def visit_And(self, node: A.And) -> str:
        return self._connective(node.operands, stop="False", other="True")

    def visit_Or(self, node: A.Or) -> str:
        return self._connective(node.operands, stop="True", other="False")

    def _connective(self, operands: tuple[A.Expr, ...], *, stop: str, other: str) -> str:
        # and: FALSE if any is FALSE, else NULL if any is NULL, else TRUE (or: the dual).
        chain: list[str] = []
        unknown: list[str] = []
        for operand in operands:
            inner, flip = (
                (operand.operand, True) if isinstance(operand, A.Not) else (operand, False)
            )
            form = self.leaf_form(inner)
            wanted = ("True" if stop == "False" else "False") if flip else stop
            if form is not None:
                known, result = form
                decides = f"({result})" if wanted == "True" else f"not ({result})"
                chain.append(f"{stop} if {' and '.join([*(k for k, _ in known), decides])} else")
                unknown.extend(u for _, u in known)
                continue
            code = self.typed(inner, "boolean")
            if not nullable(inner):
                chain.append(f"{stop} if {code} is {wanted} else")
                continue
            name = self.temp()
            chain.append(f"{stop} if ({name} := {code}) is {wanted} else")
            unknown.append(f"{name} is None")
        tail = f"None if {' or '.join(unknown)} else {other}" if unknown else other
        return f"({' '.join(chain)} {tail})"

    def leaf_form(self, node: A.Expr) -> tuple[list[tuple[str, str]], str] | None:
        """A NULL-guarded leaf as ``([(assign-and-test-not-None, is-None test)], result)``.

        Inside ``and``/``or`` the leaf is inlined: it decides the connective only when its
        operands are not NULL. Reading ``t1 is None or t2 is None`` later is safe: a later
        temporary is assigned whenever the earlier ones are not None.
        """
        if not isinstance(node, _LEAVES) or (isinstance(node, A.Between) and node.negated):
            return None
        self._capture = []
        try:
            self.visit(node)
            parts, result = self._capture[-1]
        finally:
            self._capture = None
        if result is None:
            return None
        known = [
            (f"({n} := {c}) is not None" if c else f"{n} is not None", f"{n} is None")
            for n, c in parts
        ]
        return known, result

    def visit_Not(self, node: A.Not) -> str:
        code = self.typed(node.operand, "boolean")
        if not nullable(node.operand):
            return f"(not {code})"
        name = self.temp()
        return f"(None if ({name} := {code}) is None else not {name})"

    def _compare_parts(self, node: A.Compare) -> list[tuple[A.Expr, str]]:
        meet = meeting_type(infer(node.left, self.schema), infer(node.right, self.schema))
        return [
            (node.left, self.typed(node.left, meet)),
            (node.right, self.typed(node.right, meet)),
        ]

    def visit_Compare(self, node: A.Compare) -> str:
        parts = self.absorbed(self._compare_parts(node))
        return self.guarded(parts, lambda v: f"{v[0]} {_PY_OP[node.op]} {v[1]}")

    def visit_InList(self, node: A.InList) -> str:
        meet = infer(node.operand, self.schema)
        for item in node.items:
            meet = meeting_type(meet, infer(item, self.schema))
        operand = (node.operand, self.typed(node.operand, meet))
        word = "not in" if node.negated else "in"
        if all(isinstance(i, A.Literal) and i.value is not None for i in node.items):
            values = frozenset(i.value for i in node.items)  # type: ignore[attr-defined]
            return self.guarded([operand], lambda v: f"{v[0]} {word} {self.const(values)}")
        items = ", ".join(self.typed(i, meet) for i in node.items)
        helper = self.const(not_in_list if node.negated else in_list)
        return self.guarded([operand], lambda v: f"{helper}({v[0]}, ({items},))", total=False)

    def visit_ListContains(self, node: A.ListContains) -> str:
        parts = [
            (node.item, self.typed(node.item, "string")),
            (node.container, self.visit(node.container)),
        ]
        word = "not in" if node.negated else "in"
        return self.guarded(parts, lambda v: f"{v[0]} {word} {v[1]}")

    def visit_Between(self, node: A.Between) -> str:
        meet = meeting_type(infer(node.operand, self.schema), infer(node.low, self.schema))
        meet = meeting_type(meet, infer(node.high, self.schema))
        value = (node.operand, self.typed(node.operand, meet))
        low, high = (node.low, self.typed(node.low, meet)), (node.high, self.typed(node.high, meet))
        if not nullable(node.low) and not nullable(node.high):
            test = "not {1} <= {0} <= {2}" if node.negated else "{1} <= {0} <= {2}"
            return self.guarded([value, low, high], lambda v: test.format(*v))
        helper = self.const(not_between if node.negated else between)
        return self.guarded(
            [value], lambda v: f"{helper}({v[0]}, {low[1]}, {high[1]})", total=False
        )

    def visit_IsNull(self, node: A.IsNull) -> str:
        if isinstance(node.operand, A.Literal):
            return repr((node.operand.value is None) != node.negated)
        code = self.visit(node.operand)
        if not any(isinstance(n, A.TraitRef) for n in A.walk(node.operand)):
            # Python folds constant arithmetic into a literal, and `literal is None` is a
            # SyntaxWarning; equality with None gives the same answer for such values.
            return f"({code} {'!=' if node.negated else '=='} None)"
        return f"({code} is {'not ' if node.negated else ''}None)"

    def visit_Like(self, node: A.Like) -> str:
        ci, pattern = node.case_insensitive, node.pattern
        operand = (node.operand, self.typed(node.operand, "string"))
        neg = "not " if node.negated else ""
        if isinstance(pattern, A.Literal) and isinstance(pattern.value, str):
            lower = ".lower()" if ci else ""
            plain = plain_like(pattern.value.lower() if ci else pattern.value)
            if plain is not None:
                kind, part = plain
                fixed = self.const(part)
                test = _PLAIN_TESTS[kind]
                return self.guarded([operand], lambda v: neg + test.format(v[0] + lower, fixed))
            match = self.const(like_regex(pattern.value, ci).fullmatch)
            return self.guarded([operand], lambda v: f"{neg}({match}({v[0]}{lower}) is not None)")
        helper = self.const(like)
        parts = [operand, (pattern, self.typed(pattern, "string"))]
        return self.guarded(parts, lambda v: f"{neg}{helper}({v[0]}, {v[1]}, {ci})")

    def visit_StringMatch(self, node: A.StringMatch) -> str:
        ci, needle = node.case_insensitive, node.needle
        constant = isinstance(needle, A.Literal) and isinstance(needle.value, str)
        if constant and ci:
            # A constant needle is lower-cased once, here, not at every evaluation.
            needle = A.Literal(needle.value.lower())  # type: ignore[attr-defined]
        parts = [
            (node.operand, self.typed(node.operand, "string")),
            (needle, self.typed(needle, "string")),
        ]
        lower = ".lower()" if ci else ""
        needle_lower = "" if constant else lower
        test = {"contains": "{1} in {0}", "starts_with": "{0}.startswith({1})"}.get(
            node.func, "{0}.endswith({1})"
        )
        return self.guarded(parts, lambda v: test.format(v[0] + lower, v[1] + needle_lower))

    def visit_Within(self, node: A.Within) -> str:
        duration = self.const(node.duration)
        parts = [(node.operand, self.visit(node.operand))]
        return self.guarded(parts, lambda v: f"as_of - {duration} < {v[0]} <= as_of")

    def visit_DaysSince(self, node: A.DaysSince) -> str:
        parts = [(node.operand, self.visit(node.operand))]
        return self.guarded(parts, lambda v: f"(as_of - {v[0]}).total_seconds() / 86400")

    def visit_InSegment(self, node: A.InSegment) -> str:
        return f"({node.segment!r} in (_get({SEGMENTS_KEY!r}) or ()))"


_PLAIN_TESTS = {
    "=": "({0} == {1})",
    "prefix": "{0}.startswith({1})",
    "suffix": "{0}.endswith({1})",
    "infix": "({1} in {0})",
}
