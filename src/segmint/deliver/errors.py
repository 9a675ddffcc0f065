"""Errors raised while delivering email.

Every delivery failure is marked :class:`~segmint.errors.Transient` (retry with backoff) or
:class:`~segmint.errors.Terminal` (give up and record why); retry logic looks only at the
mark, never at the concrete class::

    DeliveryError                          (SegmintError)
    ├── TransientDeliveryError  + Transient
    │   ├── SoftBounce                     4xx reply: mailbox busy, greylisting, rate limit
    │   └── ConnectionDropped              connect, TLS, timeout or mid-session disconnect
    ├── TerminalDeliveryError   + Terminal
    │   ├── HardBounce                     5xx to RCPT TO: the address is suppressed
    │   ├── MessageRejected                5xx to MAIL FROM or DATA: this message fails
    │   └── AuthenticationFailed           the server refused the credentials
    ├── CampaignError                      unknown campaign, segment, topic or template
    └── LinkError                          a tracking or unsubscribe link was tampered with
"""

from __future__ import annotations

from segmint.errors import SegmintError, Terminal, Transient


class DeliveryError(SegmintError):
    """Base class of delivery errors.

    Attributes:
        code: The SMTP reply code, when the server gave one.
        reason: A short machine-readable reason recorded in the send ledger.
    """

    reason = "error"

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class TransientDeliveryError(DeliveryError, Transient):
    """A failure that may go away when retried later."""

    reason = "transient"


class SoftBounce(TransientDeliveryError):
    """The server answered 4xx: try again later."""

    reason = "soft_bounce"


class ConnectionDropped(TransientDeliveryError):
    """The connection could not be made or was lost mid-session."""

    reason = "connection"


class TerminalDeliveryError(DeliveryError, Terminal):
    """A failure that retrying will not fix."""

    reason = "terminal"


class HardBounce(TerminalDeliveryError):
    """The server refused the recipient with a 5xx reply; the address gets suppressed."""

    reason = "hard_bounce"


class MessageRejected(TerminalDeliveryError):
    """The server refused the sender or the message content with a 5xx reply."""

    reason = "rejected"


class AuthenticationFailed(TerminalDeliveryError):
    """The SMTP server refused the configured credentials."""

    reason = "auth_failed"


class CampaignError(SegmintError):
    """A campaign cannot run: unknown campaign, segment, topic or template."""


class LinkError(SegmintError, ValueError):
    """A signed link failed verification: it was altered, truncated or signed elsewhere."""
