"""Cheaper equivalents of a rule: clauses another one implies, repeats, chains of ``=``.

:func:`simplify` rewrites a rule bottom-up and says what it changed. Every rewrite keeps the
rule's value on every row, NULL included (three-valued logic, :mod:`segmint.rules.semantics`):

- a repeated clause of an ``and``/``or`` is dropped (``x and x`` is ``x``, NULL too);
- of two bounds on one trait in an ``and`` the weaker goes: ``a > 5 and a > 3`` is
  ``a > 5`` (both NULL when ``a`` is NULL; otherwise ``a > 5`` implies ``a > 3``); in an
  ``or`` the stronger goes: ``a > 5 or a > 3`` is ``a > 3``;
- ``x = 'a' or x = 'b'`` (and an ``x in (…)`` beside them) is one ``x in ('a', 'b')``;
- ``not (a > 5)`` is ``a <= 5`` (a comparison with NULL is NULL, and so is its negation).

Only bounds against number literals and equalities against literals of one trait are
merged; anything else is left as written. ``segmint segments lint`` reports the findings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from segmint.rules.ast import And, Compare, Expr, InList, Literal, Not, Or, TraitRef
from segmint.rules.lowering import transform

_NEGATED = {"=": "!=", "!=": "=", "<": ">=", "<=": ">", ">": "<=", ">=": "<"}
_LOWER = (">", ">=")  # a lower bound on the trait
_UPPER = ("<", "<=")


@dataclass(frozen=True)
class Simplification:
    """One rewrite: what was written, what does the same, and why.

    Attributes:
        kind: ``repeated``, ``implied``, ``in_list`` or ``negation``.
        before: The clauses as written.
        after: Their cheaper equivalent.
        reason: Why they are equivalent, in words.
    """

    kind: str
    before: str
    after: str
    reason: str


def simplify(expr: Expr) -> tuple[Expr, tuple[Simplification, ...]]:
    """Return a rule equivalent to ``expr`` (NULL included) and the rewrites made."""
    found: list[Simplification] = []

    def visit(node: Expr) -> Expr:
        if isinstance(node, And | Or):
            return _junction(node, found.append)
        if isinstance(node, Not) and isinstance(node.operand, Compare):
            inner = node.operand
            flipped = Compare(_NEGATED[inner.op], inner.left, inner.right)  # type: ignore[arg-type]
            why = "a negated comparison is the opposite comparison"
            found.append(Simplification("negation", str(node), str(flipped), why))
            return flipped
        return node

    return transform(expr, visit), tuple(found)


def _junction(node: And | Or, note: Callable[[Simplification], None]) -> Expr:
    ops = _unique(node, note)
    ops = _bounds(ops, isinstance(node, And), note)
    if isinstance(node, Or):
        ops = _in_lists(ops, note)
    if len(ops) == 1:
        return ops[0]
    return type(node)(tuple(ops))


def _unique(node: And | Or, note: Callable[[Simplification], None]) -> list[Expr]:
    seen: dict[str, Expr] = {}
    for op in node.operands:
        text = str(op)
        if text in seen:
            word = "and" if isinstance(node, And) else "or"
            note(Simplification("repeated", f"{text} {word} {text}", text, "a clause repeated"))
        else:
            seen[text] = op
    return list(seen.values())


def _bound(op: Expr) -> tuple[str, str, float] | None:
    """(trait, "lower" | "upper", value) of ``trait op number``, else None."""
    if not (isinstance(op, Compare) and isinstance(op.left, TraitRef)):
        return None
    if not isinstance(op.right, Literal) or isinstance(op.right.value, bool):
        return None
    if not isinstance(op.right.value, int | float):
        return None
    side = "lower" if op.op in _LOWER else "upper" if op.op in _UPPER else None
    return None if side is None else (op.left.name, side, float(op.right.value))


def _stronger(a: Compare, b: Compare, side: str) -> bool:
    """Whether bound ``a`` implies bound ``b`` (same trait, same side)."""
    va, vb = float(a.right.value), float(b.right.value)  # type: ignore[attr-defined]
    if va != vb:
        return va > vb if side == "lower" else va < vb
    return a.op in (">", "<") or b.op in (">=", "<=")  # strict implies non-strict


def _bounds(
    ops: list[Expr], conjunction: bool, note: Callable[[Simplification], None]
) -> list[Expr]:
    kept: dict[tuple[str, str], int] = {}  # (trait, side) -> index in out
    out: list[Expr | None] = []
    for op in ops:
        bound = _bound(op)
        if bound is None:
            out.append(op)
            continue
        key = bound[:2]
        if key not in kept:
            kept[key] = len(out)
            out.append(op)
            continue
        index = kept[key]
        held = out[index]
        assert isinstance(held, Compare) and isinstance(op, Compare)
        a_implies_b = _stronger(held, op, key[1])
        # in an ``and`` the stronger bound is kept, in an ``or`` the weaker
        keep, drop = (held, op) if a_implies_b == conjunction else (op, held)
        word = "and" if conjunction else "or"
        reason = f"{drop if conjunction else keep} follows from {keep if conjunction else drop}"
        note(Simplification("implied", f"{held} {word} {op}", str(keep), reason))
        out[index] = keep
    return [o for o in out if o is not None]


def _in_lists(ops: list[Expr], note: Callable[[Simplification], None]) -> list[Expr]:
    """Merge ``t = lit`` and ``t in (…)`` operands of an ``or`` per trait."""
    groups: dict[str, list[int]] = {}
    for index, op in enumerate(ops):
        name = _equality_trait(op)
        if name is not None:
            groups.setdefault(name, []).append(index)
    out: list[Expr | None] = list(ops)
    for name, indexes in groups.items():
        if len(indexes) < 2:
            continue
        items: dict[Expr, None] = {}
        for index in indexes:
            op = ops[index]
            values = op.items if isinstance(op, InList) else (op.right,)  # type: ignore[attr-defined]
            items.update(dict.fromkeys(values))
        merged = InList(TraitRef(name), tuple(items))
        before = " or ".join(str(ops[i]) for i in indexes)
        note(Simplification("in_list", before, str(merged), "one list test instead of several"))
        out[indexes[0]] = merged
        for index in indexes[1:]:
            out[index] = None
    return [o for o in out if o is not None]


def _equality_trait(op: Expr) -> str | None:
    if isinstance(op, Compare) and op.op == "=" and isinstance(op.left, TraitRef):
        return (
            op.left.name if isinstance(op.right, Literal) and op.right.value is not None else None
        )
    if isinstance(op, InList) and not op.negated and isinstance(op.operand, TraitRef):
        return op.operand.name if all(isinstance(i, Literal) for i in op.items) else None
    return None
