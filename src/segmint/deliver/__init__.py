"""Delivery: the consent and suppression gate, the send ledger, SMTP, tracking links.

The flow of one campaign run (:class:`CampaignRun`): the segment's members are written to
the send ledger, checked by the :class:`ConsentGate`, rendered by a composer, and sent
through an :class:`EmailTransport` (the pooled :class:`SmtpPool`, or an outbox folder for a
dry run) with retries on transient failures. Opens, clicks and unsubscribes come back
through signed links (:class:`LinkSigner`, served by :mod:`segmint.api.links`) and enter
intake as events.

Delivery owns every outbound retry: :class:`RetryPolicy` (decides only by the Transient /
Terminal mark) and the durable :class:`Outbox` (rows written with the producer's
transaction, delivered with backoff, dead-lettered) serve email and the membership webhooks
alike.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from segmint.common import lazy_exports

if TYPE_CHECKING:  # imported on first use: a command loads only what it runs
    from segmint.deliver.campaign import CampaignRun, campaign_def
    from segmint.deliver.consent import (
        ConsentChange,
        consent_history,
        record_consent,
        suppress,
        sync_trait_consents,
        unsuppress,
    )
    from segmint.deliver.errors import (
        CampaignError,
        ConnectionDropped,
        DeliveryError,
        HardBounce,
        LinkError,
        MessageRejected,
        SoftBounce,
    )
    from segmint.deliver.fake import FakeTransport, OutboxTransport
    from segmint.deliver.gate import ConsentGate
    from segmint.deliver.ledger import SendLedger
    from segmint.deliver.links import LinkSigner
    from segmint.deliver.outbox import Outbox, OutboxReport, OutboxRow
    from segmint.deliver.ratelimit import TokenBucket
    from segmint.deliver.report import CampaignReport
    from segmint.deliver.retry import WEBHOOK_RETRY, RetryPolicy, with_retries
    from segmint.deliver.subjects import ConsentSubject, consent_subject, record_subject_consent
    from segmint.deliver.transport import EmailTransport, SendReceipt, SmtpPool

__getattr__ = lazy_exports(
    __name__,
    {
        "CampaignError": "errors",
        "CampaignReport": "report",
        "CampaignRun": "campaign",
        "ConnectionDropped": "errors",
        "ConsentChange": "consent",
        "ConsentGate": "gate",
        "ConsentSubject": "subjects",
        "DeliveryError": "errors",
        "EmailTransport": "transport",
        "FakeTransport": "fake",
        "HardBounce": "errors",
        "LinkError": "errors",
        "LinkSigner": "links",
        "MessageRejected": "errors",
        "Outbox": "outbox",
        "OutboxReport": "outbox",
        "OutboxRow": "outbox",
        "OutboxTransport": "fake",
        "RetryPolicy": "retry",
        "SendLedger": "ledger",
        "SendReceipt": "transport",
        "SmtpPool": "transport",
        "SoftBounce": "errors",
        "TokenBucket": "ratelimit",
        "WEBHOOK_RETRY": "retry",
        "campaign_def": "campaign",
        "consent_history": "consent",
        "consent_subject": "subjects",
        "record_consent": "consent",
        "record_subject_consent": "subjects",
        "suppress": "consent",
        "sync_trait_consents": "consent",
        "unsuppress": "consent",
        "with_retries": "retry",
    },
)

__all__ = [
    "CampaignError",
    "CampaignReport",
    "CampaignRun",
    "ConnectionDropped",
    "ConsentChange",
    "ConsentGate",
    "ConsentSubject",
    "DeliveryError",
    "EmailTransport",
    "FakeTransport",
    "HardBounce",
    "LinkError",
    "LinkSigner",
    "MessageRejected",
    "Outbox",
    "OutboxReport",
    "OutboxRow",
    "OutboxTransport",
    "RetryPolicy",
    "SendLedger",
    "SendReceipt",
    "SmtpPool",
    "SoftBounce",
    "TokenBucket",
    "WEBHOOK_RETRY",
    "campaign_def",
    "consent_history",
    "consent_subject",
    "record_consent",
    "record_subject_consent",
    "suppress",
    "sync_trait_consents",
    "unsuppress",
    "with_retries",
]
