"""The JSON form of rules: a tree of ``{"type": …, fields…}`` mapping 1:1 onto the AST.

``to_json(from_json(doc)) == doc`` for canonical documents (every field present), and
``from_json(to_json(expr)) == expr``. :func:`json_schema` publishes the shape for UI builders.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import Any

from segmint.clock import parse_instant
from segmint.common import did_you_mean, format_duration, parse_duration
from segmint.rules import ast as A
from segmint.rules.errors import RuleSyntaxError

TYPE_NAMES: dict[type[A.Expr], str] = {
    A.Literal: "literal", A.TraitRef: "trait", A.Now: "now", A.Interval: "interval",
    A.Arithmetic: "arithmetic", A.And: "and", A.Or: "or", A.Not: "not",
    A.Compare: "compare", A.InList: "in_list", A.ListContains: "list_contains",
    A.Between: "between", A.IsNull: "is_null", A.Like: "like",
    A.StringMatch: "string_match", A.Within: "within", A.DaysSince: "days_since",
    A.Performed: "performed", A.LastPerformed: "last_performed", A.InSegment: "in_segment",
}  # fmt: skip
NODES_BY_NAME = {name: cls for cls, name in TYPE_NAMES.items()}
_EXPR_FIELDS = frozenset(
    {"operand", "left", "right", "low", "high", "pattern", "needle", "item", "container"}
    | {"where"}
)
_DURATION_FIELDS = frozenset({"duration", "within"})


def fields_of(cls: type[A.Expr]) -> list[str]:
    """The JSON field names of a node type, in declaration order (``span`` excluded)."""
    return [f.name for f in dataclasses.fields(cls) if f.name != "span"]


def to_json(expr: A.Expr) -> dict[str, Any]:
    """The JSON form of ``expr`` (every field present; absent optionals are null)."""
    out: dict[str, Any] = {"type": TYPE_NAMES[type(expr)]}
    if isinstance(expr, A.Literal) and isinstance(expr.value, datetime):
        return out | {"value": A.format_instant(expr.value), "value_type": "timestamp"}
    for name in fields_of(type(expr)):
        out[name] = _field_to_json(getattr(expr, name))
    return out


def _field_to_json(value: Any) -> Any:
    if isinstance(value, A.Expr):
        return to_json(value)
    if isinstance(value, tuple):
        return [to_json(v) for v in value]
    if isinstance(value, timedelta):
        return format_duration(value)
    return value


def from_json(doc: Any, path: str = "$") -> A.Expr:
    """Build the AST from its JSON form.

    Raises:
        RuleSyntaxError: Naming the JSON path of the first problem.
    """
    if not isinstance(doc, dict):
        raise RuleSyntaxError(f"{path}: expected an object with a 'type'")
    kind = doc.get("type")
    cls = NODES_BY_NAME.get(kind) if isinstance(kind, str) else None
    if cls is None:
        hint = did_you_mean(str(kind), NODES_BY_NAME)
        raise RuleSyntaxError(f"{path}.type: unknown node type {kind!r}", hint=hint)
    if cls is A.Literal:
        return _literal(doc, path)
    names = fields_of(cls)
    extra = set(doc) - {"type", *names}
    if extra:
        key = sorted(extra)[0]
        raise RuleSyntaxError(f"{path}.{key}: unknown field", hint=did_you_mean(key, names))
    values = {n: _field_from_json(cls, n, doc[n], f"{path}.{n}") for n in names if n in doc}
    try:
        return cls(**values)
    except TypeError as exc:
        raise RuleSyntaxError(f"{path}: {exc}") from None


def _literal(doc: dict[str, Any], path: str) -> A.Literal:
    value = doc.get("value")
    if doc.get("value_type") == "timestamp":
        try:
            return A.Literal(parse_instant(str(value)))
        except ValueError:
            raise RuleSyntaxError(f"{path}.value: not an ISO 8601 instant") from None
    if value is not None and not isinstance(value, str | int | float | bool):
        raise RuleSyntaxError(f"{path}.value: a literal is a string, number, boolean or null")
    return A.Literal(value)


def _field_from_json(cls: type[A.Expr], name: str, value: Any, path: str) -> Any:
    if name in _EXPR_FIELDS:
        return None if value is None else from_json(value, path)
    if name in ("operands", "items"):
        if not isinstance(value, list) or (name == "operands" and len(value) < 2):
            raise RuleSyntaxError(
                f"{path}: expected a list of at least {2 if name == 'operands' else 1}"
            )
        return tuple(from_json(v, f"{path}[{i}]") for i, v in enumerate(value))
    if name in _DURATION_FIELDS:
        if value is None:
            return None
        try:
            return parse_duration(str(value))
        except ValueError as exc:
            raise RuleSyntaxError(f"{path}: {exc}") from None
    _check_scalar(cls, name, value, path)
    return value


_ENUMS: dict[str, dict[type[A.Expr], tuple[str, ...]]] = {
    "op": {A.Compare: ("=", "!=", "<", "<=", ">", ">="), A.Arithmetic: ("+", "-", "*", "/")},
    "func": {A.StringMatch: ("contains", "starts_with", "ends_with")},
}


def _check_scalar(cls: type[A.Expr], name: str, value: Any, path: str) -> None:
    allowed = _ENUMS.get(name, {}).get(cls)
    if allowed is not None and value not in allowed:
        raise RuleSyntaxError(f"{path}: expected one of {', '.join(allowed)}")
    if name in ("negated", "case_insensitive") and not isinstance(value, bool):
        raise RuleSyntaxError(f"{path}: expected true or false")
    if name in ("name", "event", "segment") and not isinstance(value, str):
        raise RuleSyntaxError(f"{path}: expected a string")
    if name == "at_least" and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
        raise RuleSyntaxError(f"{path}: expected a whole number of events (0 or more)")
