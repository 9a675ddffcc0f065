"""Errors of the membership engine.

::

    SegmintError
    └── MembershipError
        ├── SegmentStructureError          cycles, bad parents, bad groups
        ├── UnknownSegmentError  + KeyError
        ├── ReconcileError                 live and batch memberships differ
        ├── StalePreviewError              stored traits cannot answer a preview
        └── WebhookError
            ├── WebhookRetryable + Transient   5xx, 408, 425, 429, network failures
            └── WebhookRejected  + Terminal    other 4xx, webhook no longer configured

Webhook retries are decided by :class:`segmint.deliver.retry.RetryPolicy` from the mark
alone (see :mod:`segmint.membership.webhooks`).
"""

from __future__ import annotations

from segmint.errors import SegmintError, Terminal, Transient


class MembershipError(SegmintError):
    """Base class of the membership engine's errors."""


class SegmentStructureError(MembershipError):
    """The segments cannot be ordered: a cycle, or a parent inside its child's group.

    Attributes:
        segment: The segment the problem is reported at, when one is to blame.
    """

    def __init__(self, message: str, segment: str | None = None) -> None:
        super().__init__(message)
        self.segment = segment


class UnknownSegmentError(MembershipError, KeyError):
    """A segment name that the workspace does not define."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown segment"


class ReconcileError(MembershipError):
    """Live memberships and a batch recompute disagree."""


class StalePreviewError(MembershipError):
    """The stored traits cannot answer a preview (none yet, or other definitions)."""


class WebhookError(MembershipError):
    """A webhook delivery failed."""


class WebhookRetryable(WebhookError, Transient):
    """The receiver may accept the delivery later (5xx, 408, 425, 429, network errors)."""


class WebhookRejected(WebhookError, Terminal):
    """Retrying will not help (another 4xx answer, or the webhook is no longer configured)."""
