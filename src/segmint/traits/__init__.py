"""Computed traits: definitions, batch SQL over all profiles, incremental real-time state."""

from __future__ import annotations

from segmint.traits.catalog import TraitCatalog, build_catalog
from segmint.traits.errors import (
    StaleStateError,
    TraitCycleError,
    TraitDefinitionError,
    TraitError,
)
from segmint.traits.incremental import TraitEngine, TraitState
from segmint.traits.model import TraitSpec

__all__ = [
    "StaleStateError",
    "TraitCatalog",
    "TraitCycleError",
    "TraitDefinitionError",
    "TraitEngine",
    "TraitError",
    "TraitSpec",
    "TraitState",
    "build_catalog",
]
