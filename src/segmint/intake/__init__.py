"""Intake: everything that enters segmint goes through :class:`Intake`.

decode → validate (tracking plan) → dedupe (messageId) → resolve identity → append (durable).
"""

from __future__ import annotations

from segmint.intake.errors import IntakeError, PayloadError, PayloadTooLarge
from segmint.intake.identity import Conflict, Merge
from segmint.intake.payloads import MAX_BATCH_BYTES, MAX_MESSAGE_BYTES, Message, decode_message
from segmint.intake.pipeline import Intake, Listener
from segmint.intake.quarantine import QuarantinedItem, list_quarantine
from segmint.intake.results import Rejection, Submission, SubmitResult

__all__ = [
    "MAX_BATCH_BYTES",
    "MAX_MESSAGE_BYTES",
    "Conflict",
    "Intake",
    "IntakeError",
    "Listener",
    "Merge",
    "Message",
    "PayloadError",
    "PayloadTooLarge",
    "QuarantinedItem",
    "Rejection",
    "Submission",
    "SubmitResult",
    "decode_message",
    "list_quarantine",
]
