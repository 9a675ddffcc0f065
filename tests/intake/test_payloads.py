from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segmint.intake import PayloadError, PayloadTooLarge, decode_message
from segmint.intake.payloads import MAX_DEPTH, corrected_timestamp

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def decode(raw: object, **kw: object) -> object:
    return decode_message(raw, received_at=NOW, **kw)  # type: ignore[arg-type]


def test_track_decodes_with_defaults() -> None:
    m = decode_message(
        {"type": "track", "userId": 42, "event": "Order Completed", "properties": {"total": 9}},
        received_at=NOW,
    )
    assert (m.type, m.user_id, m.event, m.properties) == (
        "track",
        "42",
        "Order Completed",
        {"total": 9},
    )
    assert m.timestamp == NOW and m.received_at == NOW
    assert m.message_id.startswith("derived-")


def test_derived_message_id_is_stable_across_sends() -> None:
    raw = {"type": "track", "userId": "u", "event": "E", "timestamp": "2026-01-01T00:00:00Z"}
    first = decode_message({**raw, "sentAt": "2026-01-01T00:00:01Z"}, received_at=NOW)
    retry = decode_message({**raw, "sentAt": "2026-01-01T00:05:00Z"}, received_at=NOW)
    assert first.message_id == retry.message_id


@pytest.mark.parametrize(
    ("raw", "field", "words"),
    [
        ([], "", "JSON object"),
        ({"type": "bogus", "userId": "u"}, "type", "one of"),
        ({"type": "track", "event": "E"}, "userId", "userId or an anonymousId"),
        ({"type": "track", "userId": {"x": 1}, "event": "E"}, "userId", "string"),
        ({"type": "track", "userId": True, "event": "E"}, "userId", "boolean"),
        ({"type": "track", "userId": "u"}, "event", "required"),
        ({"type": "track", "userId": "u", "event": 5}, "event", "string"),
        ({"type": "track", "userId": "u", "event": "E", "properties": [1]}, "properties", "object"),
        ({"type": "identify", "userId": "u", "traits": "x"}, "traits", "object"),
        (
            {"type": "track", "userId": "u", "event": "E", "timestamp": "yesterday"},
            "timestamp",
            "ISO",
        ),
        ({"type": "track", "userId": "u", "event": "E", "sentAt": 12}, "sentAt", "ISO"),
        ({"type": "alias", "userId": "u"}, "previousId", "previousId"),
        ({"type": "alias", "anonymousId": "a", "previousId": "p"}, "userId", "userId"),
        ({"type": "group", "userId": "u"}, "groupId", "groupId"),
        ({"type": "track", "userId": "u" * 2000, "event": "E"}, "userId", "characters"),
        ({"type": "track", "userId": "u\x00", "event": "E"}, "userId", "NUL"),
        (
            {"type": "track", "userId": "u", "event": "E", "properties": {"a": "x\x00"}},
            "properties.a",
            "NUL",
        ),
    ],
)
def test_malformed_messages_name_the_field(raw: object, field: str, words: str) -> None:
    with pytest.raises(PayloadError) as info:
        decode(raw)
    assert info.value.field == field
    assert words in info.value.reason


def test_deep_nesting_is_refused_with_its_path() -> None:
    deep: dict[str, object] = {}
    node = deep
    for _ in range(MAX_DEPTH + 2):
        node["k"] = {}
        node = node["k"]  # type: ignore[assignment]
    with pytest.raises(PayloadError) as info:
        decode({"type": "track", "userId": "u", "event": "E", "properties": deep})
    assert info.value.field.startswith("properties.k.k")
    assert "deeper" in info.value.reason


def test_oversize_message_is_too_large() -> None:
    raw = {"type": "track", "userId": "u", "event": "E", "properties": {"blob": "x" * 40_000}}
    with pytest.raises(PayloadTooLarge):
        decode(raw)


def test_control_characters_other_than_nul_are_kept() -> None:
    m = decode_message(
        {"type": "track", "userId": "u", "event": "E\t\x01", "properties": {"a": "\x1b[31m"}},
        received_at=NOW,
    )
    assert m.event == "E\t\x01" and m.properties["a"] == "\x1b[31m"


def test_within_prefixes_the_field() -> None:
    assert PayloadError("userId", "x").within("batch[3]").field == "batch[3].userId"
    assert PayloadError("", "x").within("batch[3]").field == "batch[3]"


def test_clock_skew_correction_follows_the_spec() -> None:
    # A device clock one hour fast: it says it sent at 13:00 an event from 12:50.
    raw = {"timestamp": "2026-03-01T12:50:00Z", "sentAt": "2026-03-01T13:00:00Z"}
    assert corrected_timestamp(raw, NOW) == NOW - timedelta(minutes=10)
    # No sentAt (an import): the timestamp is taken as given.
    assert corrected_timestamp({"timestamp": "2020-01-01T00:00:00Z"}, NOW) == datetime(
        2020, 1, 1, tzinfo=UTC
    )
    # originalTimestamp stands in when timestamp is missing; nothing at all → receivedAt.
    assert corrected_timestamp({"originalTimestamp": "2026-03-01T11:00:00Z"}, NOW).hour == 11
    assert corrected_timestamp({}, NOW) == NOW


def test_batch_sent_at_applies_to_messages_without_their_own() -> None:
    raw = {"type": "track", "userId": "u", "event": "E", "timestamp": "2026-03-01T10:00:00Z"}
    m = decode_message(raw, received_at=NOW, sent_at="2026-03-01T10:00:30Z")
    assert m.timestamp == NOW - timedelta(seconds=30)
    assert m.payload["sentAt"] == "2026-03-01T10:00:30Z"  # kept for replays


instants = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC)
)


@settings(max_examples=60, deadline=None)
@given(original=instants, sent=instants, received=instants)
def test_skew_correction_keeps_the_client_side_interval(
    original: datetime, sent: datetime, received: datetime
) -> None:
    raw = {"timestamp": original.isoformat(), "sentAt": sent.isoformat()}
    corrected = corrected_timestamp(raw, received)
    assert received - corrected == sent - original


json_values = st.recursive(
    st.none() | st.integers(-(2**60), 2**60) | st.text(alphabet='{}[]"\\ab', max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(alphabet='{}[]"\\k', max_size=3), inner, max_size=3)
    ),
    max_leaves=25,
)


def depth(value: object) -> int:
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    return 0


@settings(max_examples=100, deadline=None)
@given(value=json_values, limit=st.integers(0, 8))
def test_nesting_within_agrees_with_a_walk(value: object, limit: int) -> None:
    import orjson

    from segmint.intake.payloads import nesting_within

    assert nesting_within(orjson.dumps(value), limit) == (depth(value) <= limit)
