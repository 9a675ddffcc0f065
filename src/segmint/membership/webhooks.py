"""Outgoing webhooks: a transactional outbox, signed deliveries, backoff and dead letters.

Changes enter table ``webhook_outbox`` in the same transaction that records them
(:meth:`WebhookOutbox.enqueue_new`), one row per webhook whose ``segments`` list admits
the change. :class:`~segmint.membership.delivery.WebhookDispatcher` delivers due rows.

A row moves ``pending`` → ``delivered``, or after ``max_attempts`` failed tries →
``dead``. Delivery is at least once: a receiver de-duplicates by the ``Segmint-Webhook-Id``
header (the outbox row id) or the change ``id`` in the body.

Signing: ``Segmint-Signature: v1=<hex>`` where ``<hex>`` is HMAC-SHA256 with the webhook's
secret over ``"<timestamp>.<body>"`` and ``<timestamp>`` is the ``Segmint-Timestamp``
header (Unix seconds). Receivers should reject timestamps far from their own clock.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson

from segmint.config.model import WebhookDef
from segmint.membership.changes import read_changes
from segmint.membership.cursor import start_cursor, write_cursor
from segmint.store import Store, from_store_time, utcnow_naive

SIGNATURE_HEADER = "Segmint-Signature"
TIMESTAMP_HEADER = "Segmint-Timestamp"
ID_HEADER = "Segmint-Webhook-Id"
CURSOR_KEY = "webhook_outbox"


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """Return the signature header value for ``body`` sent at ``timestamp``."""
    message = str(timestamp).encode() + b"." + body
    return "v1=" + hmac.new(secret, message, hashlib.sha256).hexdigest()


def verify(
    secret: bytes, body: bytes, timestamp: str, signature: str, now: datetime, tolerance: int = 300
) -> bool:
    """Check a delivery's signature and that its timestamp is within ``tolerance`` seconds.

    Receivers written in Python can use this as is.
    """
    try:
        stamp = int(timestamp)
    except ValueError:
        return False
    if abs(now.timestamp() - stamp) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, stamp, body), signature)


class WebhookOutbox:
    """Turns recorded changes into outbox rows, one per interested webhook.

    Args:
        store: The store.
        webhooks: The workspace's webhooks by name.
    """

    def __init__(self, store: Store, webhooks: Mapping[str, WebhookDef]) -> None:
        self.store = store
        self.webhooks = dict(webhooks)
        if self.webhooks:  # start at the newest change: later changes are all delivered
            start_cursor(store, CURSOR_KEY, from_start=False)

    def enqueue_new(self, as_of: datetime) -> int:
        """Queue the changes recorded since the last call; return how many rows were added.

        Call it inside the transaction that records the changes, so a change is never
        recorded without its deliveries (nor the reverse).
        """
        if not self.webhooks:
            return 0
        added = 0
        with self.store.transaction():
            cursor = start_cursor(self.store, CURSOR_KEY, from_start=False)
            changes = read_changes(self.store, after_id=cursor)
            rows: list[tuple[Any, ...]] = []
            for change in changes:
                body = orjson.dumps(change.to_json()).decode()
                for name, hook in self.webhooks.items():
                    if not hook.segments or change.segment in hook.segments:
                        rows.append((name, body, "pending", 0, utcnow_naive(as_of), None,
                                     utcnow_naive(as_of)))  # fmt: skip
            self.store.executemany(
                "INSERT INTO webhook_outbox (webhook, payload, status, attempts, "
                "next_attempt_at, last_error, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            added = len(rows)
            if changes:
                write_cursor(self.store, CURSOR_KEY, int(changes[-1].id or cursor))
        return added


def outbox_status(store: Store, dead_limit: int = 20) -> dict[str, Any]:
    """Summarise the outbox: per webhook, counts by status, the oldest pending, dead letters."""
    hooks: dict[str, dict[str, Any]] = {}
    rows = store.fetchall(
        "SELECT webhook, status, count(*), min(next_attempt_at) FROM webhook_outbox "
        "GROUP BY webhook, status ORDER BY webhook, status"
    )
    for name, status, count, first_due in rows:
        entry = hooks.setdefault(name, {"pending": 0, "delivered": 0, "dead": 0})
        entry[status] = int(count)
        if status == "pending":
            entry["next_attempt_at"] = from_store_time(first_due)
    dead = store.fetchall(
        "SELECT id, webhook, attempts, last_error, payload FROM webhook_outbox "
        f"WHERE status = 'dead' ORDER BY id DESC LIMIT {int(dead_limit)}"
    )
    letters = [
        {"id": int(i), "webhook": w, "attempts": int(a), "last_error": e, "payload": p}
        for i, w, a, e, p in dead
    ]
    return {"webhooks": hooks, "dead_letters": letters}
