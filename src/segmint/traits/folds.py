"""Per-trait incremental state: one small fold per aggregate, with and without a window.

Every fold keeps a *slot* (an int, a list, a set, …) and offers ``new``, ``add``, ``read``,
``dump`` and ``load``. Timestamps are integer microseconds since the epoch throughout.

All-time folds are commutative: the order events arrive in does not matter, so late and
out-of-order events give the in-order result. ``first``/``last`` keep the event with the
smallest/largest (timestamp, message_id), the same tie-break the SQL uses.

Windowed folds keep the matching events still inside the window, sorted by time; reading
at ``as_of`` folds the entries with ``timestamp > as_of - within``. Entries that fell out of
the window at the profile's *watermark* (its latest event time) are dropped, so memory is
bounded by the events inside one window. Reading is exact for any ``as_of`` at or after the
watermark (the real-time case: state is read at "now").

Memory per trait: O(1) for count, exists, sum, avg, min, max, first and last; O(distinct
values) for all-time ``distinct_count`` and ``most_frequent`` (an exact answer needs them);
O(events inside the window) for windowed traits.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections import Counter
from typing import Any

Slot = Any


class Fold:
    """An all-time aggregate: count, exists, sum, avg, min, max, first, last…."""

    windowed = False
    wants_value = True
    within = 0

    def new(self) -> Slot:
        """The slot of a profile with no matching event (immutable: states share it)."""
        return None

    def add(self, slot: Slot, ts: int, mid: str, value: Any) -> Slot:
        """Fold one matching event in and return the slot."""
        raise NotImplementedError

    def read(self, slot: Slot, cutoff: int) -> Any:
        """The value (``cutoff`` is only used by windows)."""
        return slot

    def dump(self, slot: Slot) -> Any:
        """A JSON-ready form of the slot."""
        return slot

    def load(self, data: Any) -> Slot:
        """The slot back from :meth:`dump`."""
        return data


class Count(Fold):
    """``count: events`` (0 when none)."""

    wants_value = False

    def new(self) -> Slot:
        """Zero."""
        return 0

    def add(self, slot: Slot, ts: int, mid: str, value: Any) -> Slot:
        """One more."""
        return slot + 1


class Exists(Count):
    """``exists: events`` (false when none)."""

    def read(self, slot: Slot, cutoff: int) -> Any:
        """True once an event matched."""
        return slot > 0


class Sum(Fold):
    """``sum`` (NULL when no value); the slot is [total, n], None before the first value."""

    def add(self, slot: Slot, ts: int, mid: str, value: Any) -> Slot:
        """Add the value."""
        if slot is None:
            return [value, 1]
        slot[0] += value
        slot[1] += 1
        return slot

    def read(self, slot: Slot, cutoff: int) -> Any:
        """The total, or None without values."""
        return None if slot is None else slot[0]


class Avg(Sum):
    """``avg`` (NULL when no value)."""

    def read(self, slot: Slot, cutoff: int) -> Any:
        """The mean, or None without values."""
        return None if slot is None else slot[0] / slot[1]


class Min(Fold):
    """``min`` of a number or timestamp."""

    def add(self, slot: Slot, ts: int, mid: str, value: Any) -> Slot:
        """Keep the smaller."""
        return value if slot is None or value < slot else slot


class Max(Fold):
    """``max`` of a number or timestamp."""

    def add(self, slot: Slot, ts: int, mid: str, value: Any) -> Slot:
        """Keep the larger."""
        return value if slot is None or value > slot else slot


class First(Fold):
    """``first`` of a property: the value of the earliest (timestamp, message_id)."""

    def add(self, slot: Slot, ts: int, mid: str, value: Any) -> Slot:
        """Keep the earlier event."""
        if slot is None or (ts, mid) < (slot[0], slot[1]):
            return [ts, mid, value]
        return slot

    def read(self, slot: Slot, cutoff: int) -> Any:
        """The value kept."""
        return None if slot is None else slot[2]


class Last(First):
    """``last`` of a property (and identify traits): the latest (timestamp, message_id)."""

    def add(self, slot: Slot, ts: int, mid: str, value: Any) -> Slot:
        """Keep the later event."""
        if slot is None or (ts, mid) > (slot[0], slot[1]):
            return [ts, mid, value]
        return slot


class DistinctCount(Fold):
    """``distinct_count``: the set of text values seen."""

    def add(self, slot: Slot, ts: int, mid: str, value: Any) -> Slot:
        """Remember the value."""
        if slot is None:
            return {value}
        slot.add(value)
        return slot

    def read(self, slot: Slot, cutoff: int) -> Any:
        """How many distinct values."""
        return 0 if slot is None else len(slot)

    def dump(self, slot: Slot) -> Any:
        """A sorted list."""
        return None if slot is None else sorted(slot)

    def load(self, data: Any) -> Slot:
        """The set back."""
        return None if data is None else set(data)


class MostFrequent(Fold):
    """``most_frequent``: counts per text value; ties go to the smallest value."""

    def add(self, slot: Slot, ts: int, mid: str, value: Any) -> Slot:
        """Count the value."""
        if slot is None:
            return {value: 1}
        slot[value] = slot.get(value, 0) + 1
        return slot

    def read(self, slot: Slot, cutoff: int) -> Any:
        """The most frequent value."""
        return None if slot is None else most_frequent(slot)


def most_frequent(counts: dict[str, int]) -> str | None:
    """The value with the highest count; the smallest such value on a tie."""
    best: Any = None
    top = -1
    for value, count in counts.items():  # one pass (it runs for every profile decided)
        if count > top or (count == top and value < best):
            best, top = value, count
    return best  # type: ignore[no-any-return]


ALL_TIME: dict[str, type[Fold]] = {
    "count": Count, "exists": Exists, "sum": Sum, "avg": Avg, "min": Min, "max": Max,
    "first": First, "last": Last, "distinct_count": DistinctCount,
    "most_frequent": MostFrequent,
}  # fmt: skip
"""The all-time fold class of each aggregate (``first``/``last`` of a property)."""


class Window(Fold):
    """Any aggregate over a window: the matching events inside it, sorted by time.

    Entries are ``[ts, mid, value]`` lists (ints for count/exists), kept sorted by
    (ts, mid) so ``first``/``last`` follow the same tie-break as the all-time folds.
    """

    windowed = True

    def __init__(self, func: str, within_us: int, on_timestamp: bool) -> None:
        self.func = func
        self.within = within_us
        self.bare = func in ("count", "exists")
        self.wants_value = not self.bare and not on_timestamp
        self._read = _WINDOW_READERS[func] if self.bare or not on_timestamp else _ts_reader(func)

    def add(self, slot: Slot, ts: int, mid: str, value: Any) -> Slot:
        """Insert the event (already checked to be inside the window at the watermark)."""
        entry = ts if self.bare else [ts, mid, value]
        if slot is None:
            return [entry]
        if not slot or _ts(slot[-1]) < ts:
            slot.append(entry)  # the common case: events arrive in time order
        else:
            insort(slot, entry)
        return slot

    def prune(self, slot: Slot, watermark: int) -> None:
        """Drop entries that left the window by ``watermark``."""
        horizon = watermark - self.within
        if slot and _ts(slot[0]) <= horizon:
            del slot[: self._after(slot, horizon)]

    def _after(self, slot: Slot, cutoff: int) -> int:
        """The index of the first entry later than ``cutoff`` in a non-empty slot.

        Without a key function (a Python call per comparison): entries are ints, or lists
        ``[ts, …]``, and a one-item list ``[cutoff + 1]`` sorts before every entry at that
        microsecond or later and after every earlier one.
        """
        if self.bare:
            return bisect_right(slot, cutoff)
        return bisect_left(slot, [cutoff + 1])

    def live(self, slot: Slot, cutoff: int) -> list[Any]:
        """The entries inside the window whose lower edge is ``cutoff``."""
        if not slot:
            return []
        return slot[self._after(slot, cutoff) :]  # type: ignore[no-any-return]

    def read(self, slot: Slot, cutoff: int) -> Any:
        """The aggregate over the live entries."""
        if self.func == "count":  # no copy of the live entries to count them
            return len(slot) - self._after(slot, cutoff) if slot else 0
        return self._read(self.live(slot, cutoff))

    def expiry(self, slot: Slot, cutoff: int) -> int | None:
        """When the oldest live entry leaves the window (µs), or None."""
        if not slot:
            return None
        live = self._after(slot, cutoff)
        return _ts(slot[live]) + self.within if live < len(slot) else None


def _ts(entry: Any) -> int:
    return entry if type(entry) is int else entry[0]


def _values(live: list[Any]) -> list[Any]:
    return [e[2] for e in live]


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _ts_reader(func: str) -> Any:
    pick = {"min": 0, "first": 0, "max": -1, "last": -1}[func]
    return lambda live: live[pick][0] if live else None


_WINDOW_READERS: dict[str, Any] = {
    "count": len,
    "exists": lambda live: bool(live),
    "sum": lambda live: sum(_values(live)) if live else None,
    "avg": lambda live: _mean(_values(live)),
    "min": lambda live: min(_values(live)) if live else None,
    "max": lambda live: max(_values(live)) if live else None,
    "first": lambda live: live[0][2] if live else None,
    "last": lambda live: live[-1][2] if live else None,
    "distinct_count": lambda live: len({e[2] for e in live}),
    "most_frequent": lambda live: most_frequent(Counter(_values(live))),
}
