"""What each aggregate accepts and returns: targets, value coercions and result types.

=================  ============================  ==================  ===========================
aggregate          target                        value read as       result
=================  ============================  ==================  ===========================
count, exists      ``events``                    —                   number (0) / boolean (false)
sum, avg           ``properties.<p>``            number              number (NULL if no value)
min, max           ``timestamp``                 —                   timestamp
min, max           ``properties.<p>``            number|timestamp    the declared type (number)
first, last        ``timestamp``                 —                   timestamp
first, last        ``properties.<p>``            the declared type   the declared type (string)
distinct_count     ``properties.<p>``            text                number (0)
most_frequent      ``properties.<p>``            text                string (ties: smallest)
=================  ============================  ==================  ===========================

``first``/``last`` order matching events by (timestamp, message_id) and skip events whose
value is NULL under the coercion; ``min``/``max``/``sum``/``avg`` skip NULL values too.
A window ``within: W`` keeps events with ``as_of - W < timestamp <= as_of``.
"""

from __future__ import annotations

import re
from typing import Any

from segmint.common import did_you_mean
from segmint.config.model import AGGREGATES, TraitDef, TraitType
from segmint.rules.lowering import EVENTS_TARGET, TIMESTAMP_TARGET
from segmint.traits.coerce import ValueKind
from segmint.traits.errors import TraitDefinitionError
from segmint.traits.model import KIND_OF_TYPE, TraitSpec

_PATH = re.compile(r"properties(\.[A-Za-z_][A-Za-z0-9_]*)+")
_FIXED: dict[str, TraitType] = {"count": "number", "exists": "boolean"}
_TEXTUAL: dict[str, TraitType] = {"distinct_count": "number", "most_frequent": "string"}
_ALLOWED: dict[str, tuple[TraitType, ...]] = {
    "sum": ("number",),
    "avg": ("number",),
    "min": ("number", "timestamp"),
    "max": ("number", "timestamp"),
    "first": ("string", "number", "boolean", "timestamp"),
    "last": ("string", "number", "boolean", "timestamp"),
}
_DEFAULT: dict[str, TraitType] = {"first": "string", "last": "string"}


def result_type(
    name: str, func: str, target: str, declared: TraitType | None
) -> tuple[TraitType, ValueKind | None]:
    """Check an aggregate's target and return its result type and the value coercion.

    Raises:
        TraitDefinitionError: For an unknown aggregate, a target the aggregate cannot read
            or a declared type the aggregate cannot produce.
    """
    if func not in AGGREGATES:
        hint = did_you_mean(func, AGGREGATES) or f"aggregates are: {', '.join(AGGREGATES)}"
        raise TraitDefinitionError(name, None, f"unknown aggregate '{func}'", hint=hint)
    if func in _FIXED:
        _want_target(name, func, target, EVENTS_TARGET)
        return _declared(name, func, _FIXED[func], declared), None
    if target == TIMESTAMP_TARGET and func in ("min", "max", "first", "last"):
        return _declared(name, func, "timestamp", declared), None
    _want_target(name, func, target, "properties.<name>")
    if func in _TEXTUAL:
        return _declared(name, func, _TEXTUAL[func], declared), "text"
    kind = declared or _DEFAULT.get(func, "number")
    if kind not in _ALLOWED[func]:
        allowed = " or ".join(_ALLOWED[func])
        message = f"'{func}' of a property gives {allowed}, not {kind}"
        raise TraitDefinitionError(name, "type", message, hint=f"use type: {_ALLOWED[func][0]}")
    return kind, KIND_OF_TYPE[kind]


def _want_target(name: str, func: str, target: str, wanted: str) -> None:
    ok = target == wanted if wanted == EVENTS_TARGET else bool(_PATH.fullmatch(target))
    if ok:
        return
    extra = f" or '{TIMESTAMP_TARGET}'" if func in ("min", "max", "first", "last") else ""
    message = f"'{func}' reads '{wanted}'{extra}, not '{target}'"
    hint = f"write {func}: {wanted if wanted == EVENTS_TARGET else 'properties.total'}"
    raise TraitDefinitionError(name, func, message, hint=hint)


def _declared(name: str, func: str, kind: TraitType, declared: TraitType | None) -> TraitType:
    if declared is not None and declared != kind:
        message = f"'{func}' gives a {kind}, but the trait declares type {declared}"
        raise TraitDefinitionError(name, "type", message, hint=f"use type: {kind} or drop it")
    return kind


def computed_spec(name: str, trait: TraitDef, where: Any) -> TraitSpec:
    """The spec of a computed trait declared in the workspace (``where`` already parsed)."""
    func, target = trait.aggregate or ("count", EVENTS_TARGET)
    kind, value_kind = result_type(name, func, target, trait.type)
    if trait.within is not None and trait.within.total_seconds() <= 0:
        raise TraitDefinitionError(name, "within", "a window must be longer than zero")
    return TraitSpec(
        name, "computed", kind, func, event=trait.event, target=target, where=where,
        within=trait.within, value_kind=value_kind, pii=trait.pii,
        description=trait.description,
    )  # fmt: skip
