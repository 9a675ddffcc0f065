"""The consent and suppression gate: may this profile receive this campaign's topic?"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from segmint.clock import LATEST
from segmint.common import looks_like_address
from segmint.config.model import ConsentDef
from segmint.deliver.consent import (
    SUPPRESSION_REASONS,
    Timed,
    address_key,
    later,
    latest_address_consents,
    latest_consents,
    stated_after,
    suppressions,
)
from segmint.measure.assign import in_global_holdout
from segmint.profiles import Profile
from segmint.store import Store

SKIP_REASONS = (
    "no_email",
    "suppressed_bounce",
    "complained",
    "suppressed",
    "unsubscribed",
    "no_consent",
    "global_holdout",
    "left_segment",
    "holdout",
    "variant_delay",
    "duplicate_address",
    "sent_before_merge",
)
"""Why a profile is skipped, in the order the gate checks (``global_holdout``: in the
workspace-wide holdout, :mod:`segmint.measure.assign`); then ``left_segment`` (no longer
a member when a resumed send reached it), ``holdout`` (the campaign experiment's arm that is
sent nothing), ``variant_delay`` (a send-time arm whose delay has not passed: a later run
sends it), ``duplicate_address`` (another profile of the
campaign has the same address) and ``sent_before_merge`` (the campaign already went to a
profile merged into this one since)."""


def address_of(profile: Profile, email_trait: str) -> str | None:
    """Return the profile's email address if it looks deliverable, else None."""
    value = profile.traits.get(email_trait)
    if not isinstance(value, str):
        return None
    address = value.strip()
    return address if looks_like_address(address) else None


class ConsentGate:
    """Decide, for one campaign topic at ``as_of``, who may be sent marketing email.

    The rules, in order: a profile needs a deliverable address (``no_email``); the address
    must not be suppressed (``suppressed_bounce``, ``complained``, ``suppressed``); the
    latest consent change for the topic (or ``*``) must not be ``unsubscribed``
    (``unsubscribed``) or ``denied`` (``no_consent``); under the ``opt_in`` policy it must
    exist and be ``granted`` (``no_consent``), under ``opt_out`` no change means yes; last,
    a profile in the workspace's global holdout gets no marketing (``global_holdout``).

    The latest change is the later of the profile's own (with its merged profiles' and its
    email identities', see :func:`~segmint.deliver.consent.latest_consents`) and the latest
    statement about the address being sent to: an opt-out recorded for an address before
    any profile had it stops the email once one does.

    A message is sent when the gate is asked, whatever ``as_of`` says: so a withdrawal
    stored with a later instant than ``as_of`` (a run at an earlier instant, ``campaign
    send --as-of -2d``) stops it too, as suppressions do. A grant after ``as_of`` does not
    count: the stricter reading wins.

    Args:
        store: The store to read consents and suppressions from (once, at construction).
        consent: The workspace's consent policy.
        topic: The campaign's topic.
        as_of: Consent changes after this instant are not considered.
        email_trait: The trait holding the address.
        global_holdout: The workspace's ``measure.global_holdout_percent``.
        profile_ids: The only profiles :meth:`check` will be asked about, when known (a
            journey round): their consents are read, not the whole topic's.
    """

    def __init__(
        self,
        store: Store,
        consent: ConsentDef,
        topic: str,
        as_of: datetime,
        email_trait: str,
        *,
        global_holdout: float = 0.0,
        profile_ids: Iterable[str] | None = None,
    ) -> None:
        self.global_holdout = global_holdout
        self.policy = consent.policy
        self.topic = topic
        self.email_trait = email_trait
        self._store = store
        self._addresses = latest_address_consents(store, topic, as_of)
        self._consents = latest_consents(store, topic, as_of, profile_ids, self._addresses)
        self._suppressed = suppressions(store)
        self._since: tuple[dict[str, Timed], dict[str, Timed]] | None = None
        if stated_after(store, topic, as_of):  # what each says now, every statement counted
            addresses = latest_address_consents(store, topic, LATEST)
            self._since = (latest_consents(store, topic, LATEST, profile_ids, addresses),
                           addresses)  # fmt: skip

    def check(self, profile: Profile) -> str | None:
        """Return the skip reason for ``profile``, or None if it may be sent the email."""
        address = address_of(profile, self.email_trait)
        if address is None:
            return "no_email"
        key = address_key(self._store, address)  # a keyed hash with PII encryption on
        reason = self._suppressed.get(key)
        if reason is not None:
            return SUPPRESSION_REASONS.get(reason, "suppressed")
        latest = later(self._consents.get(profile.profile_id), self._addresses.get(key))
        status = latest[1] if latest is not None else None
        if status == "unsubscribed":
            return "unsubscribed"
        if status == "denied" or (status is None and self.policy == "opt_in"):
            return "no_consent"
        if self._since is not None:
            consents, addresses = self._since
            now = later(consents.get(profile.profile_id), addresses.get(key))
            withdrawn = now[1] if now is not None else None
            if withdrawn == "unsubscribed":
                return "unsubscribed"
            if withdrawn == "denied":
                return "no_consent"
        if in_global_holdout(profile.profile_id, self.global_holdout):
            return "global_holdout"
        return None

    def suppress_locally(self, address: str, reason: str) -> None:
        """Remember a suppression made during the run (a hard bounce)."""
        self._suppressed[address_key(self._store, address)] = reason
