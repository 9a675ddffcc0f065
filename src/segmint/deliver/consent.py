"""Consent and suppression: recording changes, and the gate every marketing email passes.

Consent is kept per (profile, topic) in the ``consents`` table as a history of changes,
each with its source and time; the latest change at ``as_of`` wins. Topic ``*`` means every
topic. A statement about an address no profile has yet (``email:ann@example.com``, or a bare
address nobody owns) is kept per normalised address (its keyed hash with PII encryption on,
see :func:`address_key`) in ``address_consents`` and counts for whichever profile has that
address later, as its email identity or as the address a campaign
sends to: an opt-out given before the person is known still stops the email. Statements of
both kinds compete by time; at the same instant the stricter one wins. Statuses:

- ``granted``: the person said yes;
- ``denied``: the person said no (a signup form, an import, the API);
- ``unsubscribed``: the person withdrew through an unsubscribe link or the preference page.

Changes arrive through :mod:`segmint.deliver.subjects` (the API, CLI and imports: whom an id
a person typed names, a profile or an address), through identify calls
(:func:`sync_trait_consents`, see there for the trait names), and through the unsubscribe and
preference pages (:func:`record_consent`, by the signed profile id). Suppressions (hard
bounces, complaints, manual blocks) are kept per address in ``suppressions`` and override
consent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import orjson

from segmint.common import did_you_mean, in_lists, looks_like_address
from segmint.config.model import ConsentDef
from segmint.deliver.errors import CampaignError
from segmint.intake.identity import merge_roots, normalise_address
from segmint.privacy.audit import append as audit_append
from segmint.store import Store, from_store_time, utcnow_naive, write_meta
from segmint.store.bulk import fetch_in, insert_rows

CONSENT_COLUMNS = ("profile_id", "topic", "status", "source", "occurred_at", "event_id")
ADDRESS_COLUMNS = ("address", "topic", "status", "source", "occurred_at")
EMAIL = "email"
"""The identity kind of email addresses (the default workspace identifier)."""

ConsentStatus = Literal["granted", "denied", "unsubscribed"]
STATUSES: tuple[ConsentStatus, ...] = ("granted", "denied", "unsubscribed")
ALL_TOPICS = "*"
SUPPRESSION_REASONS = {"bounce": "suppressed_bounce", "complaint": "complained"}
"""Suppression reason → the skip reason reported for it (others report ``suppressed``)."""


STRICTNESS: dict[str, int] = {"granted": 0, "denied": 1, "unsubscribed": 2}
"""Which of two statements made at the same instant wins: the stricter."""


@dataclass(frozen=True)
class ConsentChange:
    """One consent change.

    Attributes:
        profile_id: The profile it was recorded under (None for an address statement).
        topic: The topic, or ``*``.
        status: ``granted``, ``denied`` or ``unsubscribed``.
        source: Where it came from (``cli``, ``api``, ``identify``, ``import:crm.csv`` …).
        occurred_at: When the person made the choice.
        address: The address it was recorded under, for a statement about an address.
        event_id: The identify event it was read from, for a consent trait.
        recorded: False for a consent trait read from an identify event but not yet
            recorded (the next send, or :func:`sync_trait_consents`, records it).
    """

    profile_id: str | None
    topic: str
    status: ConsentStatus
    source: str
    occurred_at: datetime
    address: str | None = None
    event_id: str | None = None
    recorded: bool = True

    @property
    def subject(self) -> str:
        """Whom the statement was recorded under: a profile id or ``email:ADDRESS``."""
        return self.profile_id if self.profile_id is not None else f"{EMAIL}:{self.address}"


def address_key(store: Store, address: str) -> str:
    """How ``suppressions`` and ``address_consents`` keep an address, and how to look it up.

    The normalised address; with PII encryption on (the workspace hangs its
    :class:`~segmint.privacy.Privacy` on the store) the keyed hash ``identities`` keeps for
    it, so a copy of the store holds no address there.
    """
    privacy = getattr(store, "privacy", None)
    return normalise_address(address) if privacy is None else str(privacy.address_key(address))


def address_forms(store: Store, address: str) -> list[str]:
    """Every way a row may hold ``address``.

    Its :func:`address_key`, and the normalised address for rows written before PII
    encryption was enabled.
    """
    forms = [address_key(store, address), normalise_address(address)]
    return forms[:1] if forms[0] == forms[1] else forms


def seal_address(store: Store, profile_id: str, address: str) -> str:
    """How ``sends.address`` keeps an address: sealed under the profile's key when on.

    Flushes a data key made for a profile that had none, so call it before the write.
    """
    privacy = getattr(store, "privacy", None)
    if privacy is None:
        return address
    sealed = str(privacy.seal_address(profile_id, address))
    privacy.flush()
    return sealed


def open_address(store: Store, value: str | None) -> str | None:
    """The plaintext of a ``sends.address`` value (``[erased]`` once its key is destroyed)."""
    privacy = getattr(store, "privacy", None)
    return value if privacy is None or value is None else privacy.unseal(value)


def check_topic(consent: ConsentDef, topic: str) -> None:
    """Raise :class:`CampaignError` unless ``topic`` is ``*`` or a configured topic."""
    if topic != ALL_TOPICS and topic not in consent.topics:
        known = ", ".join(consent.topics)
        hint = did_you_mean(topic, consent.topics)
        tail = f"; {hint}" if hint else ""
        raise CampaignError(
            f"unknown consent topic {topic!r}{tail} (the workspace has: {known}, or * for all)"
        )


def record_consent(
    store: Store,
    profile_id: str,
    topic: str,
    status: ConsentStatus,
    *,
    source: str,
    at: datetime,
    event_id: str | None = None,
) -> ConsentChange:
    """Record one consent change and return it.

    Args:
        store: The store.
        profile_id: Whose consent changed.
        topic: The topic, or ``*`` for all topics.
        status: ``granted``, ``denied`` or ``unsubscribed``.
        source: Where the change came from (``api``, ``unsubscribe_link``, ``import:crm`` …).
        at: When the person made the choice.
        event_id: The identify event it was read from, if any.
    """
    _check_status(status)
    with store.transaction():
        insert_rows(
            store, "consents", CONSENT_COLUMNS,
            [(profile_id, topic, status, source, utcnow_naive(at), event_id)],
        )  # fmt: skip
        audit_append(store, "consent.change", actor=source, at=at, subject=profile_id,
                     details={"topic": topic, "status": status})  # fmt: skip
    return ConsentChange(profile_id, topic, status, source, at, event_id=event_id)


def _require_key(store: Store, action: str) -> None:
    """Refuse to keep or look up an address without the key of a workspace that seals PII.

    Without it the address would be kept in the clear beside keyed hashes it never matches.

    Raises:
        MasterKeyError: The workspace seals PII and no master key is configured.
    """
    privacy = getattr(store, "privacy", None)
    if privacy is not None:
        privacy.require_key(action)


def record_address_consent(
    store: Store, address: str, topic: str, status: ConsentStatus, *, source: str, at: datetime
) -> ConsentChange:
    """Record a consent change about an address (see the module docstring) and return it.

    Raises:
        MasterKeyError: The workspace seals PII and no master key is configured.
    """
    _check_status(status)
    _require_key(store, "recording consent for an address")
    with store.transaction():
        insert_rows(
            store, "address_consents", ADDRESS_COLUMNS,
            [(address_key(store, address), topic, status, source, utcnow_naive(at))],
        )  # fmt: skip
        # the address stays out of the log (it is personal data); the topic and status say it
        audit_append(store, "consent.change", actor=source, at=at, subject=None,
                     details={"topic": topic, "status": status, "by": "address"})  # fmt: skip
    return ConsentChange(None, topic, status, source, at, address=normalise_address(address))


def _check_status(status: str) -> None:
    if status not in STATUSES:
        raise CampaignError(f"unknown consent status {status!r}; use one of {STATUSES}")


def consent_history(
    store: Store,
    profile_id: str,
    *,
    consent: ConsentDef | None = None,
    addresses: Iterable[str] = (),
) -> list[ConsentChange]:
    """Return every consent statement that counts for a profile, oldest first.

    That is: changes recorded under the profile and under every profile merged into it;
    statements about its email identities and about ``addresses`` (the address campaigns
    send to); and, given ``consent``, consent traits of its identify events not recorded yet.
    Each change says where it came from (:attr:`ConsentChange.subject`, ``source``,
    ``event_id``, ``recorded``).
    """
    roots = merge_roots(store)
    ids = [profile_id, *sorted(g for g, into in roots.items() if into == profile_id)]
    found: list[ConsentChange] = []
    for marks, chunk in in_lists(ids):
        rows = store.fetchall(
            "SELECT profile_id, topic, status, source, occurred_at, event_id, id FROM consents "
            f"WHERE profile_id IN ({marks}) ORDER BY occurred_at, id",
            list(chunk),
        )
        found += [
            ConsentChange(p, t, s, src, from_store_time(at), event_id=e)  # type: ignore[arg-type]
            for p, t, s, src, at, e, _ in rows
        ]
    # by stored key: with PII encryption on an email identity is the typed address's hash
    about = {address_key(store, a): a for a in _email_identities(store, [profile_id])}
    about.update((address_key(store, a), normalise_address(a)) for a in addresses)
    for key in sorted(about):
        found += address_history(store, about[key])
    if consent is not None:
        wanted = set(ids)
        found += [c for c in _unread_trait_statements(store, consent)[0] if c.profile_id in wanted]
    return sorted(found, key=lambda c: c.occurred_at)


def address_history(store: Store, address: str) -> list[ConsentChange]:
    """Return the statements recorded about an address, oldest first."""
    forms = address_forms(store, address)
    rows = store.fetchall(
        "SELECT topic, status, source, occurred_at FROM address_consents "
        f"WHERE address IN ({', '.join('?' for _ in forms)}) ORDER BY occurred_at, id",
        forms,
    )
    shown = normalise_address(address)  # the stored key may be a keyed hash (privacy)
    return [
        ConsentChange(None, t, s, src, from_store_time(at), address=shown)  # type: ignore[arg-type]
        for t, s, src, at in rows
    ]


Timed = tuple[datetime, ConsentStatus]
"""A latest statement: when it was made, and what it said."""


def later(first: Timed | None, second: Timed | None) -> Timed | None:
    """The later of two statements; at the same instant the stricter one."""
    if first is None or second is None:
        return first or second
    key = (first[0], STRICTNESS[first[1]])
    return first if key >= (second[0], STRICTNESS[second[1]]) else second


def latest_consents(
    store: Store,
    topic: str,
    as_of: datetime,
    profile_ids: Iterable[str] | None = None,
    by_address: Mapping[str, Timed] | None = None,
) -> dict[str, Timed]:
    """Each profile's latest statement for ``topic`` (or ``*``) at ``as_of``, with its time.

    Counts statements made under profiles merged into it since (an unsubscribe link from an
    email to the old profile, an identify call before the merge) and statements about the
    addresses it has as email identities (``by_address``: those of
    :func:`latest_address_consents` at the same instant, when the caller read them already).
    """
    cutoff = utcnow_naive(as_of)
    roots = merge_roots(store)
    wanted = set(profile_ids) if profile_ids is not None else None
    sql = (
        "SELECT profile_id, status, occurred_at, id FROM consents "
        "WHERE topic IN (?, ?) AND occurred_at <= ?"
    )
    if wanted is None:
        rows = store.fetchall(f"{sql} ORDER BY occurred_at, id", [topic, ALL_TOPICS, cutoff])
    else:  # only the statements of these people (and of the profiles merged into them)
        ids = sorted(wanted | {p for p, root in roots.items() if root in wanted})
        rows = fetch_in(
            store, f"{sql} AND profile_id IN ({{values}})", ids, [topic, ALL_TOPICS, cutoff]
        )
        rows.sort(key=lambda r: (r[2], r[3]))
    latest: dict[str, Timed] = {}
    for profile_id, status, at, _ in rows:
        owner = roots.get(profile_id, profile_id)
        if wanted is None or owner in wanted:
            latest[owner] = (at, status)
    if by_address is None:
        by_address = latest_address_consents(store, topic, as_of)
    owners = _address_owners(store, list(by_address))
    for address, statement in by_address.items():
        owner = owners.get(address)
        if owner is not None:
            owner = roots.get(owner, owner)
            if wanted is None or owner in wanted:
                latest[owner] = later(latest.get(owner), statement)  # type: ignore[assignment]
    return latest


def current_consents(
    store: Store, topic: str, as_of: datetime, profile_ids: Iterable[str] | None = None
) -> dict[str, ConsentStatus]:
    """Return each profile's latest status for ``topic`` (or ``*``) at ``as_of``.

    See :func:`latest_consents` for which statements count.
    """
    return {p: s for p, (_, s) in latest_consents(store, topic, as_of, profile_ids).items()}


def latest_address_consents(store: Store, topic: str, as_of: datetime) -> dict[str, Timed]:
    """Each address's latest statement for ``topic`` (or ``*``) at ``as_of``.

    Keyed by :func:`address_key` (a keyed hash with PII encryption on).
    """
    rows = store.fetchall(
        "SELECT address, status, occurred_at FROM address_consents "
        "WHERE topic IN (?, ?) AND occurred_at <= ? ORDER BY occurred_at, id",
        [topic, ALL_TOPICS, utcnow_naive(as_of)],
    )
    # rows from before PII encryption was enabled are keyed like the others as they are read
    return {address_key(store, address): (at, status) for address, status, at in rows}


def stated_after(store: Store, topic: str, as_of: datetime) -> bool:
    """Whether any statement for ``topic`` (or ``*``) was made after ``as_of``."""
    cutoff = utcnow_naive(as_of)
    return any(
        store.fetchall(
            f"SELECT 1 FROM {table} WHERE topic IN (?, ?) AND occurred_at > ? LIMIT 1",  # noqa: S608
            [topic, ALL_TOPICS, cutoff],
        )
        for table in ("consents", "address_consents")
    )


def _address_owners(store: Store, addresses: list[str]) -> dict[str, str]:
    owners: dict[str, str] = {}
    for marks, chunk in in_lists(addresses):
        rows = store.fetchall(
            f"SELECT value, profile_id FROM identities WHERE kind = ? AND value IN ({marks})",
            [EMAIL, *chunk],
        )
        owners.update((str(a), str(p)) for a, p in rows)
    return owners


def _email_identities(store: Store, profile_ids: list[str]) -> list[str]:
    found: list[str] = []
    for marks, chunk in in_lists(profile_ids):
        rows = store.fetchall(
            f"SELECT value FROM identities WHERE kind = ? AND profile_id IN ({marks})",
            [EMAIL, *chunk],
        )
        found += [str(v) for (v,) in rows]
    return found


def suppress(store: Store, address: str, reason: str, *, source: str, at: datetime) -> None:
    """Block ``address`` from all marketing email (``bounce``, ``complaint``, ``manual`` …).

    Raises:
        CampaignError: If ``address`` is not an email address (a typo would block nobody).
        MasterKeyError: The workspace seals PII and no master key is configured.
    """
    _require_key(store, "suppressing an address")
    if not looks_like_address(address):
        raise CampaignError(
            f"{address!r} is not an email address: suppressions block addresses, "
            "e.g. ann@example.com (to stop one person's email, record their consent: "
            "'segmint consent set PERSON denied')"
        )
    key = address_key(store, address)
    forms = address_forms(store, address)
    with store.transaction():
        marks = ", ".join("?" for _ in forms)
        store.execute(f"DELETE FROM suppressions WHERE address IN ({marks})", forms)
        store.execute(
            "INSERT INTO suppressions (address, reason, source, occurred_at) VALUES (?, ?, ?, ?)",
            [key, reason, source, utcnow_naive(at)],
        )


def unsuppress(store: Store, address: str) -> bool:
    """Lift a suppression; return whether there was one.

    Raises:
        MasterKeyError: The workspace seals PII and no master key is configured.
    """
    _require_key(store, "lifting a suppression")
    forms = address_forms(store, address)
    marks = ", ".join("?" for _ in forms)
    found = bool(store.fetchall(f"SELECT 1 FROM suppressions WHERE address IN ({marks})", forms))
    store.execute(f"DELETE FROM suppressions WHERE address IN ({marks})", forms)
    return found


def suppressions(store: Store) -> dict[str, str]:
    """Return every suppressed address (its :func:`address_key`) with its reason."""
    rows = store.fetchall("SELECT address, reason FROM suppressions")
    return {address_key(store, a): r for a, r in rows}  # older rows may be plaintext


def trait_consents(
    traits: Mapping[str, Any], consent: ConsentDef
) -> list[tuple[str, ConsentStatus]]:
    """Read consent statements from identify traits.

    With ``consent.trait`` = ``email_consent``:

    - ``email_consent: true|false`` grants or denies every topic (``*``);
    - ``email_consent: {offers: true, newsletter: false}`` sets topics one by one;
    - ``email_consent_offers: false`` sets one topic.

    Values other than booleans are ignored.

    Returns:
        (topic, status) pairs in the order above (so per-topic statements follow ``*``).
    """
    name = consent.trait
    if not name:
        return []
    found: list[tuple[str, ConsentStatus]] = []
    value = traits.get(name)
    if isinstance(value, bool):
        found.append((ALL_TOPICS, _status(value)))
    elif isinstance(value, dict):
        found += [(t, _status(v)) for t, v in value.items() if isinstance(v, bool)]
    for topic in consent.topics:
        value = traits.get(f"{name}_{topic}")
        if isinstance(value, bool):
            found.append((topic, _status(value)))
    return found


def _status(value: bool) -> ConsentStatus:
    return "granted" if value else "denied"


def sync_trait_consents(store: Store, consent: ConsentDef) -> int:
    """Record the consent changes stated in identify events not read yet; return how many.

    Only a *change* of a profile's consent trait is a consent change: apps often repeat
    every trait on every identify call, and a repeated ``email_consent: true`` must not
    undo an unsubscribe made through a link since. So a statement is recorded when it
    differs from the last one read from that profile's identify events (per topic); its
    time is the event's timestamp and ``identify`` (or ``identify:<source>``) its source.

    Events are read once: ``meta`` keeps the highest ``events.seq`` read
    (:data:`WATERMARK_KEY`).
    """
    found, high = _unread_trait_statements(store, consent)
    if high is None:
        return 0
    rows = [
        (c.profile_id, c.topic, c.status, c.source, utcnow_naive(c.occurred_at), c.event_id)
        for c in found
    ]
    with store.transaction():
        # one set-based write (a statement per change was most of the demo's consent step)
        insert_rows(store, "consents", CONSENT_COLUMNS, rows)
        write_meta(store, WATERMARK_KEY, high)
        if rows:
            latest = max(c.occurred_at for c in found)
            audit_append(store, "consent.sync", actor="identify", at=latest,
                         details={"changes": len(rows), "up_to_seq": high})  # fmt: skip
    return len(found)


def _unread_trait_statements(
    store: Store, consent: ConsentDef
) -> tuple[list[ConsentChange], int | None]:
    """The changes :func:`sync_trait_consents` would record, and the ``seq`` read up to.

    Reads only, so a read-only command can show them.
    """
    if not consent.trait:
        return [], None
    marks = store.fetchall(  # the newest event and the watermark, in one query
        "SELECT coalesce(max(seq), 0), (SELECT value FROM meta WHERE key = ?) FROM events",
        [WATERMARK_KEY],
    )[0]
    high, low = int(marks[0]), int(marks[1] or 0)
    if high <= low:
        return [], None
    rows = store.fetchall(
        "SELECT message_id, profile_id, timestamp, source, CAST(traits AS TEXT) FROM events "
        "WHERE type = 'identify' AND profile_id IS NOT NULL AND seq > ? AND seq <= ? "
        "AND CAST(traits AS TEXT) LIKE ? ORDER BY timestamp, seq",
        [low, high, f"%{consent.trait}%"],
    )
    last = _last_trait_statements(store)
    found: list[ConsentChange] = []
    for message_id, profile_id, timestamp, source, raw in rows:
        label = f"identify:{source}" if source else "identify"
        for topic, status in trait_consents(orjson.loads(raw) if raw else {}, consent):
            if last.get((profile_id, topic)) == status:
                continue
            last[(profile_id, topic)] = status
            at = from_store_time(timestamp) or timestamp  # never NULL: a NOT NULL column
            found.append(
                ConsentChange(
                    profile_id, topic, status, label, at, event_id=message_id, recorded=False
                )
            )
    return found, high


WATERMARK_KEY = "deliver.consent_trait_seq"
"""The ``meta`` key holding the last ``events.seq`` read by :func:`sync_trait_consents`."""


def unread_statements_sql(consent: ConsentDef) -> tuple[str, list[Any]]:
    """The newest identify event that may state consent, not read yet: SQL and parameters.

    A scalar expression: the ``seq`` of the newest identify event whose traits name the
    consent trait (those :func:`sync_trait_consents` reads) above its watermark. NULL
    when there is none (or when no trait states consent): every statement made through
    identify calls is then among the recorded ones.
    """
    if not consent.trait:
        return "NULL", []
    sql = (
        "(SELECT max(seq) FROM events WHERE seq > coalesce((SELECT CAST(value AS BIGINT) "
        "FROM meta WHERE key = ?), 0) AND type = 'identify' AND profile_id IS NOT NULL "
        "AND CAST(traits AS TEXT) LIKE ?)"
    )
    return sql, [WATERMARK_KEY, f"%{consent.trait}%"]


def _last_trait_statements(store: Store) -> dict[tuple[str, str], str]:
    rows = store.fetchall(
        "SELECT profile_id, topic, status FROM consents WHERE event_id IS NOT NULL "
        "ORDER BY occurred_at, id"
    )
    return {(pid, topic): status for pid, topic, status in rows}
