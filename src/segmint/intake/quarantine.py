"""Quarantine: well-formed input that broke the tracking plan (or could not be decoded).

Nothing quarantined is mixed into ``events``. Each row keeps the message as received, the
reason, the offending field and the source; ``segmint quarantine replay`` feeds the open rows
through the pipeline again (see :meth:`segmint.intake.Intake.replay`) and marks those that
pass ``replayed_at``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from segmint.store import Store, from_store_time, utcnow_naive


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
    """

    id: int
    received_at: datetime
    source: str | None
    message_id: str | None
    reason: str
    field: str | None
    payload: Any
    replayed_at: datetime | None


_COLUMNS = "id, received_at, source, message_id, reason, field, payload, replayed_at"


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
    return [_item(row) for row in rows]


def _item(row: tuple[Any, ...]) -> QuarantinedItem:
    rid, received, source, message_id, reason, field, payload, replayed = row
    try:
        decoded = orjson.loads(payload)
    except orjson.JSONDecodeError:
        decoded = payload
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
    )


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
    """Build a row for :data:`QUARANTINE_COLUMNS`."""
    message_id = payload.get("messageId") if isinstance(payload, dict) else None
    text = orjson.dumps(payload, default=str).decode()
    mid = str(message_id) if isinstance(message_id, str | int) else None
    return (utcnow_naive(received_at), source, text, reason, field, mid)


QUARANTINE_COLUMNS = ("received_at", "source", "payload", "reason", "field", "message_id")
"""The columns of a row built by :func:`quarantine_row`."""
