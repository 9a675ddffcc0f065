"""Identity resolution: which profile a message belongs to, and when two profiles are one.

An *identity* is a ``(kind, value)`` pair: ``("user_id", "u1")``, ``("anonymous_id",
"a1")``, or a configured identifier trait (workspace ``identifiers``, ``email`` by default)
such as ``("email", "ann@example.com")``. Email values are compared trimmed and lowercased;
a value that cannot name anyone (``"none"``, a blank, ``5`` as an email) is no identity
(:mod:`segmint.intake.identifiers`), so it links nobody.
Identifier traits are read from identify traits and from ``context.traits`` of other calls.
Each identity belongs to exactly one profile (table ``identities``).

Rules, applied to each message in order:

1. **Target.** The message goes to the profile owning its userId; else to the first profile
   found through its identifier traits, then its anonymousId, that has no userId of its own
   (or, for a message without userId, any such profile); else to a new profile.
2. **Link.** Identities of the message nobody owns yet join the target.
3. **Merge.** An identity owned by another profile merges that profile into the target,
   unless both profiles already carry different userIds (rule 4). The survivor is the profile
   with a userId; otherwise the target. A merge moves every identity, re-attributes every
   event (``UPDATE events``), marks the old profile ``merged_into`` and is recorded in
   ``profile_merges``. The old profile id is never reused.
4. **Conflict.** One identity claimed by two different userIds (an anonymousId or an email
   seen with ``u1`` and later with ``u2``): **the first userId keeps it**. The message goes to
   its own userId's profile (new if need be), the contested identity stays where it was, and
   the conflict is recorded in ``identity_conflicts``. Two known users are never merged
   implicitly.
5. **Alias** is the explicit exception: ``alias(userId=U, previousId=P)`` merges the profile
   owning ``P`` (as a userId, else as an anonymousId) into the profile of ``U``, even when both
   carry userIds; a profile may then hold several userIds. When ``U`` is new it simply joins
   ``P``'s profile; when ``P`` is new it joins ``U``'s as an anonymousId.

A new profile's id is ``p_`` and a hash of the identity that created it, so replaying the same
events into an empty store gives the same ids.

Traits are not stored here. Events are the source of truth: after a merge all events of both
profiles belong to the survivor, so trait values computed from them follow **most recent
wins** (the identify call with the latest timestamp gives a ``from: identify`` trait its
value); :func:`identify_traits` computes that view.

The graph is cached in memory and trusted while the store's ``intake_generation`` counter
(bumped by every intake transaction, which also serialises intake writers on PostgreSQL) is
the one this process wrote last; otherwise it is reloaded.

This module also owns the two questions every later stage asks of identity data:
:func:`follow_merges` / :func:`merge_roots` (which profile survives a merged one; the only
walk of ``merged_into`` chains) and :func:`resolve_person` (which profile an id a person
typed names: every CLI command and API endpoint that takes a person goes through it).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from segmint.common import nearest
from segmint.intake.errors import AmbiguousPersonError, UnknownPersonError
from segmint.intake.identifiers import identifier_value, usable_ids
from segmint.intake.payloads import Message
from segmint.store import Store

USER = "user_id"
ANONYMOUS = "anonymous_id"

Identity = tuple[str, str]


@dataclass(frozen=True)
class Merge:
    """Profile ``from_profile`` was merged into ``into_profile``."""

    from_profile: str
    into_profile: str
    occurred_at: datetime
    reason: str


@dataclass(frozen=True)
class Conflict:
    """An identity claimed by a profile with a different userId than its owner's."""

    kind: str
    value: str
    owner_profile: str
    claimant_profile: str
    message_id: str
    occurred_at: datetime


@dataclass
class Changes:
    """What resolving a batch changed, to be written in the same transaction."""

    new_profiles: dict[str, datetime] = field(default_factory=dict)
    new_identities: dict[Identity, datetime] = field(default_factory=dict)
    merges: list[Merge] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)
    ignored: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """messageId → identifier traits it sent with a value not usable as an identity."""


def profile_id_for(identity: Identity) -> str:
    """The id of a profile created for ``identity`` (stable, so rebuilds agree)."""
    digest = hashlib.sha256(f"{identity[0]}\x1f{identity[1]}".encode()).hexdigest()
    return f"p_{digest[:24]}"


class IdentityGraph:
    """The identities → profile map, with the rules of the module docstring."""

    def __init__(
        self,
        identifiers: Sequence[str] = ("email",),
        index: Callable[[str, str], str] | None = None,
    ) -> None:
        self.identifiers = tuple(identifiers)
        # With PII encryption on, identifier values are kept as keyed hashes (privacy).
        self.index = index
        self.owner: dict[Identity, str] = {}
        self.members: dict[str, list[Identity]] = {}
        self.users: dict[str, set[str]] = {}
        self.merged_into: dict[str, str] = {}

    def load(self, store: Store) -> None:
        """Replace the cache with the store's identities."""
        self.owner.clear()
        self.members.clear()
        self.users.clear()
        self.merged_into.clear()
        for kind, value, pid in store.fetchall("SELECT kind, value, profile_id FROM identities"):
            self._attach((kind, value), pid)
        for pid, into in store.fetchall(
            "SELECT profile_id, merged_into FROM profiles WHERE merged_into IS NOT NULL"
        ):
            self.merged_into[pid] = into

    def root(self, profile_id: str) -> str:
        """Follow merges from ``profile_id`` to the surviving profile."""
        return follow_merges(self.merged_into, profile_id)

    def resolve(self, message: Message, changes: Changes) -> str:
        """Return the profile of ``message``, recording links, merges and conflicts."""
        if message.type == "alias" and message.user_id and message.previous_id:
            return self._alias(message, changes)
        ignored: list[str] = []
        message = usable_ids(message, ignored)
        claims = self.claims(message, ignored)
        if ignored:
            changes.ignored[message.message_id] = tuple(ignored)
        owner = self.owner.get(claims[0])
        if owner is not None and all(self.owner.get(c) == owner for c in claims[1:]):
            return owner  # the usual case: nothing new to link
        target = self._target(message, claims, changes)
        for identity in claims:
            target = self._link(identity, target, message, changes)
        return target

    def claims(self, message: Message, ignored: list[str] | None = None) -> list[Identity]:
        """The identities a message carries, strongest first.

        Args:
            message: The message.
            ignored: If given, receives the name of each identifier trait the message sent
                with a value not usable as an identity (:mod:`segmint.intake.identifiers`).
        """
        found: list[Identity] = []
        if message.user_id is not None:
            found.append((USER, message.user_id))
        traits = message.traits if message.type == "identify" else _context_traits(message)
        if traits:
            for name in self.identifiers:
                raw = traits.get(name)
                value = identifier_value(name, raw)
                if value is not None:
                    found.append((name, self.index(name, value) if self.index else value))
                elif raw is not None and ignored is not None:
                    ignored.append(name)  # junk ("none", "", 5): not linked, only counted
        if message.anonymous_id is not None:
            found.append((ANONYMOUS, message.anonymous_id))
        return found

    def _target(self, message: Message, claims: list[Identity], changes: Changes) -> str:
        if message.user_id is not None:
            owner = self.owner.get((USER, message.user_id))
            if owner is not None:
                return owner
        for identity in claims:
            owner = self.owner.get(identity)
            if owner is not None and (message.user_id is None or not self.users[owner]):
                return owner
        return self._new_profile(claims[0], message.received_at, changes)

    def _link(self, identity: Identity, target: str, message: Message, changes: Changes) -> str:
        owner = self.owner.get(identity)
        if owner is None:
            self._attach(identity, target)
            changes.new_identities[identity] = message.received_at
            return target
        if owner == target:
            return target
        mine, theirs = self.users[target], self.users[owner]
        if mine and theirs and mine != theirs:
            conflict = Conflict(*identity, owner, target, message.message_id, message.received_at)
            changes.conflicts.append(conflict)
            return target
        into, gone = (owner, target) if theirs and not mine else (target, owner)
        self.merge(gone, into, message, changes, f"{message.type} shares {identity[0]}")
        return into

    def _alias(self, message: Message, changes: Changes) -> str:
        assert message.user_id is not None and message.previous_id is not None
        user = (USER, message.user_id)
        previous = self.owner.get((USER, message.previous_id)) or self.owner.get(
            (ANONYMOUS, message.previous_id)
        )
        target = self.owner.get(user)
        if target is None:
            target = previous or self._new_profile(user, message.received_at, changes)
            self._attach(user, target)
            changes.new_identities[user] = message.received_at
        if previous is None:
            identity = (ANONYMOUS, message.previous_id)
            self._attach(identity, target)
            changes.new_identities[identity] = message.received_at
        elif previous != target:
            self.merge(previous, target, message, changes, "alias")
        if message.anonymous_id is not None:
            target = self._link((ANONYMOUS, message.anonymous_id), target, message, changes)
        return target

    def merge(self, gone: str, into: str, message: Message, changes: Changes, reason: str) -> None:
        """Merge profile ``gone`` into ``into`` in the cache and record it in ``changes``."""
        for identity in self.members.pop(gone, []):
            self._attach(identity, into)
        self.users[into] |= self.users.pop(gone, set())
        self.merged_into[gone] = into
        changes.merges.append(Merge(gone, into, message.received_at, reason))

    def _new_profile(self, identity: Identity, at: datetime, changes: Changes) -> str:
        pid = profile_id_for(identity)
        self.members.setdefault(pid, [])
        self.users.setdefault(pid, set())
        changes.new_profiles[pid] = at
        return pid

    def _attach(self, identity: Identity, pid: str) -> None:
        self.owner[identity] = pid
        self.members.setdefault(pid, []).append(identity)
        users = self.users.setdefault(pid, set())
        if identity[0] == USER:
            users.add(identity[1])


def _context_traits(message: Message) -> dict[str, Any]:
    traits = message.context.get("traits")
    return traits if isinstance(traits, dict) else {}


def payload_identities(payload: Any, identifiers: Sequence[str] = ("email",)) -> list[Identity]:
    """Every identity a raw message names, as far as it can be read (plaintext values).

    Unlike :meth:`IdentityGraph.claims` this reads a message that may not decode (what
    quarantine keeps): its ``userId``, ``anonymousId`` and ``previousId``, and identifier
    values in ``traits``, ``context.traits`` and ``properties``. Privacy seals a quarantined
    payload under all of them, so erasing anyone it names makes it unreadable.
    """
    if not isinstance(payload, dict):
        return []
    found: list[Identity] = []
    ids = (
        ("userId", USER),
        ("anonymousId", ANONYMOUS),
        ("previousId", USER),
        ("previousId", ANONYMOUS),
    )  # fmt: skip  (an alias's previousId may be either)
    for key, kind in ids:
        value = payload.get(key)
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
            found.append((kind, str(value)))
    context = payload.get("context")
    inner = context.get("traits") if isinstance(context, dict) else None
    for values in (payload.get("traits"), inner, payload.get("properties")):
        if isinstance(values, dict):
            for name in identifiers:
                value = identifier_value(name, values.get(name))
                if value is not None:
                    found.append((name, value))
    return list(dict.fromkeys(found))


def normalise_address(address: str) -> str:
    """An email address as intake keeps it (trimmed, lowercased): the key of every lookup."""
    return address.strip().lower()


def identify_traits(store: Store, profile_id: str) -> dict[str, Any]:
    """A profile's traits from its identify calls, the most recent (by timestamp) winning.

    Keys absent from a later call keep their earlier value; an explicit null clears one.
    """
    rows = store.fetchall(
        "SELECT traits FROM events WHERE profile_id = ? AND type = 'identify' "
        "ORDER BY timestamp, seq",
        [profile_id],
    )
    merged: dict[str, Any] = {}
    for (raw,) in rows:
        traits = orjson.loads(raw) if isinstance(raw, str | bytes) else raw
        merged.update(traits or {})
    return {k: v for k, v in merged.items() if v is not None}


# --- merges: the one walk of merged_into chains ---------------------------------------------


def follow_merges(merged: Mapping[str, str], profile_id: str) -> str:
    """Return the profile that survives ``profile_id``, following ``merged`` to its end.

    Args:
        merged: Profile merged away → the profile it was merged into (one hop each).
        profile_id: Any profile id; one never merged is its own survivor.

    A cycle (which intake never writes) ends the walk at the last profile before it repeats.
    """
    seen = {profile_id}
    while (into := merged.get(profile_id)) is not None and into not in seen:
        seen.add(into)
        profile_id = into
    return profile_id


def merge_chains(merged: Mapping[str, str]) -> dict[str, str]:
    """Every key of ``merged`` (one hop each) mapped to the profile that survives it."""
    return {gone: follow_merges(merged, gone) for gone in merged}


def merge_roots(store: Store) -> dict[str, str]:
    """Every profile merged away, mapped to the profile that survives it (chains followed)."""
    rows = store.fetchall(
        "SELECT profile_id, merged_into FROM profiles WHERE merged_into IS NOT NULL"
    )
    return merge_chains({str(gone): str(into) for gone, into in rows})


def survivor(store: Store, profile_id: str) -> str | None:
    """The profile that survives ``profile_id`` today, or None if no such profile exists.

    A profile exists when intake wrote it (``profiles``), or when events or trait values
    name it (a store loaded in bulk, without intake).
    """
    hops: dict[str, str] = {}
    current = profile_id
    while current not in hops:
        rows = store.fetchall("SELECT merged_into FROM profiles WHERE profile_id = ?", [current])
        if not rows:
            return current if current != profile_id or _named(store, current) else None
        if rows[0][0] is None:
            return current
        hops[current] = str(rows[0][0])
        current = hops[current]
    return follow_merges(hops, profile_id)


def _named(store: Store, profile_id: str) -> bool:
    return bool(
        store.fetchall("SELECT 1 FROM trait_values WHERE profile_id = ?", [profile_id])
        or store.fetchall("SELECT 1 FROM events WHERE profile_id = ? LIMIT 1", [profile_id])
    )


# --- the resolver: any id a person types → one profile --------------------------------------

PROFILE = "profile_id"
_KIND_ALIASES = {"profile": PROFILE, "userid": USER, "anonymousid": ANONYMOUS}


def person_kinds(identifiers: Sequence[str] = ("email",)) -> tuple[str, ...]:
    """The kinds a reference may name in ``KIND:VALUE``, in the order bare values are tried."""
    return (PROFILE, USER, *[k for k in identifiers if k not in (USER, ANONYMOUS)], ANONYMOUS)


def _identity_value(kind: str, value: str) -> str | None:
    """``value`` as intake stores it for ``kind`` (emails trimmed and lowercased)."""
    if kind in (USER, ANONYMOUS, PROFILE):
        return value or None  # stored as sent (intake does not trim ids)
    return identifier_value(kind, value)


def split_ref(ref: str, identifiers: Sequence[str] = ("email",)) -> tuple[str | None, str]:
    """Split ``KIND:VALUE`` into its kind and value; a bare value has kind None.

    A prefix that is no known kind (``urn:x``, a user id with a colon) is part of the value.
    """
    prefix, sep, value = ref.partition(":")
    if not sep:
        return None, ref
    kind = prefix.strip().lower()
    kind = _KIND_ALIASES.get(kind.replace("_", ""), kind)
    return (kind, value) if kind in person_kinds(identifiers) else (None, ref)


def person_matches(
    store: Store, ref: str, identifiers: Sequence[str] = ("email",)
) -> dict[str, str]:
    """Every reading of ``ref`` that names a profile: ``KIND:VALUE`` → the surviving profile.

    Args:
        store: The store.
        ref: A profile id, a user id, an anonymous id, an identifier (email, normalised as
            intake normalises it) or ``KIND:VALUE``.
        identifiers: The workspace's identifier traits (``email`` by default).
    """
    kind, value = split_ref(ref, identifiers)
    kinds = [kind] if kind is not None else list(person_kinds(identifiers))
    found: dict[str, str] = {}
    privacy = getattr(store, "privacy", None)  # set by the workspace (segmint.privacy)
    for each in kinds:
        key = _identity_value(each, value)
        if key is None:
            continue
        shown = f"{each}:{key}"  # as typed (normalised), never the keyed hash kept for it
        if each not in (USER, ANONYMOUS, PROFILE) and privacy is not None:
            key = privacy.identity_index(each, key)  # kept as a keyed hash (PII encryption)
        if each == PROFILE:
            survives = survivor(store, key)
        else:
            owner = _owner(store, each, key)
            survives = None if owner is None else survivor(store, owner) or owner
        if survives is not None:
            found[shown] = survives
    return found


def _owner(store: Store, kind: str, value: str) -> str | None:
    rows = store.fetchall(
        "SELECT profile_id FROM identities WHERE kind = ? AND value = ?", [kind, value]
    )
    return str(rows[0][0]) if rows else None


def resolve_person(
    store: Store, ref: str, identifiers: Sequence[str] = ("email",), *, field: str | None = None
) -> str:
    """Return the profile an id a person typed names, following merges to the survivor.

    Args:
        store: The store.
        ref: A profile id (``p_…``), a user id, an anonymous id, an email (any case, spaces
            around it ignored) or another identifier trait, or ``KIND:VALUE`` to say which
            (``user_id:42``, ``email:ada@example.com``, ``anonymous_id:a-9``,
            ``profile_id:p_…``).
        identifiers: The workspace's identifier traits (``email`` by default).
        field: The input field ``ref`` came from, carried by the error.

    Raises:
        UnknownPersonError: Nothing matches; the message says what was tried.
        AmbiguousPersonError: A bare value names two people (one's user id, another's
            email); the message lists them and asks for ``KIND:VALUE``.
    """
    if not ref.strip():
        message = "no id given: name a person by profile id, user id, email or KIND:VALUE"
        raise UnknownPersonError(ref, message, field)
    found = person_matches(store, ref, identifiers)
    people = sorted(set(found.values()))
    if len(people) == 1:
        return people[0]
    if not people:
        message = _unknown_message(ref, identifiers)
        kind, value = split_ref(ref, identifiers)
        other = sorted(person_matches(store, value, identifiers)) if kind is not None else []
        if other:  # the right value under the wrong kind (an email typed as user_id:…)
            message += "; " + " or ".join(repr(k) for k in other) + " matches: did you mean it?"
        elif ref.strip() != ref and person_matches(store, ref.strip(), identifiers):
            # pasted with a space or tab: ids are kept as sent, so it is asked, not assumed
            message += f"; {ref.strip()!r} (without the spaces around it) matches: did you mean it?"
        raise UnknownPersonError(ref, message, field)
    listed = ", ".join(f"{k} is {pid}" for k, pid in sorted(found.items()))
    message = (
        f"{ref!r} names more than one person ({listed}); "
        "say which with KIND:VALUE, e.g. " + " or ".join(repr(k) for k in sorted(found))
    )
    raise AmbiguousPersonError(ref, message, found, field)


def _unknown_message(ref: str, identifiers: Sequence[str]) -> str:
    kind, value = split_ref(ref, identifiers)
    kinds = person_kinds(identifiers)
    if kind is not None:
        return f"no person has {kind} {value!r}"
    *first, last = [k.replace("_", " ") for k in kinds]
    message = f"no person matches {ref!r}: tried it as {', '.join(first)} and {last}"
    prefix, sep, rest = ref.partition(":")
    typo = nearest(prefix.strip().lower(), kinds) if sep else None
    return f"{message}; did you mean '{typo}:{rest}'?" if typo else message
