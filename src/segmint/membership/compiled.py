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
  (:class:`segmint.rules.LeafTimer`): a profile's next time transition is the
  earliest next flip of any leaf.

The definitions the stored memberships were decided under are recorded in ``meta``
(:data:`DEFINITIONS_KEY`, :func:`record_definitions`): a real-time engine that starts on a
changed ``segmint.yaml`` compares them (:func:`definition_drift`) to exit the members of
removed segments and to recompute those of added or changed ones.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Set
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any

import orjson

from segmint.config.errors import ConfigError
from segmint.config.model import WorkspaceDef
from segmint.membership.structure import SegmentPlan, SegmentSpec
from segmint.rules import (
    SEGMENTS_KEY,
    Dependencies,
    Evaluator,
    Expr,
    LeafTimer,
    RuleError,
    TraitRef,
    TraitSchema,
    check,
    compile_python,
    dependencies,
    parse,
    time_leaves,
    transform,
)
from segmint.store import Store, read_meta, write_meta
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

    @cached_property
    def sorted_traits(self) -> tuple[str, ...]:
        """:attr:`traits` sorted (a change's cause lists those that changed in this order)."""
        return tuple(sorted(self.traits))


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

    @cached_property
    def fingerprint(self) -> dict[str, Any]:
        """What decides membership, per segment: a digest and whether time alone moves it.

        ``{"traits": <catalog fingerprint>, "segments": {name: [digest, timed]}}``; the digest
        covers the canonical rule, the group, the priority, the default flag and the parent
        (not the tags or the description, which decide nobody's membership).
        """
        segments: dict[str, list[Any]] = {}
        for name, seg in sorted(self.segments.items()):
            spec = seg.spec
            rule = str(seg.expr) if seg.expr is not None else ""
            text = "\x1f".join(
                (rule, spec.group or "", str(spec.priority), str(spec.default), spec.parent or "")
            )
            digest = hashlib.sha256(text.encode()).hexdigest()[:16]
            segments[name] = [digest, seg.timed is not None]
        return {"traits": self.catalog.fingerprint, "segments": segments}

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
        """Decide the ``dirty`` units for one profile's trait values at ``as_of``.

        Memberships of segments no longer defined are dropped from ``previous``.
        """
        if not previous <= self.segments.keys():
            previous = frozenset(previous & self.segments.keys())
        values = dict(row)
        segments = self.segments

        def matches(name: str, members: Set[str]) -> bool:
            values[SEGMENTS_KEY] = members
            evaluate = segments[name].evaluate
            return evaluate is not None and evaluate(values, as_of) is True

        return self.plan.update(matches, previous, dirty)


DEFINITIONS_KEY = "membership.definitions"
"""The ``meta`` key holding the :attr:`CompiledSegments.fingerprint` memberships reflect."""


@dataclass(frozen=True)
class Drift:
    """How the segment definitions differ from those the stored memberships reflect.

    Attributes:
        removed: Segments no longer defined.
        changed: Segments added, or whose rule, group, priority, default or parent changed.
        traits: Whether the trait definitions changed.
        removed_timed: Whether a removed segment's rule could change with time alone (the
            schedule then holds entries only it needed).
    """

    removed: frozenset[str] = frozenset()
    changed: frozenset[str] = frozenset()
    traits: bool = False
    removed_timed: bool = False

    @property
    def recompute(self) -> bool:
        """Whether memberships must be recomputed (exiting removed members is not enough)."""
        return bool(self.changed) or self.traits or self.removed_timed


def stored_definitions(store: Store) -> dict[str, Any] | None:
    """The fingerprint recorded by the last refresh or engine start, or None."""
    raw = read_meta(store, DEFINITIONS_KEY)
    if raw is None:
        return None
    found = orjson.loads(raw)
    return found if isinstance(found, dict) else None


def record_definitions(store: Store, compiled: CompiledSegments) -> None:
    """Record that the stored memberships reflect ``compiled`` (in the caller's transaction)."""
    write_meta(store, DEFINITIONS_KEY, orjson.dumps(compiled.fingerprint).decode())


def definition_drift(stored: Mapping[str, Any] | None, compiled: CompiledSegments) -> Drift:
    """Compare a recorded fingerprint with the current definitions (None: nothing recorded)."""
    if stored is None:
        return Drift()
    current = compiled.fingerprint["segments"]
    before: Mapping[str, Any] = stored.get("segments") or {}
    removed = frozenset(before) - frozenset(current)
    changed = frozenset(
        n for n, (digest, _) in current.items() if (before.get(n) or [None])[0] != digest
    )
    return Drift(
        removed=removed,
        changed=changed,
        traits=stored.get("traits") != compiled.fingerprint["traits"],
        removed_timed=any(bool(before[n][1]) for n in removed),
    )


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
