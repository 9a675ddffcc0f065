"""The incremental (real-time) trait engine: per-profile state updated one event at a time.

:class:`TraitEngine` is built once from a :class:`~segmint.traits.catalog.TraitCatalog`.
For each event it looks up (once per event type and name, then cached) the traits the event
can touch, applies each trait's ``where`` filter and coercion, and folds the value into the
trait's slot: O(1) for all-time aggregates, O(log n) insertion for windowed ones
(:mod:`segmint.traits.folds`). :meth:`TraitEngine.values` reads every trait at ``as_of``
(then evaluates derived traits over them); :meth:`TraitEngine.next_expiry` says when a
windowed value can next change without a new event.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from segmint.events import SCORE_TYPE, Event
from segmint.traits.catalog import TraitCatalog
from segmint.traits.coerce import COERCERS, lookup
from segmint.traits.derive import compile_derived, compile_filter
from segmint.traits.folds import ALL_TIME, Fold, Max, Min, Window
from segmint.traits.model import BUILTINS, TraitSpec

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_NEVER = -(2**62)


def to_us(value: datetime) -> int:
    """An aware datetime as integer microseconds since the epoch."""
    return (value - EPOCH) // _US


def from_us(value: int) -> datetime:
    """Integer microseconds since the epoch as an aware UTC datetime."""
    return EPOCH + timedelta(microseconds=value)


class TraitState:
    """One profile's incremental state: a slot per event-based trait and a watermark.

    Attributes:
        slots: One slot per aggregate trait, in catalog order.
        watermark: The latest event time applied (µs since the epoch).
    """

    __slots__ = ("slots", "watermark")

    def __init__(self, slots: list[Any], watermark: int = _NEVER) -> None:
        self.slots = slots
        self.watermark = watermark

    @property
    def empty(self) -> bool:
        """True before any event was applied."""
        return self.watermark == _NEVER


BUILTIN_KEYS = [(name, "builtin") for name, _, _ in BUILTINS]
Step = Callable[[list[Any], int, str, Event, int], None]
"""Folds one event into one trait's slot: (slots, ts, message_id, event, watermark)."""


class TraitEngine:
    """Computes every trait of a catalog incrementally, one profile state at a time.

    Args:
        catalog: The traits (see :func:`~segmint.traits.catalog.build_catalog`).
    """

    def __init__(self, catalog: TraitCatalog) -> None:
        self.catalog = catalog
        self.specs = catalog.aggregates
        self.folds = [make_fold(s) for s in self.specs]
        self._empty = [f.new() for f in self.folds]  # immutable slots (None, 0): copy is enough
        self.windows = [(i, f) for i, f in enumerate(self.folds) if isinstance(f, Window)]
        self.dumping = [(i, f) for i, f in enumerate(self.folds) if type(f).dump is not Fold.dump]
        """The folds whose slot is not already JSON-ready (the others are written as they are)."""
        self.loading = [(i, f) for i, f in enumerate(self.folds) if type(f).load is not Fold.load]
        self._routes: dict[str, dict[str | None, tuple[Step, ...]]] = {}
        types = catalog.types()
        self._derived = [(s.name, compile_derived(s, types)) for s in catalog.derived]
        self._defaults = [(s.name, s.default) for s in self.specs if s.default is not None]
        self._timestamps = [i for i, s in enumerate(self.specs) if s.type == "timestamp"]
        self._timestamp_names = [self.specs[i].name for i in self._timestamps]
        self._names = [s.name for s in self.specs]
        self._readers = [
            (i, s.name, f.read, f.within if f.windowed else 0)
            for i, (s, f) in enumerate(zip(self.specs, self.folds, strict=True))
            if type(f).read is not Fold.read
        ]
        self._moving = [
            (i, s.name, f.read, f.within, s.type == "timestamp", s.default)
            for i, (s, f) in enumerate(zip(self.specs, self.folds, strict=True))
            if f.windowed
        ]
        """The folds whose value moves with time alone (windows), for :meth:`values_later`."""

    def new_state(self) -> TraitState:
        """The state of a profile with no events."""
        return TraitState(self._empty.copy())

    def apply(self, state: TraitState, event: Event) -> None:
        """Fold one event into ``state`` (any arrival order gives the same result)."""
        delta = event.timestamp - EPOCH
        ts = (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds
        watermark = state.watermark
        if ts > watermark:
            state.watermark = watermark = ts
        by_name = self._routes.get(event.type)
        steps = None if by_name is None else by_name.get(event.event)
        if steps is None:
            steps = self._route(event.type, event.event)
        slots = state.slots
        mid = event.message_id
        for step in steps:
            step(slots, ts, mid, event, watermark)

    def apply_all(self, state: TraitState, events: Iterable[Event]) -> TraitState:
        """Fold many events into ``state`` and return it."""
        for event in events:
            self.apply(state, event)
        return state

    def values(self, state: TraitState, as_of: datetime) -> dict[str, Any]:
        """Every trait's value at ``as_of`` (exact for ``as_of`` at or after the watermark)."""
        now = to_us(as_of)
        # plain slots are their value; the others read with the window's lower edge
        out = dict(zip(self._names, state.slots, strict=True))
        slots = state.slots
        for i, name, read, within in self._readers:
            out[name] = read(slots[i], now - within)
        for name in self._timestamp_names:
            value = out[name]
            if value is not None:
                out[name] = EPOCH + timedelta(microseconds=value)
        for name, default in self._defaults:
            if out[name] is None:
                out[name] = default
        for name, compute in self._derived:
            out[name] = compute(out, as_of)
        return out

    def values_later(
        self, state: TraitState, before: Mapping[str, Any], as_of: datetime
    ) -> dict[str, Any]:
        """:meth:`values` at ``as_of``, given ``before``: those of the same state earlier.

        No event was applied since ``before`` was read (at an instant at or after the
        watermark, up to ``as_of``), so only what time alone moves is read again: windowed
        traits, then every derived trait. The real-time engine's time transitions use it.
        """
        now = to_us(as_of)
        out = dict(before)
        slots = state.slots
        for i, name, read, within, stamp, default in self._moving:
            value = read(slots[i], now - within)
            if stamp and value is not None:
                value = EPOCH + timedelta(microseconds=value)
            out[name] = default if value is None and default is not None else value
        for name, _ in self._derived:  # each computed over what precedes it, as in values()
            out.pop(name, None)
        for name, compute in self._derived:
            out[name] = compute(out, as_of)
        return out

    def next_expiry(self, state: TraitState, as_of: datetime) -> datetime | None:
        """The first instant after ``as_of`` at which a windowed value can change, or None.

        At that instant the oldest event inside some window leaves it; re-evaluating then
        is always correct (for ``count`` and ``exists`` the value does change).
        """
        now = to_us(as_of)
        due = [f.expiry(state.slots[i], now - f.within) for i, f in self.windows]
        found = [d for d in due if d is not None]
        return from_us(min(found)) if found else None

    def _route(self, kind: str, name: str | None) -> tuple[Step, ...]:
        pairs = list(enumerate(zip(self.specs, self.folds, strict=True)))
        steps: list[Step] = []
        if kind == SCORE_TYPE:
            pairs = (
                pairs[3:] if [(s.name, s.kind) for s in self.specs[:3]] == BUILTIN_KEYS else pairs
            )
        elif [(s.name, s.kind) for s in self.specs[:3]] == BUILTIN_KEYS:
            steps.append(_builtin_step)  # every event touches the built-ins: one call
            pairs = pairs[3:]
        steps += [
            make_step(i, spec, fold) for i, (spec, fold) in pairs if matches(spec, kind, name)
        ]
        self._routes.setdefault(kind, {})[name] = tuple(steps)
        return tuple(steps)


def matches(spec: TraitSpec, kind: str, name: str | None) -> bool:
    """True when an event of type ``kind`` named ``name`` can count towards ``spec``."""
    if spec.scope == "all":
        return kind != SCORE_TYPE
    if spec.scope in ("identify", "score"):
        return kind == spec.scope and (spec.event is None or spec.event == name)
    return kind == "track" and (spec.event is None or spec.event == name)


def make_fold(spec: TraitSpec) -> Fold:
    """The fold computing ``spec``."""
    on_timestamp = spec.target == "timestamp"
    if spec.within is not None:
        return Window(spec.func, spec.within // _US, on_timestamp)
    if on_timestamp:
        return Min() if spec.func in ("min", "first") else Max()
    return ALL_TIME[spec.func]()


def make_step(index: int, spec: TraitSpec, fold: Fold) -> Step:
    """The one closure that folds an event into ``spec``'s slot (filter, coercion, fold)."""
    where = compile_filter(spec)
    value = value_reader(spec, fold)
    if fold.windowed:
        return _window_step(index, fold, value, where)
    if value is None:
        return _count_step(index, where)
    if spec.target == "timestamp" and where is None:
        return _time_step(index, isinstance(fold, Min))
    add = fold.add

    def step(slots: list[Any], ts: int, mid: str, event: Event, watermark: int) -> None:
        if where is not None and not where(event):
            return
        found = value(event, ts)
        if found is not None:
            slots[index] = add(slots[index], ts, mid, found)

    return step


def _builtin_step(slots: list[Any], ts: int, mid: str, event: Event, watermark: int) -> None:
    """first_seen_at, last_seen_at and event_count (slots 0, 1, 2) in one step."""
    first = slots[0]
    if first is None or ts < first:
        slots[0] = ts
    last = slots[1]
    if last is None or ts > last:
        slots[1] = ts
    slots[2] += 1


def _count_step(index: int, where: Callable[[Event], bool] | None) -> Step:
    def count(slots: list[Any], ts: int, mid: str, event: Event, watermark: int) -> None:
        if where is None or where(event):
            slots[index] += 1

    return count


def _time_step(index: int, earliest: bool) -> Step:
    def first(slots: list[Any], ts: int, mid: str, event: Event, watermark: int) -> None:
        slot = slots[index]
        if slot is None or ts < slot:
            slots[index] = ts

    def last(slots: list[Any], ts: int, mid: str, event: Event, watermark: int) -> None:
        slot = slots[index]
        if slot is None or ts > slot:
            slots[index] = ts

    return first if earliest else last


def _window_step(
    index: int, fold: Fold, value: Callable[[Event, int], Any] | None,
    where: Callable[[Event], bool] | None,
) -> Step:  # fmt: skip
    within, add, prune = fold.within, fold.add, fold.prune  # type: ignore[attr-defined]

    def window(slots: list[Any], ts: int, mid: str, event: Event, watermark: int) -> None:
        if ts <= watermark - within or (where is not None and not where(event)):
            return
        found = None
        if value is not None:
            found = value(event, ts)
            if found is None:
                return
        slot = slots[index]
        if slot:
            prune(slot, watermark)
        slots[index] = add(slot, ts, mid, found)

    return window


def value_reader(spec: TraitSpec, fold: Fold) -> Callable[[Event, int], Any] | None:
    """How to read the value an event contributes to ``spec`` (None: no value needed)."""
    if spec.target == "timestamp":
        return None if fold.windowed else (lambda event, ts: ts)
    if not fold.wants_value or spec.value_kind is None:
        return None
    coerce = COERCERS[spec.value_kind]
    path = spec.path
    field = spec.column
    if spec.value_kind == "timestamp":

        def read_ts(event: Event, ts: int) -> Any:
            found = coerce(lookup(getattr(event, field), path))
            return None if found is None else to_us(found)

        return read_ts
    if len(path) == 1 and field == "properties":
        key = path[0]
        return lambda event, ts: coerce(event.properties.get(key))
    return lambda event, ts: coerce(lookup(getattr(event, field), path))
