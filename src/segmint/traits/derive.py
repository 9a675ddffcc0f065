"""Rule-language pieces of traits: ``where`` filters over events and derived expressions.

Both are compiled once with :func:`segmint.rules.pycompile.compile_python`; the filter reads
the event's properties as ``dynamic`` values (coerced by the rule language's rules), the
derived expression reads the row of trait values already computed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from segmint.events import Event
from segmint.rules import Compare, Expr, Literal, TraitRef, compile_python
from segmint.rules.schema import TraitSchema
from segmint.traits.model import TraitSpec

EVENT_FILTER_SCHEMA = TraitSchema.event_properties()


def filter_expr(spec: TraitSpec) -> Expr | None:
    """The ``where`` filter as both compilers get it.

    A filter that is a bare property (``where: "gift"``) is compiled as ``gift = true``: the
    rule language's SQL compiler does not coerce a bare dynamic value to a boolean (its
    Python compiler does), and the two forms mean the same under its semantics.
    """
    where = spec.where
    if isinstance(where, TraitRef):
        return Compare("=", where, Literal(True), span=where.span)
    return where


def compile_filter(spec: TraitSpec) -> Callable[[Event], bool] | None:
    """A predicate on one event for ``spec.where`` (True only when the filter is TRUE)."""
    where = filter_expr(spec)
    if where is None:
        return None
    test = compile_python(where, schema=EVENT_FILTER_SCHEMA)

    def passes(event: Event) -> bool:
        return test(event.properties, event.timestamp) is True

    return passes


def compile_derived(
    spec: TraitSpec, types: Mapping[str, str]
) -> Callable[[Mapping[str, Any], datetime], Any]:
    """The value of a derived trait from the other traits' values (typed by ``types``)."""
    if spec.expr is None:
        raise ValueError(f"trait {spec.name} is not derived")
    return compile_python(spec.expr, schema=TraitSchema(types))  # type: ignore[arg-type]
