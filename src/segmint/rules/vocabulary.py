"""Event and property names the workspace's rules use, checked against the known ones.

A rule may name an event (``performed('Product Viewed')``, a computed trait's ``event:``)
or an event property (a ``where`` filter, ``sum: properties.total``) that nothing ever
sends: the rule is valid, and silently never true. :func:`name_warnings` reports each such
name as a warning with "did you mean", located in ``segmint.yaml``.

What is known comes from the tracking plan when the workspace has one
(:func:`plan_vocabulary`), else from the events the store has seen (:func:`seen_vocabulary`,
one ``DISTINCT`` query); :attr:`Vocabulary.basis` says which, for the warning's reader.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from segmint.common import did_you_mean
from segmint.config.errors import ConfigError
from segmint.config.loader import Positions, dotted, read_yaml
from segmint.config.model import TrackingPlan, WorkspaceDef
from segmint.rules import ast as A
from segmint.rules.errors import RuleError, Span
from segmint.rules.parser import parse
from segmint.rules.yamlpos import locate_in_scalar

if TYPE_CHECKING:
    from segmint.store import Store


@dataclass(frozen=True)
class Vocabulary:
    """The event names and, per event, the property names known to exist.

    Attributes:
        events: Every known event name.
        properties: Event name → its known property names (top-level keys).
        basis: Where the names come from, said in every warning.
    """

    events: frozenset[str]
    properties: Mapping[str, frozenset[str]]
    basis: str

    def properties_of(self, event: str | None) -> frozenset[str]:
        """The known properties of ``event`` (of every event when None)."""
        if event is not None:
            return self.properties.get(event, frozenset())
        return frozenset().union(*self.properties.values())


def plan_vocabulary(plan: TrackingPlan) -> Vocabulary:
    """The names a tracking plan declares."""
    props = {name: frozenset(e.properties) for name, e in plan.events.items()}
    return Vocabulary(frozenset(plan.events), props, "the tracking plan")


_SEEN_SQL = {
    "duckdb": "SELECT DISTINCT event, unnest(json_keys(properties)) FROM events "
    "WHERE event IS NOT NULL AND json_type(properties) = 'OBJECT'",
    "postgres": "SELECT DISTINCT event, jsonb_object_keys(properties) FROM events "
    "WHERE event IS NOT NULL AND jsonb_typeof(properties) = 'object'",
}


def seen_vocabulary(store: Store) -> Vocabulary:
    """The event and property names of the events the store holds."""
    events = {
        r[0] for r in store.fetchall("SELECT DISTINCT event FROM events WHERE event IS NOT NULL")
    }
    props: dict[str, set[str]] = {e: set() for e in events}
    for event, key in store.fetchall(_SEEN_SQL[store.dialect]):
        props.setdefault(event, set()).add(key)
    frozen = {e: frozenset(p) for e, p in props.items()}
    return Vocabulary(frozenset(events), frozen, "the events stored so far")


def workspace_vocabulary(defn: WorkspaceDef, store: Store | None) -> Vocabulary | None:
    """The tracking plan's names if there is a plan, else the store's (None: no basis)."""
    if defn.tracking_plan is not None and defn.tracking_plan.events:
        return plan_vocabulary(defn.tracking_plan)
    if store is None:
        return None
    seen = seen_vocabulary(store)
    return seen if seen.events else None


@dataclass(frozen=True)
class _Name:
    """One event or property name used in the file, and where."""

    kind: str  # "event" or "property"
    name: str
    event: str | None  # the event a property belongs to (None: any event)
    path: tuple[str, ...]  # key path of the YAML scalar that holds it
    owner: str
    span: Span | None = None  # inside the scalar, when it is a rule


def name_warnings(
    defn: WorkspaceDef, yaml_path: Path | str, vocab: Vocabulary
) -> list[ConfigError]:
    """One warning per event or property name that ``vocab`` does not know.

    Rules that do not parse are skipped (``check_workspace`` reports them).
    """
    data, text = read_yaml(Path(yaml_path))
    positions = Positions(data, str(yaml_path), text)
    warnings: list[ConfigError] = []
    seen: set[tuple[str, str | None, str, tuple[str, ...]]] = set()
    for used in _names(defn):
        key = (used.kind, used.event, used.name, used.path)
        if key in seen:
            continue
        seen.add(key)
        known = _unknown(used, vocab)
        if known is not None:
            warnings.append(_warning(used, known, vocab, positions))
    return warnings


def rule_warnings(rule: str, vocab: Vocabulary) -> list[str]:
    """One warning per event or property name in ``rule`` that ``vocab`` does not know.

    For a rule typed on the command line (``segments preview``), where a mistyped event
    name would otherwise just match nobody. A rule that does not parse gives none.
    """
    out: list[str] = []
    for used in _rule_names(rule, (), "the rule"):
        known = _unknown(used, vocab)
        if known is not None:
            of_event = f" of event '{used.event}'" if used.kind == "property" else ""
            hint = did_you_mean(used.name, known) or _known(used.kind, known)
            out.append(f"{used.kind} '{used.name}'{of_event} is not in {vocab.basis}; {hint}")
    return list(dict.fromkeys(out))  # a name used twice is said once


def event_warnings(events: Iterable[str], vocab: Vocabulary) -> list[str]:
    """One warning per event name in ``events`` that ``vocab`` does not know.

    For settings that name events outside a rule (``privacy.retention``), where a mistyped
    name would otherwise just match no event: nothing deleted, and nothing said.
    """
    out = []
    for event in events:
        if event not in vocab.events:
            hint = did_you_mean(event, vocab.events) or _known("event", vocab.events)
            out.append(f"event '{event}' is not in {vocab.basis}; {hint}")
    return out


def preview_warnings(defn: WorkspaceDef, store: Store, rule: str) -> list[str]:
    """:func:`rule_warnings` for ``rule`` against the workspace's names (none without any).

    What ``segments preview`` and ``POST /v1/segments/preview`` add to a size, so that a
    mistyped event is not just "0 profiles".
    """
    vocab = workspace_vocabulary(defn, store)
    return rule_warnings(rule, vocab) if vocab is not None else []


def _unknown(used: _Name, vocab: Vocabulary) -> frozenset[str] | None:
    """The names ``used`` could have meant if ``vocab`` does not know it, else None.

    A property of an unknown event is not judged: the event's own warning covers it.
    """
    known = vocab.events if used.kind == "event" else vocab.properties_of(used.event)
    if used.name in known or (used.kind == "property" and used.event not in vocab.events):
        return None
    return known


def _warning(
    used: _Name, known: frozenset[str], vocab: Vocabulary, positions: Positions
) -> ConfigError:
    location = positions.locate(list(used.path))
    if used.span is not None:
        length = max(used.span.end - used.span.start, 1)
        location = locate_in_scalar(positions.text, location, used.span.start, length)
    of_event = f" of event '{used.event}'" if used.kind == "property" and used.event else ""
    hint = did_you_mean(used.name, known) or _known(used.kind, known)
    return ConfigError(
        f"{used.kind} '{used.name}'{of_event} in {used.owner} is not in {vocab.basis}",
        location=location,
        key_path=dotted(list(used.path)),
        hint=hint,
        source=positions.text,
    )


def _known(kind: str, known: frozenset[str], shown: int = 5) -> str:
    if not known:
        return f"no {kind} names known yet"
    names = sorted(known)
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return f"known {kind}s: " + ", ".join(f"'{n}'" for n in names[:shown]) + more


def _names(defn: WorkspaceDef) -> Iterator[_Name]:
    for name, seg in defn.segments.items():
        if seg.rule is not None:
            yield from _rule_names(seg.rule, ("segments", name, "rule"), f"segment '{name}'")
    for name, trait in defn.traits.items():
        owner = f"trait '{name}'"
        if trait.event is not None:
            yield _Name("event", trait.event, None, ("traits", name, "event"), owner)
        func, target = trait.aggregate or ("", "")
        if target.startswith("properties."):
            prop = target.removeprefix("properties.").split(".")[0]
            yield _Name("property", prop, trait.event, ("traits", name, func), owner)
        if trait.where is not None:
            path = ("traits", name, "where")
            yield from _filter_names(trait.where, trait.event, path, owner)
        if trait.expr is not None:
            yield from _rule_names(trait.expr, ("traits", name, "expr"), owner)
    for event in defn.privacy.retention:  # a typo would keep those events for ever
        yield _Name("event", event, None, ("privacy", "retention", event), "privacy.retention")


def _rule_names(text: str, path: tuple[str, ...], owner: str) -> Iterator[_Name]:
    try:
        expr = parse(text)
    except RuleError:
        return
    for node in A.walk(expr):
        if isinstance(node, A.Performed | A.LastPerformed):
            yield _Name("event", node.event, None, path, owner, node.span)
        if isinstance(node, A.Performed) and node.where is not None:
            for ref in A.walk(node.where):
                if isinstance(ref, A.TraitRef):
                    prop = ref.name.split(".")[0]
                    yield _Name("property", prop, node.event, path, owner, node.span)


def _filter_names(
    text: str, event: str | None, path: tuple[str, ...], owner: str
) -> Iterator[_Name]:
    try:
        expr = parse(text)
    except RuleError:
        return
    for ref in A.walk(expr):
        if isinstance(ref, A.TraitRef):
            yield _Name("property", ref.name.split(".")[0], event, path, owner, ref.span)
