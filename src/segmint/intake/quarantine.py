"""Quarantine: well-formed input that broke the tracking plan (or could not be decoded).

Nothing quarantined is mixed into ``events``. Each row keeps the message as received, the
reason, the offending field and the source; ``segmint quarantine replay`` feeds the open rows
through the pipeline again (see :meth:`segmint.intake.Intake.replay`) and marks those that
pass ``replayed_at``.

With PII encryption on (a master key), a row's payload is sealed before it is stored
(:func:`protect_rows`, :mod:`segmint.privacy.subjects`): under the identities the message
names, so erasing any of them makes it unreadable. Only the reason, field, source, times,
messageId, call type and event name stay in the clear; :func:`list_quarantine` opens the
payload in memory, and a row whose key is destroyed reads as ``[erased]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson

from segmint.store import Store, from_store_time, utcnow_naive

if TYPE_CHECKING:
    from segmint.privacy.protect import Privacy


@dataclass(frozen=True)
class QuarantinedItem:
    """One quarantined message.

    Attributes:
        id: The row id, for ``quarantine replay --id``.
        received_at: When it first arrived.
        source: The source name it came from.
        message_id: Its messageId, when it had one.
        reason: Why it was quarantined.
        field: The offending field.
        payload: The message as received.
        replayed_at: When a replay stored it, or None while it is open.
        type: The call type (``track``, ``identify`` …), when the payload names one.
        event: The event name of a track call.
        sealed: Why the payload cannot be read, or None: ``erased`` (someone it names was
            erased) or ``no key`` (sealed, and no master key is configured).
    """

    id: int
    received_at: datetime
    source: str | None
    message_id: str | None
    reason: str
    field: str | None
    payload: Any
    replayed_at: datetime | None
    type: str | None = None
    event: str | None = None
    sealed: str | None = None


_COLUMNS = "id, received_at, source, message_id, reason, field, payload, replayed_at, type, event"
ERASED = "[erased]"
"""The payload of a row nobody can read any more (see :attr:`QuarantinedItem.sealed`)."""


def list_quarantine(
    store: Store, *, include_replayed: bool = False, ids: Sequence[int] | None = None
) -> list[QuarantinedItem]:
    """Return quarantined messages, oldest first (open ones only unless asked)."""
    sql = f"SELECT {_COLUMNS} FROM quarantine WHERE 1 = 1"
    params: list[Any] = []
    if not include_replayed:
        sql += " AND replayed_at IS NULL"
    if ids is not None:
        if not ids:
            return []
        sql += f" AND id IN ({', '.join('?' for _ in ids)})"
        params.extend(int(i) for i in ids)
    rows = store.fetchall(sql + " ORDER BY id", params)
    privacy = getattr(store, "privacy", None)  # set by the workspace (segmint.privacy)
    return [_item(row, privacy) for row in rows]


def _open(payload: str, privacy: Any) -> tuple[str, str | None]:
    """The payload's text, and why it cannot be read (None: it can)."""
    from segmint.privacy.errors import ErasedProfileError
    from segmint.privacy.subjects import is_subject_sealed, open_sealed

    if not is_subject_sealed(payload):
        return payload, None
    if privacy is None or privacy.keyring is None:  # a wrong master key raises here
        return orjson.dumps("[sealed]").decode(), "no key"
    try:
        return open_sealed(privacy, payload), None
    except ErasedProfileError:
        return orjson.dumps(ERASED).decode(), "erased"


def _item(row: tuple[Any, ...], privacy: Any) -> QuarantinedItem:
    rid, received, source, message_id, reason, field, payload, replayed, kind, event = row
    text, sealed = _open(payload, privacy)
    try:
        decoded = orjson.loads(text)
    except orjson.JSONDecodeError:
        decoded = text
    received_at = from_store_time(received)
    assert received_at is not None
    return QuarantinedItem(
        id=int(rid),
        received_at=received_at,
        source=source,
        message_id=message_id,
        reason=reason,
        field=field,
        payload=decoded,
        replayed_at=from_store_time(replayed),
        type=kind,
        event=event,
        sealed=sealed,
    )


def about_subjects(store: Store, subjects: Sequence[str]) -> list[int]:
    """The ids of the rows whose payload names any of ``subjects`` (see ``protect_rows``)."""
    found: list[int] = []
    for start in range(0, len(subjects), 50):
        part = subjects[start : start + 50]
        where = " OR ".join("subjects LIKE ?" for _ in part)
        sql = f"SELECT id FROM quarantine WHERE {where} ORDER BY id"  # noqa: S608
        found += [int(r[0]) for r in store.fetchall(sql, [f"%{name}%" for name in part])]
    return sorted(set(found))


def purge_quarantine(store: Store, before: datetime) -> dict[str, int]:
    """Delete the messages quarantined before ``before`` (open or replayed).

    With PII encryption on, also destroy the day keys of the payloads naming nobody that
    arrived before that day (:mod:`segmint.privacy.subjects`), so no copy of the store can
    read them either. Returns ``{"deleted": rows, "day_keys_destroyed": keys}``.
    """
    cutoff = utcnow_naive(before)
    rows = store.fetchall("DELETE FROM quarantine WHERE received_at < ? RETURNING 1", [cutoff])
    privacy = getattr(store, "privacy", None)
    shredded = 0
    if privacy is not None and privacy.encrypting:
        from segmint.privacy.subjects import shred_unlinked_before

        shredded = shred_unlinked_before(privacy, cutoff.date())
    return {"deleted": len(rows), "day_keys_destroyed": shredded}


def open_message_ids(store: Store, message_ids: Sequence[str]) -> set[str]:
    """Return those of ``message_ids`` already waiting in quarantine."""
    if not message_ids:
        return set()
    marks = ", ".join("?" for _ in message_ids)
    rows = store.fetchall(
        f"SELECT message_id FROM quarantine WHERE replayed_at IS NULL AND message_id IN ({marks})",
        list(message_ids),
    )
    return {r[0] for r in rows}


def quarantine_row(
    received_at: datetime, source: str, payload: Any, reason: str, field: str | None
) -> tuple[Any, ...]:
    """Build a row for :data:`QUARANTINE_COLUMNS` (in plaintext: see :func:`protect_rows`)."""
    message_id = payload.get("messageId") if isinstance(payload, dict) else None
    text = orjson.dumps(payload, default=str).decode()
    mid = str(message_id) if isinstance(message_id, str | int) else None
    kind = _label(payload, "type", 20)
    event = _label(payload, "event", 200) if kind == "track" else None
    return (utcnow_naive(received_at), source, text, reason, field, mid, kind, event, None)


def _label(payload: Any, key: str, limit: int) -> str | None:
    value = payload.get(key) if isinstance(payload, dict) else None
    return value[:limit] if isinstance(value, str) else None


QUARANTINE_COLUMNS = (
    "received_at", "source", "payload", "reason", "field", "message_id", "type", "event",
    "subjects",
)  # fmt: skip
"""The columns of a row built by :func:`quarantine_row`."""
_PAYLOAD = QUARANTINE_COLUMNS.index("payload")


def protect_rows(
    rows: Sequence[tuple[Any, ...]], privacy: Privacy | None, identifiers: Sequence[str]
) -> list[tuple[Any, ...]]:
    """``rows`` as stored: each payload's subjects listed and, with a master key, sealed.

    Call :meth:`~segmint.privacy.protect.Privacy.flush` before the store commits.
    """
    if privacy is None or not rows:
        return list(rows)
    out = []
    for row in rows:
        sealed, subjects = seal_payload(privacy, row[_PAYLOAD], identifiers, row[0])
        out.append((*row[:_PAYLOAD], sealed, *row[_PAYLOAD + 1 : -1], subjects))
    return out


def seal_payload(
    privacy: Privacy, text: str, identifiers: Sequence[str], received: datetime
) -> tuple[str, str | None]:
    """One quarantined payload sealed under the identities it names: (sealed, subjects).

    A payload that is not JSON, or names nobody, is sealed under the key of the day it was
    received (:func:`segmint.privacy.subjects.seal`).
    """
    from segmint.intake.identity import payload_identities
    from segmint.privacy.subjects import seal

    try:
        decoded = orjson.loads(text)
    except orjson.JSONDecodeError:
        decoded = None
    found = payload_identities(decoded, identifiers)
    return seal(privacy, text, found, received.date())
