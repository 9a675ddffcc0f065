"""Compact serialisation of incremental trait state, and its table ``trait_state``.

The bytes are one JSON array (orjson): a format version, the catalog fingerprint, the
watermark and one entry per aggregate trait. Windowed slots are pruned to the watermark
before writing. State written for other trait definitions is refused on load
(:class:`~segmint.traits.errors.StaleStateError`): rebuild it from the events.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import orjson

from segmint.common import in_lists
from segmint.store import Store, utcnow_naive
from segmint.traits.errors import StaleStateError
from segmint.traits.incremental import TraitEngine, TraitState

FORMAT = 1
SEQ_KEY = "trait_state.events_seq"
"""Meta key: the stored trait state reflects the events up to this ``seq`` (the real-time
engine writes it with each checkpoint, ``segmint rebuild`` when it finishes); a starting
engine catches up on the events after it."""
UNSAVED_KEY = "trait_state.unsaved"
"""Meta key: "1" while a real-time engine holds trait state it has not written yet (if it
stops so, the next engine drops the stored state and rebuilds it from the events)."""


def dumps(engine: TraitEngine, state: TraitState) -> bytes:
    """Serialise ``state`` (pruning windows to the watermark first)."""
    slots = state.slots
    for i, window in engine.windows:
        window.prune(slots[i], state.watermark)
    body = list(slots)
    for i, fold in engine.dumping:
        body[i] = fold.dump(body[i])
    return orjson.dumps([FORMAT, engine.catalog.fingerprint, state.watermark, body])


def loads(engine: TraitEngine, data: bytes) -> TraitState:
    """Read a state written by :func:`dumps` for the same catalog.

    Raises:
        StaleStateError: If it was written for other trait definitions or another format.
    """
    try:
        version, fingerprint, watermark, body = orjson.loads(data)
    except (orjson.JSONDecodeError, ValueError, TypeError) as exc:
        raise StaleStateError(f"unreadable trait state: {exc}") from None
    if version != FORMAT or fingerprint != engine.catalog.fingerprint:
        raise StaleStateError(
            "trait state was built for other trait definitions; run 'segmint rebuild'"
        )
    if len(body) != len(engine.folds):
        raise StaleStateError("trait state has another number of traits; run 'segmint rebuild'")
    slots = list(body)
    for i, fold in engine.loading:
        slots[i] = fold.load(slots[i])
    return TraitState(slots, watermark)


def save_states(
    store: Store, engine: TraitEngine, states: Iterable[tuple[str, TraitState]], at: datetime
) -> int:
    """Upsert the states of several profiles into ``trait_state``; return how many."""
    rows = [(pid, dumps(engine, s), utcnow_naive(at)) for pid, s in states]
    if not rows:
        return 0
    with store.transaction():
        _delete(store, [r[0] for r in rows])
        store.executemany(
            "INSERT INTO trait_state (profile_id, state, updated_at) VALUES (?, ?, ?)", rows
        )
    return len(rows)


def load_state(store: Store, engine: TraitEngine, profile_id: str) -> TraitState | None:
    """The stored state of one profile, or None when there is none.

    Raises:
        StaleStateError: If it was built for other trait definitions.
    """
    rows = store.fetchall("SELECT state FROM trait_state WHERE profile_id = ?", [profile_id])
    return loads(engine, bytes(rows[0][0])) if rows else None


def _delete(store: Store, ids: Sequence[Any]) -> None:
    for marks, chunk in in_lists(ids):
        store.execute(f"DELETE FROM trait_state WHERE profile_id IN ({marks})", chunk)
