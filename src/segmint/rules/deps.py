"""Dependency analysis: what a rule reads, and whether time alone can change it."""

from __future__ import annotations

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
        time_dependent: True if the rule uses ``now()``, ``within`` or ``days_since``, so
            its value can change with no new event (see :func:`next_transition`).
        aggregates: The implicit event aggregates (see :func:`lower_events`); windowed ones
            also change with time, which the traits engine's ``next_expiry`` reports.
    """

    traits: frozenset[str]
    events: frozenset[str]
    segments: frozenset[str]
    time_dependent: bool
    aggregates: tuple[EventAggregate, ...] = ()


def dependencies(expr: A.Expr) -> Dependencies:
    """Return the traits, events and segments ``expr`` reads and whether it depends on time."""
    nodes = A.walk(expr)
    lowered, aggregates = lower_events(expr)
    traits = frozenset(n.name for n in A.walk(lowered) if isinstance(n, A.TraitRef))
    events = frozenset(n.event for n in nodes if isinstance(n, A.Performed | A.LastPerformed))
    segments = frozenset(n.segment for n in nodes if isinstance(n, A.InSegment))
    timed = any(isinstance(n, TIME_NODES) for n in nodes)
    return Dependencies(traits, events, segments, timed, aggregates)
