"""What a template sees: the profile's traits, its segments, and the names segmint adds.

Variables, later ones winning:

- the sandbox globals ``range`` and ``namespace``;
- every trait's ``default`` from ``segmint.yaml``, then the profile's non-null traits
  (a null trait is *missing*, so ``default`` applies);
- ``profile_id``; ``segments`` (all memberships, sorted: ``'vip' in segments`` tests one,
  ``{{ segments }}`` prints ``high_value, vip``; see :class:`SegmentNames`);
  ``segment`` (the profile's segment in the exclusive group ``email.group``: its member
  segment there, else the group's default segment, else None);
- ``extra`` from the caller (``unsubscribe_url``, ``preferences_url``…);
- while rendering the body: ``subject`` and ``preheader``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from segmint.config.model import WorkspaceDef
from segmint.errors import SegmintError
from segmint.personalize.filters import FILTERS, zone
from segmint.personalize.htmltext import LINK_FILTER
from segmint.personalize.sandbox import (
    ITER_NAME,
    Budget,
    Sandbox,
    bounded_filters,
    budget_iter,
    link,
)
from segmint.profiles import Profile

BUILTIN_TRAITS = ("user_id", "anonymous_id", "first_seen_at", "last_seen_at", "event_count")
"""Traits every profile may have besides the declared ones (the traits catalog adds any
further built-ins it defines)."""

CONTEXT_NAMES = ("profile_id", "segments", "segment", "subject", "preheader")
"""Names segmint puts in every template's context."""

EXTRA_NAMES = ("unsubscribe_url", "preferences_url", "view_in_browser_url", "campaign", "date")
"""Names delivery passes through ``extra``; known to lint, empty when not given."""

_REMOVED_GLOBALS = ("cycler", "joiner", "lipsum", "dict")


class SegmentNames(tuple[str, ...]):
    """A profile's segment names, sorted: a tuple that prints as ``a, b`` in a template.

    ``'vip' in segments``, ``segments | length``, ``segments | join(' / ')`` and loops work
    as on any tuple; only its text differs, so ``{{ segments }}`` reads ``high_value, vip``
    rather than Python's ``('high_value', 'vip')`` (and nothing for no segment).
    """

    __slots__ = ()

    def __str__(self) -> str:
        """Return the names separated by commas."""
        return ", ".join(self)


def trait_types(definition: WorkspaceDef) -> dict[str, str]:
    """Trait name → type from the traits catalog (built-ins included); {} if it fails."""
    from segmint.traits import build_catalog

    try:
        return build_catalog(definition).types()
    except SegmintError:
        return {}


class ContextBuilder:
    """Builds template variables for profiles of one workspace."""

    def __init__(self, definition: WorkspaceDef) -> None:
        """Precompute defaults, the exclusive group's order and the known names."""
        self.definition = definition
        traits = definition.traits
        self.defaults = {n: t.default for n, t in traits.items() if t.default is not None}
        self.group = definition.email.group
        members = [
            (-seg.priority, name)
            for name, seg in definition.segments.items()
            if self.group and seg.group == self.group and not seg.default
        ]
        self.group_order = tuple(name for _, name in sorted(members))
        self.group_default = next(
            (
                name
                for name, seg in definition.segments.items()
                if self.group and seg.group == self.group and seg.default
            ),
            None,
        )
        self.tz_trait = definition.email.timezone_trait
        self.types = trait_types(definition)
        names = (*traits, *self.types, *BUILTIN_TRAITS, *CONTEXT_NAMES, *EXTRA_NAMES)
        self.known_names = frozenset(names)
        self.base: dict[str, Any] = {}

    def install(self, env: Sandbox) -> None:
        """Add segmint's filters to ``env`` and remove the globals templates do not need."""
        env.filters.update(bounded_filters(env.filters, env.max_size))
        env.filters.update(FILTERS)
        env.filters[LINK_FILTER] = link
        for name in _REMOVED_GLOBALS:
            env.globals.pop(name, None)
        env.globals[ITER_NAME] = budget_iter
        self.base = dict(env.globals)

    def group_segment(self, segments: frozenset[str]) -> str | None:
        """The profile's segment in the configured exclusive group (see module docs)."""
        for name in self.group_order:
            if name in segments:
                return name
        return self.group_default

    def build(
        self, profile: Profile, extra: Mapping[str, Any] | None, budget: Budget
    ) -> dict[str, Any]:
        """Return the variables for ``profile``; sets ``budget.tz`` to the profile's zone."""
        variables = dict(self.base)
        variables.update(self.defaults)
        for name, value in profile.traits.items():
            if value is not None:
                variables[name] = value
        variables["profile_id"] = profile.profile_id
        variables["segments"] = SegmentNames(sorted(profile.segments))
        variables["segment"] = self.group_segment(profile.segments)
        if extra:
            variables.update(extra)
        tz_name = variables.get(self.tz_trait)
        budget.tz = zone(tz_name if isinstance(tz_name, str) else None, self.definition.timezone)
        return variables
