"""The JSON Schema of the rule JSON form, published for UI builders (``segmint rules schema``)."""

from __future__ import annotations

from typing import Any

from segmint.rules import ast as A
from segmint.rules.jsonform import TYPE_NAMES, fields_of

_REF = {"$ref": "#/$defs/rule"}
_DURATION = {"type": "string", "description": "A duration such as '30 days', '12h', '2w'."}
_FIELDS: dict[str, dict[str, Any]] = {
    "operands": {"type": "array", "items": _REF, "minItems": 2},
    "items": {"type": "array", "items": _REF, "minItems": 1},
    "negated": {"type": "boolean"},
    "case_insensitive": {"type": "boolean"},
    "name": {"type": "string", "description": "A trait (or, in a filter, property) name."},
    "event": {"type": "string", "description": "An event name."},
    "segment": {"type": "string", "description": "A segment name."},
    "duration": _DURATION,
    "at_least": {"type": "integer", "minimum": 0},
}
_OVERRIDES: dict[tuple[type[A.Expr], str], dict[str, Any]] = {
    (A.Compare, "op"): {"enum": ["=", "!=", "<", "<=", ">", ">="]},
    (A.Arithmetic, "op"): {"enum": ["+", "-", "*", "/"]},
    (A.StringMatch, "func"): {"enum": ["contains", "starts_with", "ends_with"]},
    (A.Performed, "within"): {"anyOf": [_DURATION, {"type": "null"}]},
    (A.Performed, "where"): {
        "anyOf": [_REF, {"type": "null"}],
        "description": "A filter over the event's properties.",
    },
}
_OPTIONAL = frozenset({"negated", "case_insensitive", "at_least", "within", "where"})


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a rule in JSON form."""
    defs: dict[str, Any] = {
        "rule": {"oneOf": [{"$ref": f"#/$defs/{n}"} for n in TYPE_NAMES.values()]}
    }
    for cls, name in TYPE_NAMES.items():
        defs[name] = _node_schema(cls, name)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://segmint.dev/schemas/rule.json",
        "title": "segmint rule",
        "description": "A segment rule or filter as a tree of nodes; see segmint.rules.",
        "$ref": "#/$defs/rule",
        "$defs": defs,
    }


def _node_schema(cls: type[A.Expr], name: str) -> dict[str, Any]:
    if cls is A.Literal:
        return _literal_schema()
    properties: dict[str, Any] = {"type": {"const": name}}
    for field in fields_of(cls):
        properties[field] = _OVERRIDES.get((cls, field)) or _FIELDS.get(field) or _REF
    required = ["type", *(f for f in fields_of(cls) if f not in _OPTIONAL)]
    doc = (cls.__doc__ or "").strip().splitlines()[0]
    return {
        "type": "object",
        "description": doc,
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


def _literal_schema() -> dict[str, Any]:
    scalar = {"type": ["string", "number", "boolean", "null"]}
    return {
        "type": "object",
        "description": "A constant; timestamps carry value_type 'timestamp' (ISO 8601).",
        "properties": {
            "type": {"const": "literal"},
            "value": scalar,
            "value_type": {"const": "timestamp"},
        },
        "required": ["type", "value"],
        "additionalProperties": False,
    }
