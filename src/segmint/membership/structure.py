"""Segment structure: exclusive groups, defaults, parents and the evaluation order.

The rules say who *matches* a segment; the structure says who is a *member*:

- A segment with a ``parent`` only holds members of the parent.
- In an exclusive ``group`` a profile is a member of at most one segment: among the group's
  segments it matches (within their parents), the highest ``priority`` wins, ties going to
  the name that sorts first. The group's ``default`` segment holds profiles that match none.
- ``in_segment('x')`` in a rule reads the *membership* of ``x``, so ``x`` is settled first.

Segments are evaluated in *units*: a group is one unit (its segments are decided together),
any other segment is a unit of its own. Units are ordered so that every unit comes after the
units of the segments it reads (``in_segment`` and parents); a cycle is an error.
"""

from __future__ import annotations

from bisect import insort
from collections.abc import Callable, Iterable, Mapping, Set
from dataclasses import dataclass, field

from segmint.common import did_you_mean
from segmint.config.model import SegmentDef, WorkspaceDef
from segmint.membership.errors import SegmentStructureError, UnknownSegmentError

Matcher = Callable[[str, Set[str]], bool]
"""Whether a profile matches a segment's rule, given the memberships settled so far."""


@dataclass(frozen=True)
class SegmentSpec:
    """One segment as the membership engine sees it.

    Attributes:
        name: The segment's name.
        rule: The rule text, or None for a group's default segment.
        group: The exclusive group, if any.
        priority: Rank within the group (highest wins).
        default: Whether this is the group's fallback segment.
        parent: The segment that bounds this one, if any.
        tags: Free labels.
        description: What the segment is for.
    """

    name: str
    rule: str | None
    group: str | None = None
    priority: int = 0
    default: bool = False
    parent: str | None = None
    tags: tuple[str, ...] = ()
    description: str | None = None

    @classmethod
    def from_def(cls, name: str, seg: SegmentDef) -> SegmentSpec:
        """Build a spec from a workspace segment definition (its rule bounded by its lifespan)."""
        return cls(
            name, seg.evaluated_rule, seg.group, seg.priority, seg.default, seg.parent, seg.tags,
            seg.description,
        )  # fmt: skip


@dataclass(frozen=True)
class Unit:
    """Segments decided together: one group (ranked, default last) or one segment."""

    index: int
    group: str | None
    ranked: tuple[SegmentSpec, ...]
    default: SegmentSpec | None
    reads: frozenset[str]
    names: tuple[str, ...] = field(init=False)
    """Every segment of the unit, ranked, the default last."""

    def __post_init__(self) -> None:
        extra = (self.default.name,) if self.default else ()
        object.__setattr__(self, "names", tuple(s.name for s in self.ranked) + extra)


@dataclass
class SegmentPlan:
    """The segments of a workspace, ordered for evaluation.

    Args:
        specs: The segments.
        reads: For each segment, the segments its rule reads through ``in_segment``.
    """

    specs: Mapping[str, SegmentSpec]
    reads: Mapping[str, frozenset[str]] = field(default_factory=dict)
    units: tuple[Unit, ...] = field(init=False)
    unit_of: dict[str, int] = field(init=False)
    dependents: dict[int, frozenset[int]] = field(init=False)

    def __post_init__(self) -> None:
        self._check_names()
        self.units = _order_units(_build_units(self.specs, self.reads))
        self.unit_of = {name: u.index for u in self.units for name in u.names}
        self.dependents = _dependents(self.units, self.unit_of)

    @classmethod
    def from_workspace(
        cls, ws: WorkspaceDef, reads: Mapping[str, frozenset[str]] | None = None
    ) -> SegmentPlan:
        """Build the plan of a workspace definition."""
        specs = {name: SegmentSpec.from_def(name, seg) for name, seg in ws.segments.items()}
        return cls(specs, reads or {})

    def _check_names(self) -> None:
        for name, deps in self.reads.items():
            for dep in deps:
                if dep not in self.specs:
                    raise UnknownSegmentError(f"segment '{name}' reads unknown segment '{dep}'")

    def spec(self, name: str) -> SegmentSpec:
        """Return one segment's spec.

        Raises:
            UnknownSegmentError: If no such segment exists.
        """
        try:
            return self.specs[name]
        except KeyError:
            hint = did_you_mean(name, self.specs)
            message = f"unknown segment '{name}'" + (f"; {hint}" if hint else "")
            raise UnknownSegmentError(message) from None

    @property
    def names(self) -> tuple[str, ...]:
        """All segment names in evaluation order."""
        return tuple(n for u in self.units for n in u.names)

    def resolve(self, matches: Matcher) -> frozenset[str]:
        """Return the segments a profile is a member of, evaluating every unit."""
        return self.update(matches, frozenset(), {u.index for u in self.units})

    def update(self, matches: Matcher, previous: Set[str], dirty: Iterable[int]) -> frozenset[str]:
        """Re-decide the ``dirty`` units (and units reading a changed one) of one profile.

        Args:
            matches: The profile's rule matcher.
            previous: The memberships before the change.
            dirty: Indexes of the units whose rules may have changed their answer.

        Returns:
            The new memberships.
        """
        todo = sorted(set(dirty))
        queued = set(todo)
        members = set(previous)
        units = self.units
        position = 0
        while position < len(todo):
            index = todo[position]
            position += 1
            unit = units[index]
            if unit.group is None:  # one segment: in or out
                spec = unit.ranked[0]
                name = spec.name
                now = (spec.parent is None or spec.parent in members) and matches(name, members)
                if now == (name in members):
                    continue
                if now:
                    members.add(name)
                else:
                    members.discard(name)
            else:
                before = members.intersection(unit.names)
                members.difference_update(unit.names)
                members.update(decide(unit, matches, members))
                if members.intersection(unit.names) == before:
                    continue
            for dependent in self.dependents[index]:  # later in the order than ``index``
                if dependent not in queued:
                    queued.add(dependent)
                    insort(todo, dependent)
        return frozenset(members)

    def units_reading(self, segments: Iterable[str]) -> set[int]:
        """Indexes of the units whose rules read any of ``segments``."""
        wanted = set(segments)
        return {u.index for u in self.units if u.reads & wanted}


def check_plan(ws: WorkspaceDef) -> None:
    """Check that the segments of ``ws`` can be ordered, as every refresh will order them.

    The loader and the management API both call this, so a segment no plan can order is
    refused before it is saved or evaluated.

    Raises:
        SegmentStructureError: At the segment to blame: its own parent, a cycle of parents
            and ``in_segment`` reads, a member reading or nesting in its own group.
    """
    from segmint.rules import RuleError, dependencies, parse

    reads: dict[str, frozenset[str]] = {}
    for name, seg in ws.segments.items():
        try:
            expr = parse(seg.evaluated_rule) if seg.evaluated_rule is not None else None
        except RuleError:
            continue  # reported by the rule checker
        if expr is not None:
            reads[name] = frozenset(dependencies(expr).segments) & ws.segments.keys()
    SegmentPlan.from_workspace(ws, reads)


def decide(unit: Unit, matches: Matcher, members: Set[str]) -> list[str]:
    """Return the members of one unit's segments, given the memberships decided before it."""
    for spec in unit.ranked:
        if _parent_ok(spec, members) and matches(spec.name, members):
            return [spec.name]
        if unit.group is None:
            return []
    default = unit.default
    if default is not None and _parent_ok(default, members):
        return [default.name]
    return []


def _parent_ok(spec: SegmentSpec, members: Set[str]) -> bool:
    return spec.parent is None or spec.parent in members


def _build_units(
    specs: Mapping[str, SegmentSpec], reads: Mapping[str, frozenset[str]]
) -> list[Unit]:
    groups: dict[str, list[SegmentSpec]] = {}
    singles: list[SegmentSpec] = []
    for spec in specs.values():
        if spec.group is None:
            singles.append(spec)
        else:
            groups.setdefault(spec.group, []).append(spec)
    units: list[Unit] = []
    for group, members in sorted(groups.items()):
        units.append(_group_unit(group, members, reads))
    for spec in sorted(singles, key=lambda s: s.name):
        deps = reads.get(spec.name, frozenset())
        units.append(Unit(0, None, (spec,), None, _reads_of([spec], deps)))
    return units


def _group_unit(
    group: str, members: list[SegmentSpec], reads: Mapping[str, frozenset[str]]
) -> Unit:
    defaults = [s for s in members if s.default]
    if len(defaults) > 1:
        names = ", ".join(s.name for s in defaults)
        raise SegmentStructureError(f"group '{group}' has more than one default: {names}")
    ranked = sorted((s for s in members if not s.default), key=lambda s: (-s.priority, s.name))
    deps = frozenset().union(*(reads.get(s.name, frozenset()) for s in members))
    _check_fellows(group, members, reads)
    return Unit(
        0, group, tuple(ranked), defaults[0] if defaults else None, _reads_of(members, deps)
    )


def _check_fellows(
    group: str, members: list[SegmentSpec], reads: Mapping[str, frozenset[str]]
) -> None:
    """Refuse a member of ``group`` that reads or nests in a member of the same group."""
    own = {s.name for s in members}
    for spec in sorted(members, key=lambda s: s.name):
        for verb, targets in (("reads", reads.get(spec.name, frozenset())),
                              ("nests in", {spec.parent} if spec.parent else set())):  # fmt: skip
            inside = sorted(targets & own)
            if inside:
                raise SegmentStructureError(
                    f"segment '{spec.name}' {verb} '{inside[0]}' of its own exclusive group "
                    f"'{group}': segments of the same group hold no one in common, so it can "
                    "never be satisfied",
                    spec.name,
                )


def _reads_of(specs: Iterable[SegmentSpec], deps: frozenset[str]) -> frozenset[str]:
    return deps | {s.parent for s in specs if s.parent}


def _order_units(units: list[Unit]) -> tuple[Unit, ...]:
    """Order units so that each comes after the units it reads (Kahn, stable by position)."""
    owner = {name: i for i, u in enumerate(units) for name in u.names}
    needs = {i: {owner[n] for n in u.reads if n in owner} - {i} for i, u in enumerate(units)}
    for i, u in enumerate(units):
        if any(owner.get(n) == i for n in u.reads) and u.group is None:
            name = u.names[0]
            own = u.ranked[0].parent == name
            how = "is its own parent: it cannot bound itself" if own else "reads itself"
            raise SegmentStructureError(f"segment '{name}' {how}", name)
    ordered: list[Unit] = []
    done: set[int] = set()
    while len(done) < len(units):
        ready = [i for i in range(len(units)) if i not in done and needs[i] <= done]
        if not ready:
            cycle = _cycle(units, owner, set(range(len(units))) - done)
            chain = " → ".join(cycle)
            message = f"segments read each other in a cycle: {chain} (in_segment or parent)"
            raise SegmentStructureError(message, cycle[0])
        for i in ready:
            done.add(i)
            u = units[i]
            ordered.append(Unit(len(ordered), u.group, u.ranked, u.default, u.reads))
    return tuple(ordered)


def _cycle(units: list[Unit], owner: Mapping[str, int], stuck: Set[int]) -> list[str]:
    """One cycle among the ``stuck`` units, as segment names from the first that sorts."""
    edges = {n: sorted(r for r in units[i].reads if owner.get(r) in stuck)
             for i in stuck for n in units[i].names}  # fmt: skip
    start = min(n for n, targets in edges.items() if targets)
    trail = [start]
    while True:
        step = edges[trail[-1]][0]
        if step in trail:
            loop = trail[trail.index(step) :] + [step]
            first = loop.index(min(loop[:-1]))
            return loop[first:-1] + loop[:first] + [loop[first]]
        trail.append(step)


def _dependents(units: tuple[Unit, ...], unit_of: Mapping[str, int]) -> dict[int, frozenset[int]]:
    found: dict[int, set[int]] = {u.index: set() for u in units}
    for unit in units:
        for name in unit.reads:
            found[unit_of[name]].add(unit.index)
    return {k: frozenset(v) for k, v in found.items()}
