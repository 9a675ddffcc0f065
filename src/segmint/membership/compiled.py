"""A workspace's segments compiled once: rules, dependency index, traits, structure.

:class:`CompiledSegments` is what both the batch refresh and the real-time engine read:

- each rule parsed, type-checked against the trait catalog, compiled to a Python closure;
- the trait catalog, extended with the implicit traits of ``performed(...)`` and
  ``last_performed(...)`` in rules, and its incremental :class:`TraitEngine`;
- the dependency index: which units (see :mod:`segmint.membership.structure`) read each
  trait, and which rules can change with time alone;
- for time-dependent rules, the rule with derived traits inlined, so
  :func:`segmint.rules.next_transition` also sees the time inside ``days_since(...)`` of a
  derived trait, and every distinct time leaf of those rules compiled once
  (:class:`segmint.rules.timing.LeafTimer`): a profile's next time transition is the
  earliest next flip of any leaf.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from segmint.config.errors import ConfigError
from segmint.config.model import WorkspaceDef
from segmint.membership.structure import SegmentPlan, SegmentSpec
from segmint.rules import (
    SEGMENTS_KEY,
    Dependencies,
    Expr,
    RuleError,
    TraitRef,
    TraitSchema,
    check,
    compile_python,
    dependencies,
    parse,
)
from segmint.rules.lowering import transform
from segmint.rules.pycompile import Evaluator
from segmint.rules.timing import LeafTimer, time_leaves
from segmint.traits import TraitCatalog, TraitEngine, build_catalog
from segmint.traits.validate import segment_aggregates


@dataclass(frozen=True)
class CompiledSegment:
    """One segment's compiled rule (all None for a group's default segment).

    Attributes:
        spec: The segment.
        expr: The parsed rule.
        deps: What the rule reads.
        evaluate: The rule as a Python closure ``(row, as_of) -> bool | None``.
        timed: The rule with derived traits inlined when time alone can change it, else None.
    """

    spec: SegmentSpec
    expr: Expr | None = None
    deps: Dependencies | None = None
    evaluate: Evaluator | None = None
    timed: Expr | None = None

    @property
    def traits(self) -> frozenset[str]:
        """The traits the rule reads (implicit ones included)."""
        return self.deps.traits if self.deps else frozenset()


class CompiledSegments:
    """Every segment of a workspace, compiled, with the traits they need.

    Args:
        definition: The workspace definition.

    Raises:
        ConfigError: If a rule does not parse or type-check (the message names the segment).
        SegmentStructureError: If the segments cannot be ordered.
    """

    def __init__(self, definition: WorkspaceDef) -> None:
        self.definition = definition
        specs = {n: SegmentSpec.from_def(n, s) for n, s in definition.segments.items()}
        parsed = {n: _parse(n, s.rule) for n, s in specs.items() if s.rule is not None}
        deps = {n: dependencies(e) for n, e in parsed.items()}
        # the same catalog (and so the same state fingerprint) as ``segmint rebuild`` builds
        self.catalog: TraitCatalog = build_catalog(definition, segment_aggregates(definition))
        self.traits = TraitEngine(self.catalog)
        self.schema = TraitSchema(self.catalog.types(), frozenset(specs))  # type: ignore[arg-type]
        self.segments = {n: self._compile(s, parsed.get(n), deps.get(n)) for n, s in specs.items()}
        reads = {n: d.segments for n, d in deps.items()}
        self.plan = SegmentPlan(specs, reads)
        self.readers = self._index()
        self.timed_units = frozenset(
            self.plan.unit_of[n] for n, s in self.segments.items() if s.timed is not None
        )
        self.timed_segments = tuple(s for s in self.segments.values() if s.timed is not None)
        leaves = {
            leaf: None
            for s in self.timed_segments
            if s.timed is not None
            for leaf in time_leaves(s.timed)
        }
        self.timers = tuple(LeafTimer(leaf, self.schema) for leaf in leaves)
        """Every distinct time leaf of every rule, compiled (see :class:`LeafTimer`)."""

    def _compile(
        self, spec: SegmentSpec, expr: Expr | None, deps: Dependencies | None
    ) -> CompiledSegment:
        if expr is None or deps is None:
            return CompiledSegment(spec)
        try:
            check(expr, self.schema, expect="boolean")
        except RuleError as exc:
            raise _config_error(spec.name, exc) from None
        evaluate = compile_python(expr, schema=self.schema)
        inlined = self._inline(expr)
        if not dependencies(inlined).time_leaves:
            return CompiledSegment(spec, expr, deps, evaluate)
        return CompiledSegment(spec, expr, deps, evaluate, inlined)

    def _inline(self, expr: Expr) -> Expr:
        def replace(node: Expr) -> Expr:
            if isinstance(node, TraitRef) and node.name in self.catalog:
                inner = self.catalog[node.name].expr
                if inner is not None:
                    return self._inline(inner)
            return node

        return transform(expr, replace)

    def _index(self) -> dict[str, frozenset[int]]:
        found: dict[str, set[int]] = {}
        for name, seg in self.segments.items():
            for trait in seg.traits:
                found.setdefault(trait, set()).add(self.plan.unit_of[name])
        return {k: frozenset(v) for k, v in found.items()}

    def units_for(self, changed: Set[str]) -> set[int]:
        """The units whose rules read any of the ``changed`` traits."""
        units: set[int] = set()
        for trait in changed:
            units.update(self.readers.get(trait, ()))
        return units

    def members(
        self, row: Mapping[str, Any], as_of: datetime, previous: Set[str], dirty: Set[int]
    ) -> frozenset[str]:
        """Decide the ``dirty`` units for one profile's trait values at ``as_of``."""
        values = dict(row)
        segments = self.segments

        def matches(name: str, members: Set[str]) -> bool:
            values[SEGMENTS_KEY] = members
            evaluate = segments[name].evaluate
            return evaluate is not None and evaluate(values, as_of) is True

        return self.plan.update(matches, previous, dirty)


def _parse(name: str, text: str) -> Expr:
    try:
        return parse(text)
    except RuleError as exc:
        raise _config_error(name, exc) from None


def _config_error(name: str, exc: RuleError) -> ConfigError:
    return ConfigError(
        f"segment '{name}': {exc.message}",
        key_path=f"segments.{name}.rule",
        hint=exc.hint,
    )
