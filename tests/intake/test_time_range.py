"""Instants a date cannot carry through the rules are refused at intake, naming the field."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segmint.intake import Intake, PayloadError, list_quarantine
from segmint.intake.payloads import EARLIEST, LATEST, decode_message
from segmint.workspace import Workspace

from .conftest import NOW, track

FAR = "9999-12-31T23:59:59Z"


def test_a_stream_quarantines_an_out_of_range_event_and_stores_the_rest(
    ws: Workspace, intake: Intake
) -> None:
    far = track("far", userId="u1", event="Order Completed", timestamp=FAR)
    held = intake.submit([far, track("ok", userId="u2")], source="stream", invalid="quarantine")
    assert (held.accepted, held.quarantined) == (1, 1)
    (item,) = list_quarantine(ws.store)
    assert (item.field, item.message_id) == ("timestamp", "far")
    assert "out of range" in item.reason and "2199-12-31" in item.reason


def test_submitting_it_directly_raises_a_payload_error(intake: Intake) -> None:
    with pytest.raises(PayloadError) as caught:
        intake.submit([track("far", userId="u1", originalTimestamp=FAR)], source="api")
    assert caught.value.field == "[0].originalTimestamp"


@settings(max_examples=200, deadline=None)
@given(st.datetimes(timezones=st.just(UTC)))
def test_every_instant_is_stored_as_sent_or_refused(when: datetime) -> None:
    raw = {"type": "track", "userId": "u", "event": "E", "timestamp": when.isoformat()}
    try:
        message = decode_message(raw, received_at=NOW)
    except PayloadError as exc:
        assert exc.field == "timestamp"
        assert not EARLIEST <= when < LATEST
    else:
        assert message.timestamp == when and EARLIEST <= when < LATEST
