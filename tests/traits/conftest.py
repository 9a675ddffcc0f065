"""Helpers for the traits tests: storing events, comparing values, example definitions."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import orjson
import pyarrow as pa
import pytest

from segmint.config.model import TraitDef
from segmint.events import Event
from segmint.store import Store, utcnow_naive

FLOAT_TOLERANCE = {"rel_tol": 1e-9, "abs_tol": 1e-9}
"""Floats from SQL and from the incremental engine agree within this (summation order)."""


def event_row(event: Event) -> dict[str, Any]:
    """The events-table row of an :class:`Event` (JSON text columns, naive UTC times)."""
    return {
        "message_id": event.message_id,
        "type": event.type,
        "event": event.event,
        "profile_id": event.profile_id,
        "user_id": event.user_id,
        "anonymous_id": event.anonymous_id,
        "timestamp": utcnow_naive(event.timestamp),
        "received_at": utcnow_naive(event.received_at or event.timestamp),
        "source": None,
        "properties": orjson.dumps(event.properties).decode(),
        "traits": orjson.dumps(event.traits).decode(),
        "context": "{}",
    }


def store_events(store: Store, events: Iterable[Event]) -> None:
    """Replace the store's events with ``events``."""
    store.execute("DELETE FROM events")
    rows = [event_row(e) for e in events]
    if rows:
        store.append_events(pa.Table.from_pylist(rows))


def same(a: Any, b: Any) -> bool:
    """Equal, with floats compared within :data:`FLOAT_TOLERANCE`."""
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None or isinstance(a, bool) or isinstance(b, bool):
            return False
        return math.isclose(a, b, **FLOAT_TOLERANCE)
    return bool(a == b) and type(a) is type(b) or (_num(a) and _num(b) and a == b)


def _num(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def differences(expected: Mapping[str, Any], found: Mapping[str, Any]) -> dict[str, Any]:
    """Trait name → (expected, found) for every value that differs."""
    return {k: (v, found.get(k)) for k, v in expected.items() if not same(v, found.get(k))}


def traits(spec: Mapping[str, Mapping[str, Any]]) -> dict[str, TraitDef]:
    """Trait definitions from plain mappings, as in ``segmint.yaml``."""
    return {name: TraitDef.model_validate(dict(body)) for name, body in spec.items()}


def at(text: str) -> datetime:
    """An aware UTC instant from ISO text."""
    from segmint.clock import parse_instant

    return parse_instant(text)


class Kit:
    """The helpers above, handed to tests as the ``kit`` fixture."""

    store_events = staticmethod(store_events)
    same = staticmethod(same)
    differences = staticmethod(differences)
    traits = staticmethod(traits)
    at = staticmethod(at)


@pytest.fixture
def kit() -> type[Kit]:
    """The traits test helpers."""
    return Kit
