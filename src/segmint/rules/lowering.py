"""Lowering event conditions to implicit computed traits.

``performed('E', at_least => 3, within => '90 days', where => 'total > 50')`` becomes
``__performed_<hash> >= 3`` where ``__performed_<hash>`` is the count of events ``E`` passing
the filter in the window; ``last_performed('E')`` becomes ``__last_performed_<hash>``, the
latest such event's timestamp. The traits engine computes these exactly like declared
computed traits (described by the same :class:`EventAggregate`), so one incremental engine
serves both. A count trait is 0, never NULL, for a profile without matching events.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from segmint.rules import ast as A

EVENTS_TARGET = "events"
TIMESTAMP_TARGET = "timestamp"


@dataclass(frozen=True)
class EventAggregate:
    """An aggregate over one profile's events: a computed trait, declared or implicit.

    Attributes:
        func: One of :data:`segmint.config.model.AGGREGATES` (``count``, ``last``, …).
        event: The event name read, or None for every track event.
        target: ``events`` (count, exists), ``timestamp`` or ``properties.<name>``.
        where: A filter over the event's properties (dynamic values), or None.
        within: Only events in the last ``within`` at ``as_of`` count; None for all time.
    """

    func: str
    event: str | None
    target: str
    where: A.Expr | None = None
    within: timedelta | None = None

    @property
    def key(self) -> str:
        """A canonical text of the aggregate, stable across processes and versions."""
        within = "" if self.within is None else str(int(self.within.total_seconds()))
        where = "" if self.where is None else str(self.where)
        return "\x1f".join((self.func, self.event or "", self.target, where, within))

    @property
    def name(self) -> str:
        """A stable, valid SQL identifier: ``__performed_<hash>`` or ``__<func>_<hash>``."""
        digest = hashlib.sha256(self.key.encode()).hexdigest()[:12]
        if self.func == "count" and self.target == EVENTS_TARGET:
            return f"__performed_{digest}"
        if self.func == "last" and self.target == TIMESTAMP_TARGET:
            return f"__last_performed_{digest}"
        return f"__{self.func}_{digest}"

    @property
    def property(self) -> str | None:
        """The property name read, for targets ``properties.<name>``."""
        return (
            self.target.removeprefix("properties.")
            if self.target.startswith("properties.")
            else None
        )


def performed_aggregate(node: A.Performed) -> EventAggregate:
    """The implicit count trait a ``performed(...)`` condition reads."""
    return EventAggregate("count", node.event, EVENTS_TARGET, node.where, node.within)


def last_performed_aggregate(node: A.LastPerformed) -> EventAggregate:
    """The implicit ``last timestamp`` trait ``last_performed(...)`` reads."""
    return EventAggregate("last", node.event, TIMESTAMP_TARGET)


def lower_events(expr: A.Expr) -> tuple[A.Expr, tuple[EventAggregate, ...]]:
    """Replace event conditions by references to implicit traits.

    Returns:
        The rewritten rule (no ``performed``/``last_performed`` left) and the implicit
        aggregates it reads, without duplicates, in order of first appearance.
    """
    found: dict[EventAggregate, None] = {}

    def lower(node: A.Expr) -> A.Expr:
        if isinstance(node, A.Performed):
            agg = performed_aggregate(node)
            found.setdefault(agg)
            ref = A.TraitRef(agg.name, span=node.span)
            return A.Compare(">=", ref, A.Literal(node.at_least), span=node.span)
        if isinstance(node, A.LastPerformed):
            agg = last_performed_aggregate(node)
            found.setdefault(agg)
            return A.TraitRef(agg.name, span=node.span)
        return node

    return transform(expr, lower), tuple(found)


def transform(node: A.Expr, fn: Callable[[A.Expr], A.Expr]) -> A.Expr:
    """Rebuild ``node`` bottom-up, applying ``fn`` to every node (``where`` filters excluded)."""
    changes: dict[str, Any] = {}
    for f in dataclasses.fields(node):
        if f.name == "where":
            continue
        value = getattr(node, f.name)
        if isinstance(value, A.Expr):
            changes[f.name] = transform(value, fn)
        elif isinstance(value, tuple) and value and isinstance(value[0], A.Expr):
            changes[f.name] = tuple(transform(v, fn) for v in value)
    rebuilt = dataclasses.replace(node, **changes) if changes else node
    return fn(rebuilt)
