"""The trait catalog: every trait of a workspace, checked, typed and in evaluation order.

:func:`build_catalog` turns ``WorkspaceDef.traits`` (plus the implicit aggregates segment
rules lower to) into a :class:`TraitCatalog`. Filters and derived expressions are parsed
and type-checked with the rule language; derived traits are ordered so each comes after
the traits it reads, and a cycle is refused. Any problem raises a
:class:`~segmint.traits.errors.TraitDefinitionError`; nothing is built from a broken
definition.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property

from segmint.config.model import TraitDef, TraitType, WorkspaceDef
from segmint.rules.ast import Expr, TraitRef, walk
from segmint.rules.checker import check
from segmint.rules.deps import dependencies
from segmint.rules.errors import RuleError
from segmint.rules.lowering import EventAggregate, lower_events
from segmint.rules.parser import parse
from segmint.rules.schema import RuleType, TraitSchema
from segmint.rules.workspace import reserved_trait_name
from segmint.traits.aggregates import computed_spec
from segmint.traits.errors import TraitCycleError, TraitDefinitionError
from segmint.traits.model import (
    TraitSpec,
    builtin_specs,
    identify_spec,
    implicit_spec,
    model_spec,
)


@dataclass(frozen=True)
class TraitCatalog:
    """Every trait, aggregates first, then derived traits in dependency order.

    Attributes:
        specs: The traits in evaluation order.
    """

    specs: tuple[TraitSpec, ...]
    _index: dict[str, TraitSpec] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._index.update((s.name, s) for s in self.specs)

    def __iter__(self) -> Iterator[TraitSpec]:
        return iter(self.specs)

    def __len__(self) -> int:
        return len(self.specs)

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def __getitem__(self, name: str) -> TraitSpec:
        return self._index[name]

    @property
    def names(self) -> tuple[str, ...]:
        """Trait names in evaluation order."""
        return tuple(s.name for s in self.specs)

    @property
    def aggregates(self) -> tuple[TraitSpec, ...]:
        """The traits computed from events."""
        return tuple(s for s in self.specs if s.is_aggregate)

    @property
    def derived(self) -> tuple[TraitSpec, ...]:
        """The derived traits, each after the traits it reads."""
        return tuple(s for s in self.specs if not s.is_aggregate)

    def types(self) -> dict[str, str]:
        """Trait name → type, for the rule type checker and :mod:`segmint.profiles`."""
        return {s.name: s.type for s in self.specs}

    @cached_property
    def time_dependent(self) -> frozenset[str]:
        """Derived traits whose value moves with ``as_of`` alone, with no new event.

        That is, they use ``days_since``, ``now()`` or ``within``, directly or through
        another derived trait. Their changes are neither events nor window expiries
        (``next_expiry``): a rule that reads one must be treated as time-dependent by
        whoever schedules re-evaluation.
        """
        found: set[str] = set()
        for spec in self.derived:
            assert spec.expr is not None  # noqa: S101 (derived specs have an expression)
            deps = dependencies(spec.expr)
            if deps.time_leaves or found & set(deps.traits):
                found.add(spec.name)
        return frozenset(found)

    @cached_property
    def fingerprint(self) -> str:
        """A digest of every definition: incremental state is only valid for the same one."""
        text = "\n".join(f"{s.name}\x1f{s.kind}\x1f{s.type}\x1f{s.definition}" for s in self)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def build_catalog(
    definition: WorkspaceDef | Mapping[str, TraitDef], extra: Iterable[EventAggregate] = ()
) -> TraitCatalog:
    """Build the catalog of a workspace's traits.

    Args:
        definition: The workspace (or just its ``traits`` mapping).
        extra: Implicit aggregates (from :func:`segmint.rules.lower_events`) to compute too.

    Raises:
        TraitDefinitionError: For the first broken definition (TraitCycleError for a cycle).
    """
    traits = definition.traits if isinstance(definition, WorkspaceDef) else definition
    for name in traits:
        why = reserved_trait_name(name)
        if why is not None:
            raise TraitDefinitionError(name, None, why, hint="choose another name")
    specs = {s.name: s for s in builtin_specs()}
    derived: dict[str, TraitDef] = {}
    for name, trait in traits.items():
        if trait.kind == "identify":
            specs[name] = identify_spec(name, trait)
        elif trait.kind == "computed":
            specs[name] = computed_spec(name, trait, _filter(name, trait.where))
        else:
            derived[name] = trait
    if isinstance(definition, WorkspaceDef):
        for name, (model, output) in definition.model_traits().items():
            if name in specs or name in derived:
                raise TraitDefinitionError(name, None, f"model {model!r} writes trait {name!r}, "
                                           "which is already defined", hint="rename one of them "
                                           f"(models.{model}.traits.{output})")  # fmt: skip
            specs[name] = model_spec(name, model, output)
    parsed = {name: _expression(name, t.expr or "") for name, t in derived.items()}
    implicit = list(extra)
    for name in parsed:
        parsed[name], lowered = lower_events(parsed[name])
        implicit.extend(lowered)
    for agg in implicit:
        specs.setdefault(agg.name, implicit_spec(agg))
    base = tuple(specs.values())
    ordered = [_derived_spec(n, derived[n], parsed[n], specs) for n in _order(parsed, specs)]
    return TraitCatalog(base + tuple(ordered))


def _filter(name: str, text: str | None) -> Expr | None:
    if text is None:
        return None
    expr = _rule(name, "where", text)
    _checked(name, "where", expr, TraitSchema.event_properties(), "boolean")
    return expr


def _expression(name: str, text: str) -> Expr:
    return _rule(name, "expr", text)


def _rule(name: str, key: str, text: str) -> Expr:
    try:
        return parse(text)
    except RuleError as exc:
        raise _wrap(name, key, exc) from None


def _checked(
    name: str, key: str, expr: Expr, schema: TraitSchema, expect: RuleType | None
) -> RuleType:
    try:
        return check(expr, schema, expect=expect)
    except RuleError as exc:
        raise _wrap(name, key, exc) from None


def _wrap(name: str, key: str, exc: RuleError) -> TraitDefinitionError:
    error = TraitDefinitionError(name, key, exc.message, hint=exc.hint)
    error.rule_error = exc
    return error


def _order(parsed: dict[str, Expr], known: Mapping[str, TraitSpec]) -> list[str]:
    """Derived trait names, each after the derived traits it reads; refuse cycles."""
    reads = {n: {r.name for r in walk(e) if isinstance(r, TraitRef)} & parsed.keys()
             for n, e in parsed.items()}  # fmt: skip
    done: list[str] = []
    visiting: list[str] = []

    def visit(name: str) -> None:
        if name in done:
            return
        if name in visiting:
            cycle = " -> ".join([*visiting[visiting.index(name) :], name])
            raise TraitCycleError(
                name,
                "expr",
                f"derived traits form a cycle: {cycle}",
                hint="derive one of them from event traits instead",
            )
        visiting.append(name)
        for dep in sorted(reads[name]):
            visit(dep)
        visiting.pop()
        done.append(name)

    for name in parsed:
        if name in known:
            raise TraitDefinitionError(
                name, None, f"'{name}' is a built-in trait name", hint="choose another name"
            )
        visit(name)
    return done


def _derived_spec(name: str, trait: TraitDef, expr: Expr, specs: dict[str, TraitSpec]) -> TraitSpec:
    schema = TraitSchema({n: s.type for n, s in specs.items()})
    found = _checked(name, "expr", expr, schema, None)
    scalar: dict[str, TraitType] = {
        "number": "number", "string": "string", "boolean": "boolean", "timestamp": "timestamp",
    }  # fmt: skip
    kind = trait.type or scalar.get(found)  # (a lookup types on every mypy; `in` narrows on 2.x)
    if kind is None:
        raise TraitDefinitionError(
            name,
            "type",
            f"the expression's type is {found}",
            hint="declare 'type:' for this derived trait",
        )
    spec = TraitSpec(name, "derived", kind, "expr", expr=expr, pii=trait.pii,
                     description=trait.description)  # fmt: skip
    specs[name] = spec
    return spec
