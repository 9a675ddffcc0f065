"""Computed traits: definitions, batch SQL over all profiles, incremental real-time state.

Real-time trait state has one owner, here: the engine (:class:`TraitEngine`), the events it
folds (:func:`row_to_event`, :func:`fold_events`) and the stored state and values
(:func:`load_states`, :func:`save_traits`, :func:`drop_states`, :func:`drop_all_states`).
Membership's real-time engine uses these; nothing else writes ``trait_state``.
"""

from __future__ import annotations

from segmint.traits.catalog import TraitCatalog, build_catalog
from segmint.traits.errors import (
    StaleStateError,
    TraitCycleError,
    TraitDefinitionError,
    TraitError,
)
from segmint.traits.incremental import TraitEngine, TraitState
from segmint.traits.live import (
    EVENT_COLUMNS,
    fold_events,
    profile_events,
    profile_traits,
    rebuild,
    row_to_event,
)
from segmint.traits.model import TraitSpec
from segmint.traits.position import (
    APPLIED_KEY,
    CommitPosition,
    adopt_restored,
    read_position,
    write_position,
)
from segmint.traits.state import (
    SEQ_KEY,
    SERVING_KEY,
    UNSAVED_KEY,
    EventBound,
    drop_all_states,
    drop_states,
    load_state,
    load_states,
    save_traits,
    select_profiles,
    stopped_unsaved,
    usable_states,
    values_json,
)

__all__ = [
    "APPLIED_KEY",
    "EVENT_COLUMNS",
    "SEQ_KEY",
    "SERVING_KEY",
    "UNSAVED_KEY",
    "CommitPosition",
    "EventBound",
    "StaleStateError",
    "TraitCatalog",
    "TraitCycleError",
    "TraitDefinitionError",
    "TraitEngine",
    "TraitError",
    "TraitSpec",
    "TraitState",
    "adopt_restored",
    "build_catalog",
    "drop_all_states",
    "drop_states",
    "fold_events",
    "load_state",
    "load_states",
    "profile_events",
    "profile_traits",
    "read_position",
    "rebuild",
    "row_to_event",
    "save_traits",
    "select_profiles",
    "stopped_unsaved",
    "usable_states",
    "values_json",
    "write_position",
]
