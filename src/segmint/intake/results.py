"""The records passed through the pipeline: submissions in, results out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from segmint.events import Event
from segmint.intake.errors import PayloadError
from segmint.intake.identity import Merge
from segmint.intake.payloads import Message


@dataclass(frozen=True)
class Rejection:
    """A malformed message left out of a submission (``invalid="reject"``)."""

    index: int
    error: PayloadError


@dataclass
class Submission:
    """Decoded messages from one source, committed together with others."""

    messages: list[Message]
    source: str
    quarantine: list[tuple[Any, ...]] = field(default_factory=list)
    replay_ids: list[int] | None = None


@dataclass(frozen=True)
class SubmitResult:
    """What happened to a submission.

    Attributes:
        accepted: Messages stored as new events.
        duplicates: Messages whose messageId was already stored (or quarantined).
        quarantined: Messages that broke the tracking plan (or were malformed, with
            ``invalid="quarantine"``).
        events: The stored events, with their resolved profile ids.
        merges: The profile merges these messages caused.
        rejected: Malformed messages left out (``invalid="reject"``).
        unreadable: Quarantined messages a replay skipped because nobody can read them any
            more (sealed under the key of a person since erased).
    """

    accepted: int = 0
    duplicates: int = 0
    quarantined: int = 0
    events: tuple[Event, ...] = ()
    merges: tuple[Merge, ...] = ()
    rejected: tuple[Rejection, ...] = ()
    unreadable: int = 0
