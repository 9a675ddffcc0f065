"""Intake: everything that enters segmint goes through :class:`Intake`.

decode → validate (tracking plan) → dedupe (messageId) → resolve identity → append (durable).
"""

from __future__ import annotations

from segmint.intake.errors import (
    AmbiguousPersonError,
    IntakeError,
    PayloadError,
    PayloadTooLarge,
    PersonRefError,
    UnknownPersonError,
)
from segmint.intake.identity import Conflict, Merge, merge_roots, resolve_person
from segmint.intake.payloads import MAX_BATCH_BYTES, MAX_MESSAGE_BYTES, Message, decode_message
from segmint.intake.pipeline import Intake, Listener
from segmint.intake.quarantine import QuarantinedItem, list_quarantine
from segmint.intake.results import Rejection, Submission, SubmitResult

__all__ = [
    "MAX_BATCH_BYTES",
    "MAX_MESSAGE_BYTES",
    "AmbiguousPersonError",
    "Conflict",
    "Intake",
    "IntakeError",
    "Listener",
    "Merge",
    "Message",
    "PayloadError",
    "PayloadTooLarge",
    "PersonRefError",
    "QuarantinedItem",
    "Rejection",
    "Submission",
    "SubmitResult",
    "UnknownPersonError",
    "decode_message",
    "list_quarantine",
    "merge_roots",
    "resolve_person",
]
