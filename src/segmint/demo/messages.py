"""Segment-spec message dicts for the demo shop.

A customer's timeline is first collected as :class:`Entry` records (time, kind, payload);
once sorted, :func:`to_message` turns each into a message as the Segment HTTP Tracking API
defines it (``type``, ``messageId``, ``timestamp``, ``userId``/``anonymousId``, ``properties``
or ``traits``, ``context``). Web events carry the device's ``anonymousId`` and, once the
visitor has identified, the ``userId``; email events come from the email provider and carry
the ``userId`` only.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

Kind = Literal["track", "page", "identify"]
Channel = Literal["web", "email"]
LIBRARY = {"name": "segmint-demo", "version": "1.0"}


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a customer is to the tracking layer: device id, user id, and when they identified."""

    anonymous_id: str
    user_id: str
    identified_at: float | None
    timezone: str


@dataclass(frozen=True, slots=True)
class Entry:
    """One event of a timeline before it becomes a message.

    Attributes:
        at: Epoch seconds (UTC).
        kind: The Segment message type.
        name: The track event name or the page name; None for identify.
        payload: The properties (track, page) or traits (identify).
        channel: ``web`` (the shop's site) or ``email`` (the email provider).
    """

    at: float
    kind: Kind
    name: str | None
    payload: dict[str, Any]
    channel: Channel = "web"


def iso(at: float) -> str:
    """Format epoch seconds as an ISO 8601 UTC instant, truncated to milliseconds, ``Z``."""
    seconds, millis = divmod(math.floor(at * 1000), 1000)
    t = time.gmtime(seconds)
    return (
        f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T"
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}.{millis:03d}Z"
    )


def to_message(entry: Entry, message_id: str, who: Identity) -> dict[str, Any]:
    """Build the Segment-spec message for ``entry``.

    Args:
        entry: The timeline entry.
        message_id: Its stable message id.
        who: The customer's identity; decides which ids the message carries.

    Returns:
        A message dict ready for intake.
    """
    message: dict[str, Any] = {
        "type": entry.kind,
        "messageId": message_id,
        "timestamp": iso(entry.at),
    }
    identified = who.identified_at is not None and entry.at >= who.identified_at
    if entry.channel == "web" or not identified:
        message["anonymousId"] = who.anonymous_id
    if identified:
        message["userId"] = who.user_id
    if entry.kind == "identify":
        message["traits"] = entry.payload
    else:
        message["properties"] = entry.payload
        if entry.kind == "track":
            message["event"] = entry.name
        else:
            message["name"] = entry.name
    message["context"] = {"library": LIBRARY, "timezone": who.timezone}
    return message


REQUIRED_KEYS: dict[str, tuple[str, ...]] = {
    "track": ("event", "properties"),
    "page": ("name", "properties"),
    "identify": ("traits",),
}


def spec_problems(message: dict[str, Any]) -> list[str]:
    """Check a message against the Segment spec's shape; return the problems found (if any).

    The check covers what the demo relies on: a known type, a messageId, an ISO timestamp
    with a zone, at least one of userId/anonymousId, and the type's own fields.
    """
    problems: list[str] = []
    kind = message.get("type")
    if kind not in REQUIRED_KEYS:
        return [f"unknown type {kind!r}"]
    if not isinstance(message.get("messageId"), str) or not message["messageId"]:
        problems.append("messageId missing")
    stamp = message.get("timestamp")
    if not isinstance(stamp, str) or not stamp.endswith("Z"):
        problems.append("timestamp is not an ISO 8601 UTC instant")
    else:
        datetime.fromisoformat(stamp[:-1] + "+00:00")
    if not (message.get("userId") or message.get("anonymousId")):
        problems.append("neither userId nor anonymousId")
    for key in REQUIRED_KEYS[kind]:
        if key not in message:
            problems.append(f"{kind} without {key}")
    return problems
