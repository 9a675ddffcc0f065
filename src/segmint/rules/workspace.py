"""Rules in a workspace: the trait schema of ``segmint.yaml`` and checking every rule in it.

:func:`check_workspace` parses and type-checks every segment rule, trait ``where`` filter
and derived trait ``expr``, and refuses ``in_segment`` and derived-trait cycles, each error
located at the exact line and column inside ``segmint.yaml``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from segmint.config.errors import ConfigError
from segmint.config.loader import Positions, dotted, read_yaml
from segmint.config.model import TraitDef, WorkspaceDef
from segmint.rules import ast as A
from segmint.rules.checker import diagnose, infer
from segmint.rules.errors import RuleCycleError, RuleError
from segmint.rules.parser import parse
from segmint.rules.schema import RuleType, TraitSchema
from segmint.rules.yamlpos import locate_in_scalar

BUILTIN_TRAITS: dict[str, RuleType] = {
    "first_seen_at": "timestamp",
    "last_seen_at": "timestamp",
    "event_count": "number",
}
"""Traits every profile has, whatever the workspace declares."""

PROFILE_KEY = "profile_id"
"""The key column of every profile table: no trait can take its name."""


def reserved_trait_name(name: str) -> str | None:
    """Why no trait can be called ``name`` (None when it can).

    A built-in trait or the profile key would be shadowed by it, and a rule reads a keyword
    (``not``, ``in``, ``null``...) as the keyword, never as the trait.
    """
    if name in BUILTIN_TRAITS:
        return f"'{name}' is a built-in trait every profile has"
    if name == PROFILE_KEY:
        return f"'{name}' is the profile key, not a trait"
    if name.lower() in A.NOT_NAMES:
        return f"'{name}' is a keyword of the rule language, which a rule never reads as a trait"
    return None


def trait_type(defn: TraitDef, derived: RuleType | None = None) -> RuleType:
    """The rule-language type of one trait definition (``derived``: an inferred type)."""
    if defn.type is not None:
        return defn.type
    if defn.kind == "identify":
        return "dynamic"
    if defn.kind == "derived":
        return derived or "dynamic"
    func, target = defn.aggregate or ("count", "events")
    if func in ("count", "distinct_count", "sum", "avg"):
        return "number"
    if func == "exists":
        return "boolean"
    if func == "most_frequent":
        return "string"
    return "timestamp" if target == "timestamp" else "dynamic"


def workspace_schema(defn: WorkspaceDef) -> TraitSchema:
    """The types of every trait of a workspace (built-ins first), and its segment names."""
    types: dict[str, RuleType] = dict(BUILTIN_TRAITS)
    for name, trait in defn.traits.items():
        if trait.kind != "derived":
            types[name] = trait_type(trait)
    for name in defn.model_traits():
        types.setdefault(name, "number")  # model outputs (segmint.models) are scores
    for name in _derived_order(defn):
        expr = _parse_quietly(defn.traits[name].expr)
        schema = TraitSchema(types, frozenset(defn.segments))
        found = infer(expr, schema) if expr is not None else None
        types[name] = trait_type(defn.traits[name], found if found != "null" else None)
    return TraitSchema(types, frozenset(defn.segments))


def _parse_quietly(text: str | None) -> A.Expr | None:
    try:
        return parse(text) if text is not None else None
    except RuleError:
        return None


def _derived_order(defn: WorkspaceDef) -> list[str]:
    """Derived traits, each after the derived traits it reads (cycles broken arbitrarily)."""
    graph = {n: _refs(_parse_quietly(t.expr)) for n, t in defn.traits.items() if t.expr}
    order: list[str] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen:
            return
        seen.add(name)
        for dep in sorted(graph[name] & graph.keys()):
            visit(dep)
        order.append(name)

    for name in graph:
        visit(name)
    return order


def _refs(expr: A.Expr | None) -> set[str]:
    return {n.name for n in A.walk(expr) if isinstance(n, A.TraitRef)} if expr else set()


@dataclass(frozen=True)
class _Rule:
    path: tuple[str | int, ...]
    owner: str
    text: str
    schema: TraitSchema
    expect: RuleType | None


def check_workspace(defn: WorkspaceDef, yaml_path: Path | str) -> list[ConfigError]:
    """Parse and type-check every rule of the workspace; return the problems found.

    Args:
        defn: The validated workspace.
        yaml_path: Its ``segmint.yaml``, read again for the positions of the rules.

    Returns:
        One :class:`ConfigError` per problem, located inside ``segmint.yaml``.
    """
    data, text = read_yaml(Path(yaml_path))
    positions = Positions(data, str(yaml_path), text)
    schema = workspace_schema(defn)
    errors = list(_reserved_names(defn, positions))
    parsed: dict[tuple[str, ...], A.Expr] = {}
    for rule in _rules(defn, schema):
        try:
            expr = parse(rule.text)
        except RuleError as exc:
            errors.append(_locate(exc, rule, positions))
            continue
        if rule.path[0] != "journeys":  # (journey rules take no part in cycles)
            parsed[tuple(str(p) for p in rule.path)] = expr
        _, problems = diagnose(expr, rule.schema, expect=rule.expect)
        errors.extend(_locate(p, rule, positions) for p in problems)
        errors.extend(_declared_mismatch(defn, rule, expr, schema, positions))
    errors.extend(_cycles(parsed, "segments", InSegmentEdges(), positions, text))
    errors.extend(_cycles(parsed, "traits", DerivedEdges(defn), positions, text))
    return [_archived(e, defn.archived_segments) for e in errors]


def _reserved_names(defn: WorkspaceDef, positions: Positions) -> Iterator[ConfigError]:
    """A trait named like a built-in trait, the profile key or a rule keyword, at its key."""
    for name in defn.traits:
        spelled = positions.spelling(["traits", name])
        why = reserved_trait_name(spelled)
        if why is not None:
            message = f"trait name '{spelled}' cannot be used: {why}"
            yield positions.error(message, ["traits", name], hint="choose another name", key=True)


def _archived(error: ConfigError, archived: Mapping[str, object]) -> ConfigError:
    """Say so when an unknown segment is an archived one (evaluated by nothing)."""
    for name in archived:
        if error.message.startswith(f"unknown segment '{name}'"):
            hint = f"'{name}' is archived: set 'archived: false' on it, or stop reading it"
            return ConfigError(error.message, location=error.location, key_path=error.key_path,
                               hint=hint, source=error.source)  # fmt: skip
    return error


def _rules(defn: WorkspaceDef, schema: TraitSchema) -> Iterator[_Rule]:
    for name, seg in defn.segments.items():
        if seg.rule is not None:
            yield _Rule(
                ("segments", name, "rule"), f"segment '{name}'", seg.rule, schema, "boolean"
            )
    for name, trait in defn.traits.items():
        if trait.where is not None:
            props = TraitSchema.event_properties()
            yield _Rule(("traits", name, "where"), f"trait '{name}'", trait.where, props, "boolean")
        if trait.expr is not None:
            yield _Rule(("traits", name, "expr"), f"trait '{name}'", trait.expr, schema, None)
    yield from _journey_rules(defn, schema)


def _journey_rules(defn: WorkspaceDef, schema: TraitSchema) -> Iterator[_Rule]:
    """The rules and event filters of journeys (triggers, exits, waits, branches)."""
    props = TraitSchema.event_properties()
    for name, journey in defn.journeys.items():
        owner = f"journey '{name}'"
        base: tuple[str | int, ...] = ("journeys", name)
        if journey.trigger.where is not None:
            path = (*base, "trigger", "where")
            yield _Rule(path, owner, journey.trigger.where, props, "boolean")
        conditions = [((*base, "exit_when", i), c) for i, c in enumerate(journey.exit_when)]
        for index, step in enumerate(journey.steps):
            at = (*base, "steps", index)
            if step.wait_until is not None:
                conditions.append(((*at, "wait_until"), step.wait_until))
            for r, route in enumerate(step.branch or ()):
                if route.rule is not None:
                    yield _Rule((*at, "branch", r, "rule"), owner, route.rule, schema, "boolean")
        for path, cond in conditions:
            if cond.rule is not None:
                yield _Rule((*path, "rule"), owner, cond.rule, schema, "boolean")
            if cond.where is not None:
                yield _Rule((*path, "where"), owner, cond.where, props, "boolean")


def _declared_mismatch(
    defn: WorkspaceDef, rule: _Rule, expr: A.Expr, schema: TraitSchema, positions: Positions
) -> list[ConfigError]:
    if rule.path[0] != "traits" or rule.path[2] != "expr":
        return []
    declared = defn.traits[str(rule.path[1])].type
    found = infer(expr, schema)
    if declared is None or found in (None, "null", "dynamic", declared):
        return []
    exc = RuleError(f"expression is {found}, but the trait is declared {declared}", expr.span)
    return [_locate(exc, rule, positions)]


def _locate(exc: RuleError, rule: _Rule, positions: Positions) -> ConfigError:
    start = positions.locate(list(rule.path))
    location = start
    if exc.span is not None:
        length = max(exc.span.end - exc.span.start, 1)
        location = locate_in_scalar(positions.text, start, exc.span.start, length)
    return ConfigError(
        f"{exc.message} in {rule.owner}",
        location=location,
        key_path=dotted(list(rule.path)),
        hint=exc.hint,
        source=positions.text,
    )


class InSegmentEdges:
    """Segment → the segments its rule reads through ``in_segment``."""

    def edges(self, path: tuple[str, ...], expr: A.Expr) -> list[tuple[str, A.Expr]]:
        """The (target, node) pairs of one segment rule."""
        if path[0] != "segments":
            return []
        return [(n.segment, n) for n in A.walk(expr) if isinstance(n, A.InSegment)]


class DerivedEdges:
    """Derived trait → the derived traits its expression reads."""

    def __init__(self, defn: WorkspaceDef) -> None:
        self.derived = {n for n, t in defn.traits.items() if t.expr is not None}

    def edges(self, path: tuple[str, ...], expr: A.Expr) -> list[tuple[str, A.Expr]]:
        """The (target, node) pairs of one derived trait."""
        if path[0] != "traits" or path[2] != "expr":
            return []
        return [
            (n.name, n)
            for n in A.walk(expr)
            if isinstance(n, A.TraitRef) and n.name in self.derived
        ]


def _cycles(
    parsed: dict[tuple[str, ...], A.Expr],
    section: str,
    kind: InSegmentEdges | DerivedEdges,
    positions: Positions,
    text: str,
) -> list[ConfigError]:
    graph: dict[str, list[tuple[str, A.Expr]]] = {}
    paths: dict[str, tuple[str, ...]] = {}
    for path, expr in parsed.items():
        found = kind.edges(path, expr)
        if path[0] == section and (found or path[1] not in graph):
            graph.setdefault(path[1], []).extend(found)
            paths.setdefault(path[1], path)
    errors = []
    for cycle, node in _find_cycles(graph):
        noun = "segment" if section == "segments" else "trait"
        chain = " → ".join(cycle)
        exc = RuleCycleError(f"{noun} '{cycle[0]}' depends on itself: {chain}", node.span)
        path = paths[cycle[0]]
        rule = _Rule(path, f"{noun} '{cycle[0]}'", "", TraitSchema(), None)
        errors.append(_locate(exc, rule, positions))
    return errors


def _find_cycles(graph: dict[str, list[tuple[str, A.Expr]]]) -> list[tuple[Sequence[str], A.Expr]]:
    """Each elementary cycle once, reported from its alphabetically first member."""
    found: list[tuple[Sequence[str], A.Expr]] = []
    seen: set[frozenset[str]] = set()
    for start in sorted(graph):
        stack: list[tuple[str, list[str], A.Expr | None]] = [(start, [start], None)]
        while stack:
            name, trail, first = stack.pop()
            for target, node in graph.get(name, []):
                edge = first or node
                if target == start:
                    key = frozenset(trail)
                    if key not in seen:
                        seen.add(key)
                        found.append(([*trail, start], edge))
                elif target not in trail and target > start:
                    stack.append((target, [*trail, target], edge))
    return found
