"""Errors of the traits stage.

::

    SegmintError
    └── ConfigError                       (config/errors.py)
        └── TraitDefinitionError          a trait definition that cannot be computed
            └── TraitCycleError           derived traits that depend on themselves
    SegmintError
    └── TraitError                        computing traits failed
        ├── StaleStateError               incremental state written for other definitions
        ├── EventColumnError              an events table or mapping lacks a column traits read
        └── UnsupportedTraitError         a trait the SQL of a dialect cannot compute exactly

A :class:`TraitDefinitionError` names the trait and the key at fault; :func:`locate` in
:mod:`segmint.traits.validate` adds the file, line and a caret when the workspace file is
known. Nothing is computed from a definition that raised one.
"""

from __future__ import annotations

from segmint.config.errors import ConfigError
from segmint.errors import SegmintError


class TraitDefinitionError(ConfigError):
    """A trait definition is wrong: unknown aggregate or target, bad window, bad filter.

    Attributes:
        trait: The trait's name.
        key: The key of the definition at fault (``where``, ``within``, ``expr`` …).
        rule_error: The rule-language error behind it, when there is one.
    """

    def __init__(
        self, trait: str, key: str | None, message: str, *, hint: str | None = None
    ) -> None:
        self.trait = trait
        self.key = key
        self.rule_error: SegmintError | None = None
        path = f"traits.{trait}" + (f".{key}" if key else "")
        super().__init__(message, key_path=path, hint=hint)


class TraitCycleError(TraitDefinitionError):
    """Derived traits refer to each other in a cycle."""


class TraitError(SegmintError):
    """Computing traits failed."""


class StaleStateError(TraitError):
    """Stored incremental state was built from other trait definitions: rebuild it."""


class EventColumnError(TraitError, LookupError):
    """An events table (or its column mapping) lacks a column the traits read."""


class UnsupportedTraitError(TraitError, ValueError):
    """A trait whose aggregate the SQL of a dialect cannot compute exactly.

    Attributes:
        trait: The trait.
        dialect: The dialect.
    """

    def __init__(self, trait: str, dialect: str, message: str) -> None:
        self.trait = trait
        self.dialect = dialect
        super().__init__(message)
