"""Scores enter the store as events, so they reach traits the way every trait value does.

One score event per profile and scoring: type :data:`segmint.events.SCORE_TYPE`, ``event``
the model name, ``traits`` each output's value, ``timestamp`` the scoring's ``as_of``. The
model's traits (``segmint.traits.model.model_spec``) keep the latest value, in batch SQL and
in the incremental engine alike; a batch ``refresh`` or a real-time engine then moves
memberships and records the changes like for any other trait change. Events stay the source
of truth: ``segmint rebuild`` restores every score. The message id names the model, version,
instant and profile, so scoring twice at one instant writes nothing the second time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import orjson

from segmint.events import SCORE_TYPE, Event
from segmint.store import Store, utcnow_naive


def score_events(
    model: str, version: int, as_of: datetime, scores: Mapping[str, Mapping[str, float | None]]
) -> list[Event]:
    """The events carrying ``scores`` (profile → output → value) of one scoring."""
    stamp = as_of.strftime("%Y%m%dT%H%M%S%fZ")
    return [
        Event(f"score:{model}:{version}:{stamp}:{pid}", SCORE_TYPE, model, pid, as_of,
              traits=dict(values), received_at=as_of)
        for pid, values in scores.items()
    ]  # fmt: skip


def write_scores(store: Store, events: Sequence[Event]) -> list[Event]:
    """Append score events; return those actually stored, each with its ``seq``."""
    import pyarrow as pa

    from segmint.store import EVENT_SCHEMA

    if not events:
        return []
    columns: dict[str, list[Any]] = {
        "message_id": [e.message_id for e in events],
        "type": [e.type for e in events],
        "event": [e.event for e in events],
        "profile_id": [e.profile_id for e in events],
        "user_id": [None] * len(events),
        "anonymous_id": [None] * len(events),
        "timestamp": [utcnow_naive(e.timestamp) for e in events],
        "received_at": [utcnow_naive(e.received_at or e.timestamp) for e in events],
        "source": ["segmint.models"] * len(events),
        "properties": ["{}"] * len(events),
        "traits": [orjson.dumps(e.traits).decode() for e in events],
        "context": ["{}"] * len(events),
    }
    stored = store.append_events(pa.table(columns, schema=EVENT_SCHEMA), returning=True)
    assert isinstance(stored, dict)  # noqa: S101 (returning=True gives the ids)
    return [_with_seq(e, stored[e.message_id]) for e in events if e.message_id in stored]


def _with_seq(event: Event, seq: int) -> Event:
    return Event(event.message_id, event.type, event.event, event.profile_id, event.timestamp,
                 traits=event.traits, received_at=event.received_at, seq=seq)  # fmt: skip
