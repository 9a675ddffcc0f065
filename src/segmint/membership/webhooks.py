"""Outgoing webhooks: membership changes queued in an outbox, signed, delivered with retries.

Changes enter table ``webhook_outbox`` in the same transaction that records them
(:meth:`WebhookOutbox.enqueue_new`), one row per webhook whose ``segments`` list admits
the change. :class:`WebhookDispatcher` POSTs due rows. Queueing, backoff and dead letters
are delivery's one mechanism (:class:`segmint.deliver.outbox.Outbox` with a
:class:`segmint.deliver.retry.RetryPolicy`); this module only knows what a webhook is.

A row moves ``pending`` → ``delivered``, or ``dead`` once retrying will not help: the
answer was terminal (a 4xx other than 408, 425 and 429, or the webhook is no longer
configured) or ``max_attempts`` tries failed. Network errors, 408, 425, 429 and 5xx answers
are transient: the next try comes after ``10 s * 2 ** (attempts - 1)``, at most one hour
(:data:`segmint.deliver.retry.WEBHOOK_RETRY`). Delivery is at least once: a receiver
de-duplicates by the ``Segmint-Webhook-Id`` header (the outbox row id) or the change ``id``
in the body.

With PII encryption on (a master key), a queued payload is sealed under its profile's key
and opened only to be sent; once the person is erased their queued rows are dropped
(status ``dropped``, counted in :attr:`~segmint.deliver.outbox.OutboxReport.dropped`).

Signing: ``Segmint-Signature: v1=<hex>`` where ``<hex>`` is HMAC-SHA256 with the webhook's
secret over ``"<timestamp>.<body>"`` and ``<timestamp>`` is the ``Segmint-Timestamp``
header (Unix seconds). Receivers should reject timestamps far from their own clock.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import httpx
import orjson

from segmint.clock import Clock
from segmint.config.model import WebhookDef
from segmint.deliver.outbox import Outbox, OutboxReport, OutboxRow
from segmint.deliver.retry import WEBHOOK_RETRY, RetryPolicy
from segmint.membership.changes import read_changes
from segmint.membership.cursor import start_cursor, write_cursor
from segmint.membership.errors import MembershipError, WebhookRejected, WebhookRetryable
from segmint.store import Store

SIGNATURE_HEADER = "Segmint-Signature"
TIMESTAMP_HEADER = "Segmint-Timestamp"
ID_HEADER = "Segmint-Webhook-Id"
CURSOR_KEY = "webhook_outbox"
RETRYABLE_STATUS = frozenset({408, 425, 429})
"""Client-error answers that mean "later" rather than "never"."""


def webhook_outbox(store: Store) -> Outbox:
    """Return the outbox table of webhook deliveries (destination: the webhook's name)."""
    return Outbox(store, "webhook_outbox", destination="webhook")


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
        self.outbox = webhook_outbox(store)
        if self.webhooks:  # start at the newest change: later changes are all delivered
            start_cursor(store, CURSOR_KEY, from_start=False)

    def enqueue_new(self, as_of: datetime) -> int:
        """Queue the changes recorded since the last call; return how many rows were added.

        Call it inside the transaction that records the changes, so a change is never
        recorded without its deliveries (nor the reverse).
        """
        if not self.webhooks:
            return 0
        with self.store.transaction():
            cursor = start_cursor(self.store, CURSOR_KEY, from_start=False)
            changes = read_changes(self.store, after_id=cursor)
            privacy = _sealing(self.store)
            if privacy is not None:
                privacy.prepare({c.profile_id for c in changes})
            messages: list[tuple[str, str]] = []
            for change in changes:
                hooks = [
                    name
                    for name, hook in self.webhooks.items()
                    if not hook.segments or change.segment in hook.segments
                ]
                if not hooks:
                    continue
                body = orjson.dumps(change.to_json()).decode()
                if privacy is not None:  # the payload concerns a profile: sealed under its key
                    body = privacy.seal_payload(change.profile_id, body)
                messages += [(name, body) for name in hooks]
            if privacy is not None:
                privacy.flush()  # a new profile key reaches the vault before the rows commit
            added = self.outbox.enqueue(messages, as_of)
            if changes:
                write_cursor(self.store, CURSOR_KEY, int(changes[-1].id or cursor))
        return added


def outbox_status(
    store: Store, dead_limit: int = 20, webhooks: Mapping[str, WebhookDef] | None = None
) -> dict[str, Any]:
    """Summarise the outbox: per webhook, counts by status, the oldest pending, dead letters.

    A sealed dead letter's payload is opened in memory (``[erased]`` once its person is).

    Args:
        store: The store.
        dead_limit: The most dead letters listed (newest first).
        webhooks: The configured webhooks; each is listed, with zeros when it has no rows.
    """
    status = webhook_outbox(store).status(dead_limit)
    hooks = {name: {"pending": 0, "delivered": 0, "dead": 0} for name in webhooks or {}}
    hooks.update(status["destinations"])
    privacy = getattr(store, "privacy", None)
    letters = [
        {"id": d["id"], "webhook": d["destination"], "attempts": d["attempts"],
         "last_error": d["last_error"],
         "payload": privacy.unseal(d["payload"]) if privacy is not None else d["payload"]}
        for d in status["dead_letters"]
    ]  # fmt: skip
    return {"webhooks": dict(sorted(hooks.items())), "dead_letters": letters}


class WebhookDispatcher:
    """Delivers due outbox rows.

    Args:
        store: The store holding ``webhook_outbox``.
        webhooks: The workspace's webhooks by name.
        secrets: Signing secret per webhook; read from each webhook's ``secret_env``
            environment variable when omitted.
        client: The HTTP client (a default one with a 10 s timeout is made if omitted).
        retry: Attempts and backoff (a webhook's ``max_attempts``, when set, replaces the
            policy's attempt limit for that webhook).

    Raises:
        MembershipError: If a webhook has no signing secret.
    """

    def __init__(
        self,
        store: Store,
        webhooks: Mapping[str, WebhookDef],
        *,
        secrets: Mapping[str, bytes] | None = None,
        client: httpx.Client | None = None,
        retry: RetryPolicy = WEBHOOK_RETRY,
    ) -> None:
        self.store = store
        self.webhooks = dict(webhooks)
        self.secrets = dict(secrets) if secrets is not None else _secrets_from_env(webhooks)
        self.client = client or httpx.Client(timeout=10.0)
        self.retry = retry
        self.outbox = webhook_outbox(store)

    def policy(self, name: str) -> RetryPolicy:
        """Return the retry policy of webhook ``name``."""
        hook = self.webhooks.get(name)
        return self.retry.with_attempts(hook.max_attempts if hook is not None else None)

    def deliver_due(self, as_of: datetime, limit: int = 100) -> OutboxReport:
        """Try every pending row due at ``as_of`` (oldest first), up to ``limit`` rows."""
        return self.outbox.deliver_due(as_of, self._send, self.policy, limit)

    def deliver_every_due(self, as_of: datetime) -> OutboxReport:
        """Try every pending row due at ``as_of`` once, however many (in passes of 100)."""
        return self.outbox.deliver_every_due(as_of, self._send, self.policy)

    def _send(self, row: OutboxRow, as_of: datetime) -> None:
        hook = self.webhooks.get(row.destination)
        if hook is None:
            raise WebhookRejected(f"webhook '{row.destination}' is no longer configured")
        self.post(hook, row.destination, row.id, self._open(row.payload).encode(), as_of)

    def _open(self, payload: str) -> str:
        """The body of a queued payload, opened in memory when it is sealed.

        Raises:
            ErasedProfileError: The profile was erased (the outbox drops the row).
            WebhookRetryable: It is sealed and no master key is configured (yet).
        """
        from segmint.privacy.keys import is_sealed

        if not is_sealed(payload):
            return payload
        privacy = getattr(self.store, "privacy", None)
        keyring = None if privacy is None else privacy.keyring
        if keyring is None:
            raise WebhookRetryable(
                "the queued payload is sealed (PII encryption) and no master key is "
                "configured: set $SEGMINT_MASTER_KEY or restore the key file"
            )
        return str(keyring.unseal(payload))

    def post(self, hook: WebhookDef, name: str, row_id: int, body: bytes, as_of: datetime) -> None:
        """Send one signed delivery.

        Raises:
            WebhookRetryable: On a network error, 408, 425, 429 or 5xx.
            WebhookRejected: On any other non-2xx answer.
        """
        stamp = int(as_of.timestamp())
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: str(stamp),
            SIGNATURE_HEADER: sign(self.secrets[name], stamp, body),
            ID_HEADER: str(row_id),
        }
        try:
            response = self.client.post(hook.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise WebhookRetryable(f"{type(exc).__name__}: {exc}") from exc
        code = response.status_code
        if 200 <= code < 300:
            return
        reason = f"HTTP {code}: {response.text[:200]}"
        if code >= 500 or code in RETRYABLE_STATUS:
            raise WebhookRetryable(reason)
        raise WebhookRejected(reason)

    def run(self, clock: Clock, stop: threading.Event, interval: float = 1.0) -> None:
        """Deliver due rows every ``interval`` seconds until ``stop`` is set (for servers)."""
        while not stop.is_set():
            self.deliver_due(clock.now())
            stop.wait(interval)

    def close(self) -> None:
        """Close the HTTP client."""
        self.client.close()


def _sealing(store: Store) -> Any:
    """The workspace's privacy settings when PII is sealed at rest, else None."""
    privacy = getattr(store, "privacy", None)  # set by the workspace (segmint.privacy)
    return privacy if privacy is not None and privacy.encrypting else None


def _secrets_from_env(webhooks: Mapping[str, WebhookDef]) -> dict[str, bytes]:
    secrets: dict[str, bytes] = {}
    for name, hook in webhooks.items():
        value = os.environ.get(hook.secret_env)
        if not value:
            raise MembershipError(
                f"webhook '{name}' needs a signing secret: set the environment variable "
                f"{hook.secret_env} (webhooks.{name}.secret_env names it)"
            )
        secrets[name] = value.encode()
    return secrets
