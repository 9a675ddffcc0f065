"""Trait specifications: every trait, whatever its origin, normalised into one shape.

A :class:`TraitSpec` is what both evaluators (the batch SQL compiler and the incremental
engine) read. Specs come from four places: the built-ins every profile has, the workspace's
``traits:`` section (identify, computed, derived), and the implicit aggregates that
``performed(...)``/``last_performed(...)`` in rules lower to (:class:`EventAggregate`).

An identify trait is the ``last`` value of ``traits.<name>`` over identify events; a
built-in is an aggregate over events of every type. So one aggregate machinery serves all
event-based traits, and derived traits are expressions evaluated over the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from segmint.common import format_duration
from segmint.config.model import TraitDef, TraitType
from segmint.rules.ast import Expr
from segmint.rules.lowering import EVENTS_TARGET, TIMESTAMP_TARGET, EventAggregate
from segmint.traits.coerce import ValueKind

TraitKind = Literal["builtin", "identify", "computed", "implicit", "derived", "model"]
Scope = Literal["track", "identify", "score", "all"]
"""Which events an aggregate reads: track, identify or score events, or every event but scores."""

BUILTINS: tuple[tuple[str, str, str], ...] = (
    ("first_seen_at", "first", TIMESTAMP_TARGET),
    ("last_seen_at", "last", TIMESTAMP_TARGET),
    ("event_count", "count", EVENTS_TARGET),
)
"""Built-in traits: (name, aggregate, target) over every event of the profile."""

KIND_OF_TYPE: dict[str, ValueKind] = {
    "string": "text",
    "number": "number",
    "boolean": "boolean",
    "timestamp": "timestamp",
    "list": "list",
}
"""The coercion (:mod:`segmint.traits.coerce`) applied to a value of a declared type."""


@dataclass(frozen=True)
class TraitSpec:
    """One trait, normalised for the evaluators.

    Attributes:
        name: The trait name (a column of ``profile_traits``).
        kind: builtin, identify, computed, implicit (lowered from a rule) or derived.
        type: The value type, declared or inferred.
        func: The aggregate (``count`` … ``exists``); ``last`` for identify traits;
            ``expr`` for derived traits.
        scope: Which events the aggregate reads.
        event: The event name filter (None: every event of the scope).
        target: ``events``, ``timestamp``, ``properties.<path>`` or ``traits.<name>``.
        where: The event filter, a rule over event properties.
        within: The window, or None for all time.
        value_kind: The coercion applied to the target's value (None for ``events`` and
            ``timestamp`` targets).
        default: The value when an identify trait was never set.
        pii: Marks personal data (a label today: see ``segmint.config.model.TraitDef``).
        expr: The expression of a derived trait.
        description: Free text.
    """

    name: str
    kind: TraitKind
    type: TraitType
    func: str
    scope: Scope = "track"
    event: str | None = None
    target: str = EVENTS_TARGET
    where: Expr | None = None
    within: timedelta | None = None
    value_kind: ValueKind | None = None
    default: Any = None
    pii: bool = False
    expr: Expr | None = None
    description: str | None = None

    @property
    def path(self) -> tuple[str, ...]:
        """The JSON path inside ``properties``/``traits`` (empty for other targets)."""
        head, _, rest = self.target.partition(".")
        return tuple(rest.split(".")) if head in ("properties", "traits") and rest else ()

    @property
    def column(self) -> str:
        """The events column the target reads: ``properties``, ``traits`` or ``timestamp``."""
        return self.target.partition(".")[0]

    @property
    def is_aggregate(self) -> bool:
        """True for every trait computed from events (all but derived ones)."""
        return self.kind != "derived"

    @property
    def definition(self) -> str:
        """A one-line description of how the trait is computed, for listings."""
        if self.kind == "derived":
            return f"expr: {self.expr}"
        if self.kind == "model":
            return f"from model {self.event} ({self.target.partition('.')[2]})"
        if self.kind == "identify":
            default = "" if self.default is None else f", default {self.default!r}"
            return f"from identify{default}"
        text = f"{self.func}: {self.target}"
        if self.event is not None:
            text += f", event: {self.event}"
        if self.where is not None:
            text += f", where: {self.where}"
        if self.within is not None:
            text += f", within: {format_duration(self.within)}"
        return text


def builtin_specs() -> list[TraitSpec]:
    """The built-in traits every profile has."""
    return [
        TraitSpec(name, "builtin", "timestamp" if target != EVENTS_TARGET else "number", func,
                  scope="all", target=target)
        for name, func, target in BUILTINS
    ]  # fmt: skip


def identify_spec(name: str, trait: TraitDef) -> TraitSpec:
    """The spec of a trait read from identify calls."""
    kind = trait.type or "string"
    return TraitSpec(
        name,
        "identify",
        kind,
        "last",
        scope="identify",
        target=f"traits.{name}",
        value_kind=KIND_OF_TYPE[kind],
        default=trait.default,
        pii=trait.pii,
        description=trait.description,
    )


def model_spec(name: str, model: str, output: str) -> TraitSpec:
    """The spec of a trait a model writes: the latest score event of ``model`` for ``output``.

    Scores arrive as events of type :data:`segmint.events.SCORE_TYPE` named after the model,
    whose ``traits`` map each output to its value; so a score is folded, batch and real time,
    exactly like an identify trait.
    """
    return TraitSpec(
        name, "model", "number", "last", scope="score", event=model, target=f"traits.{output}",
        value_kind="number", description=f"{output} of model {model}",
    )  # fmt: skip


def implicit_spec(agg: EventAggregate) -> TraitSpec:
    """The spec of an implicit trait lowered from a rule's event condition."""
    from segmint.traits.aggregates import result_type

    kind, value_kind = result_type(agg.name, agg.func, agg.target, None)
    return TraitSpec(
        agg.name, "implicit", kind, agg.func, event=agg.event, target=agg.target,
        where=agg.where, within=agg.within, value_kind=value_kind,
    )  # fmt: skip
