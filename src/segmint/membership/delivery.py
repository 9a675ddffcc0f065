"""Delivering the webhook outbox: POST signed JSON, back off exponentially, dead-letter.

The dispatcher takes ``as_of`` from its caller for every decision (what is due, the
signature timestamp, the next attempt), so tests drive it with a fixed clock and never
sleep. A failed attempt is retried after ``base_delay * 2 ** (attempts - 1)`` (capped at
``max_delay``). Network errors, 408, 429 and 5xx answers are transient; any other 4xx is
terminal and dead-letters the row at once. After ``max_attempts`` tries a row is ``dead``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx

from segmint.clock import Clock
from segmint.config.model import WebhookDef
from segmint.membership.errors import (
    MembershipError,
    WebhookError,
    WebhookRejected,
    WebhookRetryable,
)
from segmint.membership.webhooks import ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from segmint.store import Store, utcnow_naive

RETRYABLE_STATUS = frozenset({408, 425, 429})


@dataclass
class DeliveryReport:
    """What one :meth:`WebhookDispatcher.deliver_due` pass did."""

    delivered: int = 0
    retried: int = 0
    dead: int = 0


class WebhookDispatcher:
    """Delivers due outbox rows.

    Args:
        store: The store holding ``webhook_outbox``.
        webhooks: The workspace's webhooks by name.
        secrets: Signing secret per webhook; read from each webhook's ``secret_env``
            environment variable when omitted.
        client: The HTTP client (a default one with a 10 s timeout is made if omitted).
        base_delay: The first retry delay.
        max_delay: The longest retry delay.

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
        base_delay: timedelta = timedelta(seconds=10),
        max_delay: timedelta = timedelta(hours=1),
    ) -> None:
        self.store = store
        self.webhooks = dict(webhooks)
        self.secrets = dict(secrets) if secrets is not None else _secrets_from_env(webhooks)
        self.client = client or httpx.Client(timeout=10.0)
        self.base_delay = base_delay
        self.max_delay = max_delay

    def backoff(self, attempts: int) -> timedelta:
        """Return the delay before the next try after ``attempts`` failed tries."""
        delay: timedelta = self.base_delay * (2 ** max(attempts - 1, 0))
        return min(delay, self.max_delay)

    def deliver_due(self, as_of: datetime, limit: int = 100) -> DeliveryReport:
        """Try every pending row due at ``as_of`` (oldest first), up to ``limit`` rows."""
        report = DeliveryReport()
        rows = self.store.fetchall(
            "SELECT id, webhook, payload, attempts FROM webhook_outbox "
            "WHERE status = 'pending' AND next_attempt_at <= ? "
            f"ORDER BY next_attempt_at, id LIMIT {int(limit)}",
            [utcnow_naive(as_of)],
        )
        for row_id, name, payload, attempts in rows:
            self._attempt(int(row_id), name, payload, int(attempts), as_of, report)
        return report

    def _attempt(
        self,
        row_id: int,
        name: str,
        payload: str,
        attempts: int,
        as_of: datetime,
        report: DeliveryReport,
    ) -> None:
        hook = self.webhooks.get(name)
        try:
            if hook is None:
                raise WebhookRejected(f"webhook '{name}' is no longer configured")
            self.post(hook, name, row_id, payload.encode(), as_of)
        except WebhookError as exc:
            self._failed(row_id, attempts + 1, hook, exc, as_of, report)
            return
        self._mark(row_id, "delivered", attempts + 1, None, as_of, delivered=True)
        report.delivered += 1

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

    def _failed(
        self,
        row_id: int,
        attempts: int,
        hook: WebhookDef | None,
        exc: WebhookError,
        as_of: datetime,
        report: DeliveryReport,
    ) -> None:
        limit = hook.max_attempts if hook is not None else 1
        if isinstance(exc, WebhookRejected) or attempts >= limit:
            self._mark(row_id, "dead", attempts, str(exc), as_of)
            report.dead += 1
            return
        self._mark(row_id, "pending", attempts, str(exc), as_of + self.backoff(attempts))
        report.retried += 1

    def _mark(
        self,
        row_id: int,
        status: str,
        attempts: int,
        error: str | None,
        at: datetime,
        *,
        delivered: bool = False,
    ) -> None:
        self.store.execute(
            "UPDATE webhook_outbox SET status = ?, attempts = ?, last_error = ?, "
            "next_attempt_at = ?, delivered_at = ? WHERE id = ?",
            [status, attempts, error, utcnow_naive(at), utcnow_naive(at) if delivered else None,
             row_id],
        )  # fmt: skip

    def run(self, clock: Clock, stop: threading.Event, interval: float = 1.0) -> None:
        """Deliver due rows every ``interval`` seconds until ``stop`` is set (for servers)."""
        while not stop.is_set():
            self.deliver_due(clock.now())
            stop.wait(interval)

    def close(self) -> None:
        """Close the HTTP client."""
        self.client.close()


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
