"""Durable read positions over ``membership_changes``, kept in table ``meta``.

The Redis stream and the webhook outbox both consume the change log from a cursor, so a
restart resumes where the last committed position was: at-least-once, nothing skipped.
"""

from __future__ import annotations

from segmint.store import Store, read_meta, write_meta


def read_cursor(store: Store, key: str) -> int | None:
    """Return the last consumed change id under ``key``, or None if never set."""
    found = read_meta(store, key)
    return None if found is None else int(found)


def write_cursor(store: Store, key: str, value: int) -> None:
    """Store the last consumed change id under ``key``."""
    write_meta(store, key, value)


def last_change_id(store: Store) -> int:
    """Return the id of the newest recorded change (0 when there is none)."""
    rows = store.fetchall("SELECT max(id) FROM membership_changes")
    return int(rows[0][0]) if rows and rows[0][0] is not None else 0


def start_cursor(store: Store, key: str, *, from_start: bool) -> int:
    """Return the cursor under ``key``, creating it (at 0 or at the newest change) if absent."""
    found = read_cursor(store, key)
    if found is not None:
        return found
    value = 0 if from_start else last_change_id(store)
    write_cursor(store, key, value)
    return value
