"""The event record shared by intake, traits and the real-time membership engine."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

EVENT_TYPES = ("track", "identify", "page", "screen", "group", "alias")

SCORE_TYPE = "score"
"""The type of the events a model's scoring writes (``traits`` holds the scores).

Not one of :data:`EVENT_TYPES`: intake refuses it from clients. Score events feed only the
traits their model declares; the built-ins (``last_seen_at``, ``event_count``) skip them, so
scoring a profile never makes it look active.
"""


@dataclass(frozen=True, slots=True)
class Event:
    """One stored event, as the real-time path sees it.

    Attributes:
        message_id: The idempotency key (the client's ``messageId`` or a derived one).
        type: One of :data:`EVENT_TYPES`.
        event: The track event name (``Order Completed``), the page or screen name, or None.
        profile_id: The canonical profile the event belongs to after identity resolution.
        timestamp: When it happened (aware UTC, clock-skew corrected).
        properties: The event's properties (track, page, screen).
        traits: The traits it carries (identify, group).
        user_id: The client's userId, if any.
        anonymous_id: The client's anonymousId, if any.
        received_at: When segmint received it (aware UTC).
        seq: The store's sequence number, when known.
    """

    message_id: str
    type: str
    event: str | None
    profile_id: str
    timestamp: datetime
    properties: dict[str, Any] = field(default_factory=dict)
    traits: dict[str, Any] = field(default_factory=dict)
    user_id: str | None = None
    anonymous_id: str | None = None
    received_at: datetime | None = None
    seq: int | None = None
