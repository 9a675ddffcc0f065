"""What applying a pass of triggers reads, read once for all its profiles.

The engine applies many triggers in one pass (see :meth:`JourneyEngine.tick`). Each
trigger needs its profile's active instances, its latest entry of a journey, and whether it
is in a journey's audience; :class:`PassLookup` reads them for every profile of the pass
with a query per table (and per journey or segment asked about), not per trigger. The
profiles of a pass are distinct, so what one trigger writes is never what another reads.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from segmint.common import in_lists
from segmint.journeys.instances import Instance, Instances
from segmint.store import Store


@dataclass
class PassLookup:
    """The stored state of a pass's profiles, as its triggers find it.

    Attributes:
        instances: The instances' tables.
        profile_ids: The pass's profiles.
        active: Per profile, its active instances (of every journey), in entry order.
    """

    instances: Instances
    profile_ids: list[str]
    active: dict[str, list[Instance]] = field(default_factory=dict)
    _entries: dict[str, dict[str, tuple[int, datetime]]] = field(default_factory=dict)
    _members: dict[str, set[str]] = field(default_factory=dict)

    @classmethod
    def read(cls, instances: Instances, profile_ids: Iterable[str]) -> PassLookup:
        """Read the active instances of ``profile_ids`` (the rest is read when asked)."""
        ids = sorted(set(profile_ids))
        found = cls(instances, ids)
        for inst in instances.of_profiles(ids):
            found.active.setdefault(inst.profile_id, []).append(inst)
        return found

    @property
    def store(self) -> Store:
        """The store the lookups read."""
        return self.instances.store

    def active_of(self, profile_id: str) -> list[Instance]:
        """The profile's active instances (of every journey)."""
        return self.active.get(profile_id, [])

    def entry(self, journey: str, profile_id: str) -> tuple[int, datetime] | None:
        """The profile's latest entry number and instant in ``journey`` (None: never)."""
        if journey not in self._entries:
            self._entries[journey] = self.instances.entries(journey, self.profile_ids)
        return self._entries[journey].get(profile_id)

    def member(self, segment: str, profile_id: str) -> bool:
        """Whether the profile is a member of ``segment``."""
        if segment not in self._members:
            members: set[str] = set()
            for marks, chunk in in_lists(self.profile_ids):
                members.update(
                    str(r[0])
                    for r in self.store.fetchall(
                        f"SELECT profile_id FROM memberships WHERE segment = ? "
                        f"AND profile_id IN ({marks})",
                        [segment, *chunk],
                    )
                )
            self._members[segment] = members
        return profile_id in self._members[segment]
