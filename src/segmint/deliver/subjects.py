"""Whom a consent statement is about (from the id a person typed), and what counts for them.

The CLI (``consent set/show/import``) and ``POST /v1/consent`` take any id the resolver
takes (:func:`segmint.intake.identity.resolve_person`). An id that names nobody is refused,
except an email address nobody has yet: that statement is kept for the address (see
:mod:`segmint.deliver.consent`) and counts once a profile has it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from segmint.common import looks_like_address
from segmint.config.model import ConsentDef
from segmint.deliver.consent import (
    EMAIL,
    ConsentChange,
    ConsentStatus,
    address_history,
    consent_history,
    record_address_consent,
    record_consent,
)
from segmint.intake.errors import UnknownPersonError
from segmint.intake.identity import normalise_address, resolve_person, split_ref
from segmint.profiles import load_profile
from segmint.store import Store


@dataclass(frozen=True)
class ConsentSubject:
    """Whom a consent statement is about: a known profile, or an address nobody has yet."""

    profile_id: str | None = None
    address: str | None = None

    def __str__(self) -> str:
        if self.profile_id is not None:
            return self.profile_id
        return f"{EMAIL}:{self.address} (no profile has it yet)"


Erased = Callable[[str], "str | None"]
"""What to say of an id that names an erased person (when, which receipt), or None:
:func:`segmint.privacy.erased.erased_note` bound to the workspace's privacy."""


def consent_subject(
    store: Store,
    ref: str,
    identifiers: Sequence[str] = (EMAIL,),
    *,
    field: str | None = None,
    erased: Erased | None = None,
) -> ConsentSubject:
    """Find whom a consent statement about ``ref`` is about.

    ``ref`` goes through :func:`segmint.intake.identity.resolve_person` (profile id, user id,
    anonymous id, email, ``KIND:VALUE``, merges followed). When nobody matches and ``ref`` is
    an address (``email:ADDRESS``, or a bare value shaped like one), the statement is about
    that address, normalised as intake normalises emails; unless ``erased`` says that
    ``ref`` names someone erased: their address is not kept again.

    Raises:
        UnknownPersonError: Nobody matches and ``ref`` is no address (or ``email:`` is
            followed by something that is not an address), or ``ref`` names someone erased.
        AmbiguousPersonError: A bare value names two people.
    """
    try:
        return ConsentSubject(profile_id=resolve_person(store, ref, identifiers, field=field))
    except UnknownPersonError as exc:
        note = erased(ref) if erased is not None else None
        if note is not None:
            raise UnknownPersonError(ref, note, field) from None
        address = _address_in(ref, identifiers)
        if address is None:
            raise
        if not looks_like_address(address):
            message = f"{ref!r} is not an email address ({exc}); write email:name@example.com"
            raise UnknownPersonError(ref, message, field) from None
        return ConsentSubject(address=normalise_address(address))


def _address_in(ref: str, identifiers: Sequence[str]) -> str | None:
    prefix, sep, rest = ref.partition(":")
    if sep and prefix.strip().lower() == EMAIL:
        return rest
    kind, value = split_ref(ref, identifiers)
    # a colon says KIND:VALUE was meant (``emial:ann@example.com``), not an odd address
    bare = kind is None and ":" not in value
    return value if bare and looks_like_address(value) else None


def record_subject_consent(
    store: Store,
    subject: ConsentSubject,
    topic: str,
    status: ConsentStatus,
    *,
    source: str,
    at: datetime,
) -> ConsentChange:
    """Record a change for whom :func:`consent_subject` found: a profile or an address."""
    if subject.profile_id is not None:
        return record_consent(store, subject.profile_id, topic, status, source=source, at=at)
    assert subject.address is not None
    return record_address_consent(store, subject.address, topic, status, source=source, at=at)


def history_of(
    store: Store,
    ref: str,
    consent: ConsentDef,
    *,
    identifiers: Sequence[str] = (EMAIL,),
    email_trait: str = EMAIL,
) -> tuple[ConsentSubject, list[ConsentChange]]:
    """Find whom ``ref`` names and every consent statement that counts for them.

    For a profile: :func:`consent_history` with its consent traits not recorded yet and the
    address campaigns send it (trait ``email_trait``). For an address no profile has: the
    statements recorded about it.

    Raises:
        UnknownPersonError: Nobody matches ``ref``, and no statement names it as an address.
        AmbiguousPersonError: A bare value names two people.
    """
    subject = consent_subject(store, ref, identifiers, field="PERSON")
    if subject.profile_id is None:
        assert subject.address is not None
        found = address_history(store, subject.address)
        if not found:
            raise UnknownPersonError(
                ref, f"no person and no consent statement has the address {subject.address!r}"
            )
        return subject, found
    profile = load_profile(store, subject.profile_id)
    address = profile.traits.get(email_trait) if profile is not None else None
    addresses = [address] if isinstance(address, str) and looks_like_address(address) else []
    history = consent_history(store, subject.profile_id, consent=consent, addresses=addresses)
    return subject, history
