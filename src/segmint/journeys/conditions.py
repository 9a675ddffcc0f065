"""Journey conditions compiled once: event filters, and rules over a profile at an instant.

An event condition (a trigger, a ``wait_until`` or an exit condition with ``event``) holds
for an event of that name whose properties pass the ``where`` filter. A rule (a branch, a
``wait_until`` or an exit condition with ``rule``) is evaluated over the profile's traits
computed from its stored events at the instant of the step (so ``performed(...)`` and time
functions are exact there), with its segment memberships for ``in_segment``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from segmint.config.model import WorkspaceDef
from segmint.events import Event
from segmint.rules import (
    SEGMENTS_KEY,
    EventAggregate,
    TraitSchema,
    compile_python,
    lower_events,
    parse,
)
from segmint.store import Store
from segmint.traits import TraitEngine, build_catalog
from segmint.traits.live import profile_events
from segmint.traits.validate import segment_aggregates

EventTest = Callable[[Event], bool]
RuleTest = Callable[[str, datetime], bool]


def event_test(name: str, where: str | None) -> EventTest:
    """A test for events named ``name`` whose properties pass ``where``."""
    if where is None:
        return lambda event: event.event == name
    check = compile_python(parse(where), schema=TraitSchema.event_properties())
    return lambda event: event.event == name and check(event.properties, event.timestamp) is True


class Rules:
    """Evaluates journey rules for one profile at one instant, from its stored events.

    Args:
        store: The store (events and memberships).
        definition: The workspace (traits and the implicit aggregates of its segments).
        texts: Every journey rule's text.
    """

    def __init__(self, store: Store, definition: WorkspaceDef, texts: list[str]) -> None:
        self.store = store
        aggregates: dict[str, EventAggregate] = {}
        self._compiled: dict[str, Callable[[Mapping[str, Any], datetime], bool | None]] = {}
        for text in dict.fromkeys(texts):
            expr = parse(text)
            for agg in lower_events(expr)[1]:
                aggregates.setdefault(agg.name, agg)
            self._compiled[text] = compile_python(expr)
        known = {a.name for a in segment_aggregates(definition)}
        extra = [a for name, a in aggregates.items() if name not in known]
        catalog = build_catalog(definition, (*segment_aggregates(definition), *extra))
        self.engine = TraitEngine(catalog)

    def holds(self, text: str, profile_id: str, at: datetime) -> bool:
        """Whether rule ``text`` is true for the profile at ``at`` (NULL counts as false)."""
        row = self.row(profile_id, at)
        return self._compiled[text](row, at) is True

    def row(self, profile_id: str, at: datetime) -> dict[str, Any]:
        """The profile's trait values at ``at`` and its segments."""
        events = [e for e in profile_events(self.store, profile_id) if e.timestamp <= at]
        engine = self.engine
        values = dict(engine.values(engine.apply_all(engine.new_state(), events), at))
        segments = self.store.fetchall(
            "SELECT segment FROM memberships WHERE profile_id = ?", [profile_id]
        )
        values[SEGMENTS_KEY] = frozenset(s for (s,) in segments)
        return values
