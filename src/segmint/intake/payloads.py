"""Segment-spec messages: decoding, validation and the clock-skew correction.

A message is a JSON object as the Segment HTTP Tracking API defines it (``type``,
``userId``, ``anonymousId``, ``event``, ``properties``, ``traits``, ``timestamp``,
``sentAt``, ``messageId``, ``context`` …). :func:`decode_message` checks it and returns a
:class:`Message`, or raises :class:`~segmint.intake.errors.PayloadError` naming the field.

Timestamps follow the spec's correction for client clock skew::

    originalTimestamp = message.timestamp (else message.originalTimestamp)
    timestamp         = receivedAt - (sentAt - originalTimestamp)   when sentAt is known
                      = originalTimestamp                           when it is not (imports)
                      = receivedAt                                  when neither is given

``receivedAt`` is always segmint's own clock at arrival; a client-sent ``receivedAt`` is
ignored. ``sentAt`` is the message's own or, in a batch, the batch's.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

import orjson

from segmint.clock import EARLIEST, LATEST, parse_instant
from segmint.events import EVENT_TYPES
from segmint.intake.errors import PayloadError, PayloadTooLarge
from segmint.intake.identifiers import usable_id

MAX_MESSAGE_BYTES = 32 * 1024
"""The largest message accepted, as the Segment API limits it (32 KB)."""
MAX_BATCH_BYTES = 500 * 1024
"""The largest batch body accepted (500 KB)."""
MAX_DEPTH = 32
"""The deepest nesting of objects and arrays accepted inside a message."""
MAX_ID_LENGTH = 1024
"""The longest userId, anonymousId, messageId or event name accepted."""
# Event times outside segmint.clock's EARLIEST..LATEST are refused, not clamped: a clamped
# time would be a made-up fact stored as an event.

_OBJECTS = ("properties", "traits", "context")


@dataclass(slots=True)
class Message:
    """A decoded, validated message, ready for identity resolution.

    Attributes:
        type: One of :data:`segmint.events.EVENT_TYPES`.
        message_id: The client's messageId, or one derived from the content.
        user_id: The userId, if any.
        anonymous_id: The anonymousId, if any.
        event: The track event name, or the page/screen name.
        properties: The event properties (alias and group keep previousId/groupId here).
        traits: identify traits, or group traits.
        context: The context object.
        timestamp: When it happened, skew corrected (aware UTC).
        received_at: When segmint received it (aware UTC).
        previous_id: An alias call's previousId.
        raw: The message as received.
        batch_sent_at: The batch's ``sentAt`` when the message has none of its own.
    """

    type: str
    message_id: str
    user_id: str | None
    anonymous_id: str | None
    event: str | None
    properties: dict[str, Any]
    traits: dict[str, Any]
    context: dict[str, Any]
    timestamp: datetime
    received_at: datetime
    previous_id: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)
    batch_sent_at: Any = None

    @property
    def payload(self) -> dict[str, Any]:
        """The message as received, with the batch's ``sentAt`` (what quarantine keeps)."""
        if self.batch_sent_at is None:
            return self.raw
        return {**self.raw, "sentAt": self.batch_sent_at}


def decode_message(
    raw: Any,
    *,
    received_at: datetime,
    type_: str | None = None,
    sent_at: Any = None,
    defaults: Mapping[str, Any] | None = None,
    scan_nul: bool = True,
    check_size: bool = True,
    check_depth: bool = True,
) -> Message:
    """Validate one Segment-spec message and return it decoded.

    Args:
        raw: The parsed JSON value.
        received_at: When segmint received it (aware UTC).
        type_: The call type imposed by the endpoint (``/v1/track``); else ``raw["type"]``.
        sent_at: The batch's ``sentAt``, used when the message has none.
        defaults: Batch-level ``context`` and ``integrations`` applied when the message has none.
        scan_nul: Look for NUL characters (which neither backend can store) in every string;
            a caller that saw no ``\u0000`` in the raw JSON may skip it.
        check_size: Enforce :data:`MAX_MESSAGE_BYTES`; a caller whose whole body is smaller
            may skip it.
        check_depth: Enforce :data:`MAX_DEPTH`; a caller that checked the raw JSON with
            :func:`nesting_within` may skip it.

    Raises:
        PayloadError: Naming the first malformed field.
    """
    if type(raw) is not dict:
        raise PayloadError("", f"a message must be a JSON object, got {_kind(raw)}")
    if defaults:
        raw = {**{k: v for k, v in defaults.items() if v is not None}, **raw}
    kind = type_ or raw.get("type")
    if kind not in EVENT_TYPES:
        raise PayloadError("type", f"must be one of {', '.join(EVENT_TYPES)}, got {kind!r}")
    get = raw.get
    objects = {"properties": get("properties"), "traits": get("traits"), "context": get("context")}
    for name, value in objects.items():
        if type(value) is not dict or scan_nul or check_depth:
            objects[name] = _object(raw, name, scan_nul or check_depth, scan_nul)
    if kind == "identify" and not objects["traits"]:
        # RudderStack's libraries send identify traits in context.traits only.
        context_traits = objects["context"].get("traits")
        if isinstance(context_traits, dict):
            objects["traits"] = context_traits
    user_id, anonymous_id = _id(raw, "userId"), _id(raw, "anonymousId")
    if not (usable_id(user_id) or usable_id(anonymous_id)):
        _no_usable_id(user_id, anonymous_id)
    batch_sent_at = sent_at if sent_at is not None and "sentAt" not in raw else None
    if check_size:
        _check_size(raw)
    event, previous_id = _specifics(kind, raw, objects)
    return Message(
        type=kind,
        message_id=_message_id(raw),
        user_id=user_id,
        anonymous_id=anonymous_id,
        event=event,
        properties=objects["properties"],
        traits=objects["traits"],
        context=objects["context"],
        timestamp=corrected_timestamp(raw, received_at, batch_sent_at),
        received_at=received_at,
        previous_id=previous_id,
        raw=raw,
        batch_sent_at=batch_sent_at,
    )


_PAIR = re.compile(rb"\{\}|\[\]")
_DROP = bytes(b for b in range(256) if b not in b'{}[]"')


def nesting_within(body: bytes, limit: int) -> bool:
    """Whether the JSON text ``body`` nests objects and arrays at most ``limit`` deep.

    Runs at C speed, so a batch's messages need no walk when the whole body is shallow:
    escaped backslashes and quotes are dropped, then everything but brackets and quotes,
    then strings, and each pass of the last step removes one level of empty pairs.
    ``body`` must be valid JSON.
    """
    plain = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    shape = b"".join(plain.translate(None, _DROP).split(b'"')[::2])  # outside strings
    for _ in range(limit):
        if not shape:
            return True
        shape = _PAIR.sub(b"", shape)  # one level per pass: every innermost pair at once
    return not shape


def corrected_timestamp(
    raw: Mapping[str, Any], received_at: datetime, batch_sent_at: Any = None
) -> datetime:
    """Apply the spec's clock-skew correction (see the module docstring).

    Args:
        raw: The message.
        received_at: When segmint received it.
        batch_sent_at: The batch's ``sentAt``, used when the message has none.
    """
    original = _instant(raw, "timestamp") or _instant(raw, "originalTimestamp")
    sent = _instant(raw, "sentAt")
    if sent is None and batch_sent_at is not None:
        sent = _instant({"sentAt": batch_sent_at}, "sentAt")
    if original is None:
        return received_at
    if sent is None:
        return original
    try:
        corrected = received_at - (sent - original)
    except OverflowError:
        corrected = None
    if corrected is None or not EARLIEST <= corrected < LATEST:
        raise PayloadError("timestamp", f"is out of range once corrected by sentAt ({_RANGE})")
    return corrected


def _specifics(
    kind: str, raw: Mapping[str, Any], objects: dict[str, dict[str, Any]]
) -> tuple[str | None, str | None]:
    if kind == "track":
        return _text(raw, "event", required=True), None
    if kind in ("page", "screen"):
        return _text(raw, "name"), None
    if kind == "alias":
        previous = _id(raw, "previousId")
        if previous is None:
            raise PayloadError("previousId", "an alias call needs a previousId")
        if raw.get("userId") is None:
            raise PayloadError("userId", "an alias call needs a userId")
        for name, value in (("previousId", previous), ("userId", _id(raw, "userId"))):
            if not usable_id(value):
                raise PayloadError(name, f"{value!r} is a placeholder, not an id: an alias "
                                   "would merge everyone it was sent for")  # fmt: skip
        objects["properties"] = {**objects["properties"], "previousId": previous}
        return None, previous
    if kind == "group":
        group_id = _id(raw, "groupId")
        if group_id is None:
            raise PayloadError("groupId", "a group call needs a groupId")
        objects["properties"] = {**objects["properties"], "groupId": group_id}
    return None, None


def _object(raw: Mapping[str, Any], name: str, walk: bool, scan_nul: bool) -> dict[str, Any]:
    value = raw.get(name)
    if value is None:
        return {}
    if type(value) is not dict:
        raise PayloadError(name, f"must be a JSON object, got {_kind(value)}")
    if walk:
        _check_nested(value, name, 1, scan_nul)
    return value


def _check_nested(value: Any, path: str, depth: int, scan_nul: bool) -> None:
    """Refuse nesting past :data:`MAX_DEPTH` and (when asked) NUL characters."""
    if depth > MAX_DEPTH:
        raise PayloadError(path, f"nested deeper than {MAX_DEPTH} levels")
    if type(value) is dict:
        for key, item in value.items():
            if scan_nul and "\x00" in key:
                raise PayloadError(path, "a key contains a NUL character")
            kind = type(item)
            if kind is dict or kind is list or (scan_nul and kind is str):
                _check_nested(item, f"{path}.{key}", depth + 1, scan_nul)
    elif type(value) is list:
        for index, item in enumerate(value):
            kind = type(item)
            if kind is dict or kind is list or (scan_nul and kind is str):
                _check_nested(item, f"{path}[{index}]", depth + 1, scan_nul)
    elif "\x00" in value:
        raise PayloadError(path, "contains a NUL character")


def _no_usable_id(user_id: str | None, anonymous_id: str | None) -> None:
    if user_id is None and anonymous_id is None:
        raise PayloadError("userId", "a message needs a userId or an anonymousId")
    field, value = ("userId", user_id) if user_id is not None else ("anonymousId", anonymous_id)
    raise PayloadError(field, f"{value!r} is blank or a placeholder, not an id: a message needs "
                       "a real userId or anonymousId")  # fmt: skip


def _id(raw: Mapping[str, Any], name: str) -> str | None:
    value = raw.get(name)
    if type(value) is str and 0 < len(value) <= MAX_ID_LENGTH and "\x00" not in value:
        return value  # the common case, checked at once
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise PayloadError(name, f"must be a string, got {_kind(value)}")
    return _checked_text(str(value), name)


def _text(raw: Mapping[str, Any], name: str, *, required: bool = False) -> str | None:
    value = raw.get(name)
    if value is None or value == "":
        if required:
            raise PayloadError(name, "is required")
        return None
    if not isinstance(value, str):
        raise PayloadError(name, f"must be a string, got {_kind(value)}")
    return _checked_text(value, name)


def _checked_text(value: str, name: str) -> str:
    if len(value) > MAX_ID_LENGTH:
        raise PayloadError(name, f"is {len(value)} characters long, over {MAX_ID_LENGTH}")
    if "\x00" in value:
        raise PayloadError(name, "contains a NUL character")
    return value


def _instant(raw: Mapping[str, Any], name: str) -> datetime | None:
    value = raw.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise PayloadError(name, f"must be an ISO 8601 string, got {_kind(value)}")
    try:
        instant = _parse_instant(value)
    except ValueError as exc:
        raise PayloadError(name, _unreadable(value[:40], exc)) from None
    if not EARLIEST <= instant < LATEST:
        raise PayloadError(name, f"is out of range: {value[:40]!r} ({_RANGE})")
    return instant


def _unreadable(shown: str, exc: ValueError) -> str:
    """Why an event time cannot be read: not ISO 8601 in form, or no such instant in it."""
    why = str(exc).rpartition(": ")[2]  # parse_instant's reason, after the text it quotes
    if why == "not ISO 8601":
        return f"is not an ISO 8601 date-time: {shown!r}"
    if why.startswith("year "):  # year 0, or past 9999
        return f"is out of range: {shown!r} ({why}; {_RANGE})"
    return f"is no such date-time: {shown!r} ({why})"  # February 30, hour 25


_RANGE = f"accepted are {EARLIEST:%Y-%m-%d} to {LATEST - timedelta(days=1):%Y-%m-%d}, UTC"


@lru_cache(maxsize=4096)
def _parse_instant(text: str) -> datetime:
    """:func:`parse_instant`, cached: a batch's ``sentAt`` repeats in every message."""
    return parse_instant(text)


def _message_id(raw: Mapping[str, Any]) -> str:
    given = _id(raw, "messageId")
    if given is not None:
        return given
    content = {k: v for k, v in raw.items() if k not in ("sentAt", "writeKey")}
    digest = hashlib.sha256(orjson.dumps(content, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return f"derived-{digest[:32]}"


def _check_size(raw: Mapping[str, Any]) -> None:
    size = len(orjson.dumps(raw))
    if size > MAX_MESSAGE_BYTES:
        raise PayloadTooLarge("", f"message is {size} bytes, over the {MAX_MESSAGE_BYTES} limit")


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "a number"
    return names.get(type(value), type(value).__name__)
