"""Consent and suppression: recording changes, and the gate every marketing email passes.

Consent is kept per (profile, topic) in the ``consents`` table as a history of changes,
each with its source and time; the latest change at ``as_of`` wins. Topic ``*`` means every
topic. Statuses:

- ``granted``: the person said yes;
- ``denied``: the person said no (a signup form, an import, the API);
- ``unsubscribed``: the person withdrew through an unsubscribe link or the preference page.

Changes arrive through :func:`record_consent` (the API and CLI call it), through contact
imports and identify calls (:func:`sync_trait_consents`, see there for the trait names), and
through the unsubscribe and preference pages. Suppressions (hard bounces, complaints, manual
blocks) are kept per address in ``suppressions`` and override consent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import orjson

from segmint.config.model import ConsentDef
from segmint.deliver.errors import CampaignError
from segmint.intake.identity import merge_roots
from segmint.store import Store, from_store_time, read_meta, utcnow_naive, write_meta
from segmint.store.bulk import insert_rows

CONSENT_COLUMNS = ("profile_id", "topic", "status", "source", "occurred_at", "event_id")

ConsentStatus = Literal["granted", "denied", "unsubscribed"]
STATUSES: tuple[ConsentStatus, ...] = ("granted", "denied", "unsubscribed")
ALL_TOPICS = "*"
SUPPRESSION_REASONS = {"bounce": "suppressed_bounce", "complaint": "complained"}
"""Suppression reason → the skip reason reported for it (others report ``suppressed``)."""


@dataclass(frozen=True)
class ConsentChange:
    """One recorded consent change."""

    profile_id: str
    topic: str
    status: ConsentStatus
    source: str
    occurred_at: datetime


def check_topic(consent: ConsentDef, topic: str) -> None:
    """Raise :class:`CampaignError` unless ``topic`` is ``*`` or a configured topic."""
    if topic != ALL_TOPICS and topic not in consent.topics:
        known = ", ".join(consent.topics)
        raise CampaignError(f"unknown consent topic {topic!r}; the workspace has: {known}")


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
    if status not in STATUSES:
        raise CampaignError(f"unknown consent status {status!r}; use one of {STATUSES}")
    insert_rows(
        store, "consents", CONSENT_COLUMNS,
        [(profile_id, topic, status, source, utcnow_naive(at), event_id)],
    )  # fmt: skip
    return ConsentChange(profile_id, topic, status, source, at)


def consent_history(store: Store, profile_id: str) -> list[ConsentChange]:
    """Return a profile's consent changes, oldest first."""
    rows = store.fetchall(
        "SELECT profile_id, topic, status, source, occurred_at FROM consents "
        "WHERE profile_id = ? ORDER BY occurred_at, id",
        [profile_id],
    )
    return [ConsentChange(p, t, s, src, from_store_time(at)) for p, t, s, src, at in rows]  # type: ignore[arg-type]


def current_consents(
    store: Store, topic: str, as_of: datetime, profile_ids: Iterable[str] | None = None
) -> dict[str, ConsentStatus]:
    """Return each profile's latest status for ``topic`` (or ``*``) at ``as_of``.

    A statement made under a profile merged away since (an unsubscribe link from an email to
    it, an identify call before the merge) counts for the profile that survives it.
    """
    rows = store.fetchall(
        "SELECT profile_id, status FROM consents WHERE topic IN (?, ?) AND occurred_at <= ? "
        "ORDER BY occurred_at, id",
        [topic, ALL_TOPICS, utcnow_naive(as_of)],
    )
    roots = merge_roots(store)
    wanted = set(profile_ids) if profile_ids is not None else None
    latest: dict[str, ConsentStatus] = {}
    for profile_id, status in rows:
        owner = roots.get(profile_id, profile_id)
        if wanted is None or owner in wanted:
            latest[owner] = status
    return latest


def suppress(store: Store, address: str, reason: str, *, source: str, at: datetime) -> None:
    """Block ``address`` from all marketing email (``bounce``, ``complaint``, ``manual`` …)."""
    with store.transaction():
        store.execute("DELETE FROM suppressions WHERE address = ?", [address.strip().lower()])
        store.execute(
            "INSERT INTO suppressions (address, reason, source, occurred_at) VALUES (?, ?, ?, ?)",
            [address.strip().lower(), reason, source, utcnow_naive(at)],
        )


def unsuppress(store: Store, address: str) -> bool:
    """Lift a suppression; return whether there was one."""
    key = address.strip().lower()
    found = bool(store.fetchall("SELECT 1 FROM suppressions WHERE address = ?", [key]))
    store.execute("DELETE FROM suppressions WHERE address = ?", [key])
    return found


def suppressions(store: Store) -> dict[str, str]:
    """Return every suppressed address with its reason."""
    return {a: r for a, r in store.fetchall("SELECT address, reason FROM suppressions")}


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
    if not consent.trait:
        return 0
    low = _watermark(store)
    high = store.fetchall("SELECT coalesce(max(seq), 0) FROM events")[0][0]
    if high <= low:
        return 0
    rows = store.fetchall(
        "SELECT message_id, profile_id, timestamp, source, CAST(traits AS TEXT) FROM events "
        "WHERE type = 'identify' AND profile_id IS NOT NULL AND seq > ? AND seq <= ? "
        "AND CAST(traits AS TEXT) LIKE ? ORDER BY timestamp, seq",
        [low, high, f"%{consent.trait}%"],
    )
    last = _last_trait_statements(store)
    found: list[tuple[str, str, str, str, datetime, str]] = []
    for message_id, profile_id, timestamp, source, raw in rows:
        label = f"identify:{source}" if source else "identify"
        for topic, status in trait_consents(orjson.loads(raw) if raw else {}, consent):
            if last.get((profile_id, topic)) == status:
                continue
            last[(profile_id, topic)] = status
            found.append((profile_id, topic, status, label, timestamp, message_id))
    with store.transaction():
        # one set-based write (a statement per change was most of the demo's consent step)
        insert_rows(store, "consents", CONSENT_COLUMNS, found)
        write_meta(store, WATERMARK_KEY, high)
    return len(found)


WATERMARK_KEY = "deliver.consent_trait_seq"
"""The ``meta`` key holding the last ``events.seq`` read by :func:`sync_trait_consents`."""


def _watermark(store: Store) -> int:
    found = read_meta(store, WATERMARK_KEY)
    return 0 if found is None else int(found)


def _last_trait_statements(store: Store) -> dict[tuple[str, str], str]:
    rows = store.fetchall(
        "SELECT profile_id, topic, status FROM consents WHERE event_id IS NOT NULL "
        "ORDER BY occurred_at, id"
    )
    return {(pid, topic): status for pid, topic, status in rows}
