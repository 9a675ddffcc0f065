"""Types of the rule language and the schema rules are checked against.

``dynamic`` is the type of a value whose type is only known at run time: an event property
read from JSON in a ``where`` filter, or a computed trait of a property with no declared type.
A dynamic value is coerced to the type of what it meets (see :mod:`segmint.rules.semantics`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal as L

RuleType = L["boolean", "number", "string", "timestamp", "interval", "list", "dynamic", "null"]
VALUE_TYPES: tuple[RuleType, ...] = ("boolean", "number", "string", "timestamp", "list", "dynamic")
COERCIBLE: frozenset[RuleType] = frozenset({"number", "string", "boolean"})


@dataclass(frozen=True, eq=False)
class TraitSchema:
    """What a rule may refer to: trait names with their types, and segment names.

    Attributes:
        types: Trait name → type.
        segments: Known segment names, or None to accept any ``in_segment`` name.
        default: The type of names missing from ``types``; None makes them errors. Filters
            over event properties use ``dynamic``.
        profile: True for rules over a profile; False for ``where`` filters over one event,
            where ``performed``, ``last_performed``, ``in_segment`` and time are refused.
    """

    types: Mapping[str, RuleType] = field(default_factory=dict)
    segments: frozenset[str] | None = None
    default: RuleType | None = None
    profile: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "types", MappingProxyType(dict(self.types)))

    @classmethod
    def event_properties(cls, types: Mapping[str, RuleType] | None = None) -> TraitSchema:
        """The schema of a ``where`` filter: any property name, ``dynamic`` unless declared."""
        return cls(types or {}, frozenset(), "dynamic", profile=False)

    def type_of(self, name: str) -> RuleType | None:
        """The type of ``name``, or None if it is unknown."""
        return self.types.get(name, self.default)

    def with_segments(self, names: Iterable[str]) -> TraitSchema:
        """A copy that knows the given segment names."""
        return TraitSchema(self.types, frozenset(names), self.default, self.profile)

    def to_json(self) -> dict[str, object]:
        """A JSON-ready description: trait types and segment names."""
        return {
            "traits": dict(self.types),
            "segments": sorted(self.segments) if self.segments is not None else None,
        }
