"""Dependency analysis: what a rule reads, and whether time alone can change it."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from segmint.rules import ast as A
from segmint.rules.lowering import EventAggregate, lower_events

TIME_NODES = (A.Now, A.Within, A.DaysSince)


@dataclass(frozen=True)
class Dependencies:
    """What a rule reads.

    Attributes:
        traits: Trait names read, including the implicit traits of event conditions.
        events: Event names read by ``performed``/``last_performed``.
        segments: Segments read by ``in_segment``.
        time_dependent: True if the rule's value can change with no new event: it has a
            time leaf (``time_leaves``), a windowed ``performed(..., within => d)``, or reads
            a trait named in ``moving`` (windowed or time-dependent traits of the workspace).
        aggregates: The implicit event aggregates (see :func:`lower_events`); windowed ones
            change with time, which the traits engine's ``next_expiry`` reports.
        time_leaves: True if the rule itself uses ``now()``, ``within`` or ``days_since``:
            the leaves :func:`next_transition` solves (windows are the traits engine's).
    """

    traits: frozenset[str]
    events: frozenset[str]
    segments: frozenset[str]
    time_dependent: bool
    aggregates: tuple[EventAggregate, ...] = ()
    time_leaves: bool = False


def dependencies(expr: A.Expr, moving: Collection[str] = ()) -> Dependencies:
    """Return the traits, events and segments ``expr`` reads and whether it depends on time.

    Args:
        expr: The rule.
        moving: Names of traits whose value moves with time alone (windowed aggregates,
            derived traits using ``days_since``…); a rule reading one is time-dependent.
    """
    nodes = A.walk(expr)
    lowered, aggregates = lower_events(expr)
    traits = frozenset(n.name for n in A.walk(lowered) if isinstance(n, A.TraitRef))
    events = frozenset(n.event for n in nodes if isinstance(n, A.Performed | A.LastPerformed))
    segments = frozenset(n.segment for n in nodes if isinstance(n, A.InSegment))
    leaves = any(isinstance(n, TIME_NODES) for n in nodes)
    windowed = any(a.within is not None for a in aggregates)
    timed = leaves or windowed or not traits.isdisjoint(moving)
    return Dependencies(traits, events, segments, timed, aggregates, leaves)
