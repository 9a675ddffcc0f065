from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from segmint.events import Event
from segmint.intake import Intake, Merge, PayloadError, list_quarantine
from segmint.workspace import Workspace

from .conftest import NOW, as_json, identify, scalar, track, with_plan

PLAN = {
    "allow_unplanned_events": False,
    "events": {
        "Order Completed": {
            "properties": {
                "total": {"type": "number", "required": True},
                "currency": {"type": "string", "enum": ["EUR", "USD"]},
            }
        },
        "Viewed": {},
    },
}


def test_submit_stores_events_with_profiles(ws: Workspace, intake: Intake) -> None:
    result = intake.submit(
        [track("m1", userId="u1", properties={"total": 5}, context={"ip": "1.2.3.4"})],
        source="web",
    )
    assert (result.accepted, result.duplicates, result.quarantined) == (1, 0, 0)
    (event,) = result.events
    assert isinstance(event, Event)
    assert (event.message_id, event.type, event.event, event.user_id) == (
        "m1",
        "track",
        "Viewed",
        "u1",
    )
    assert event.timestamp == NOW and event.received_at == NOW
    row = ws.store.fetchall(
        "SELECT profile_id, source, properties, context FROM events WHERE message_id = 'm1'"
    )[0]
    assert row[0] == event.profile_id and row[1] == "web"
    # IP addresses are truncated at intake by default (privacy.truncate_ip)
    assert as_json(row[2]) == {"total": 5} and as_json(row[3]) == {"ip": "1.2.3.0"}


def test_message_id_dedupes_across_and_within_submissions(ws: Workspace, intake: Intake) -> None:
    first = intake.submit([track("m1", userId="u"), track("m1", userId="u")], source="web")
    retry = intake.submit([track("m1", userId="u"), track("m2", userId="u")], source="web")
    assert (first.accepted, first.duplicates) == (1, 1)
    assert (retry.accepted, retry.duplicates) == (1, 1)
    assert [e.message_id for e in retry.events] == ["m2"]
    assert scalar(ws, "SELECT count(*) FROM events") == 2


def test_listeners_get_committed_events_and_merges(ws: Workspace, intake: Intake) -> None:
    seen: list[tuple[list[str], list[Merge]]] = []

    def listener(events: Sequence[Event], merges: Sequence[Merge]) -> None:
        seen.append(([e.message_id for e in events], list(merges)))

    intake.add_listener(listener)
    intake.submit([track("m1", anonymousId="a1"), track("m2", anonymousId="a2")], source="w")
    intake.submit([identify("m3", anonymousId="a1", userId="u"),
                   identify("m4", anonymousId="a2", userId="u")], source="w")  # fmt: skip
    intake.submit([track("m1", anonymousId="a1")], source="w")  # a duplicate: no call
    assert [ids for ids, _ in seen] == [["m1", "m2"], ["m3", "m4"]]
    assert len(seen[1][1]) == 1
    intake.remove_listener(listener)


def test_a_failing_listener_does_not_undo_the_commit(ws: Workspace, intake: Intake) -> None:
    def boom(events: Sequence[Event], merges: Sequence[Merge]) -> None:
        raise RuntimeError("listener bug")

    intake.add_listener(boom)
    assert intake.submit([track("m1", userId="u")], source="w").accepted == 1
    assert scalar(ws, "SELECT count(*) FROM events") == 1


def test_malformed_input_raises_and_stores_nothing(ws: Workspace, intake: Intake) -> None:
    with pytest.raises(PayloadError) as info:
        intake.submit([track("m1", userId="u"), {"type": "track", "userId": "u"}], source="w")
    assert info.value.field == "[1].event"
    assert scalar(ws, "SELECT count(*) FROM events") == 0


def test_malformed_input_can_be_rejected_or_quarantined(ws: Workspace, intake: Intake) -> None:
    bad = {"type": "track", "userId": ["x"], "event": "E", "messageId": "bad"}
    rejected = intake.submit([track("m1", userId="u"), bad], source="w", invalid="reject")
    assert rejected.accepted == 1
    assert [(r.index, r.error.field) for r in rejected.rejected] == [(1, "userId")]
    held = intake.submit([bad], source="stream", invalid="quarantine")
    assert held.quarantined == 1
    (item,) = list_quarantine(ws.store)
    assert item.field == "userId" and item.reason.startswith("malformed: userId")
    assert item.payload == bad and item.source == "stream" and item.message_id == "bad"


def test_tracking_plan_violations_are_quarantined_with_reasons(ws: Workspace, clock: Any) -> None:
    intake = Intake(with_plan(ws, PLAN), clock)
    result = intake.submit(
        [
            track("ok", "Order Completed", userId="u", properties={"total": 10, "currency": "EUR"}),
            track("q1", "Order Completed", userId="u", properties={"currency": "EUR"}),
            track("q2", "Order Completed", userId="u", properties={"total": "10"}),
            track("q3", "Order Completed", userId="u", properties={"total": 1, "currency": "GBP"}),
            track("q4", "Unplanned", userId="u"),
            identify("id", userId="u"),  # only track calls are checked
        ],
        source="web",
    )
    assert (result.accepted, result.quarantined) == (2, 4)
    assert scalar(ws, "SELECT count(*) FROM events WHERE message_id LIKE 'q%'") == 0
    reasons = {i.message_id: (i.field, i.reason) for i in list_quarantine(ws.store)}
    assert reasons["q1"] == ("properties.total", "properties.total: is required")
    assert reasons["q2"][1].startswith("properties.total: must be number, got str")
    assert "must be one of 'EUR', 'USD'" in reasons["q3"][1]
    assert reasons["q4"] == ("event", "event: event 'Unplanned' is not in the tracking plan")
    again = intake.submit([track("q4", "Unplanned", userId="u")], source="web")
    assert (again.quarantined, again.duplicates) == (0, 1)  # a retry is not held twice


def test_replay_stores_what_now_passes(ws: Workspace, clock: Any) -> None:
    strict = Intake(with_plan(ws, PLAN), clock)
    strict.submit(
        [track("q1", "Order Completed", userId="u", properties={"total": "7"}),
         track("q2", "Unplanned", userId="u", timestamp="2026-01-01T00:00:00Z",
               sentAt="2026-01-01T00:00:10Z")],
        source="web",
    )  # fmt: skip
    relaxed_plan = PLAN | {"allow_unplanned_events": True}
    relaxed = Intake(with_plan(ws, relaxed_plan), clock)
    result = relaxed.replay()
    assert (result.accepted, result.duplicates) == (1, 0)
    assert [e.message_id for e in result.events] == ["q2"]
    # The skew correction is reproduced from the original arrival time.
    assert result.events[0].timestamp == NOW.replace(minute=59, hour=11, second=50)
    (still,) = list_quarantine(ws.store)
    assert still.message_id == "q1" and still.replayed_at is None
    done = list_quarantine(ws.store, include_replayed=True)
    assert [i.replayed_at is not None for i in done] == [False, True]
    assert scalar(ws, "SELECT source FROM events WHERE message_id = 'q2'") == "web"


def test_a_failed_commit_leaves_nothing_half_written(
    ws: Workspace, intake: Intake, monkeypatch: pytest.MonkeyPatch
) -> None:
    intake.submit([identify("m0", anonymousId="a0", userId="u0")], source="w")

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("disk full")

    monkeypatch.setattr(ws.store, "append_events", broken)
    with pytest.raises(RuntimeError):
        intake.submit(
            [identify("m1", anonymousId="a1", userId="u1"), track("m2", anonymousId="a0")],
            source="w",
        )
    monkeypatch.undo()
    assert scalar(ws, "SELECT count(*) FROM identities") == 2
    assert scalar(ws, "SELECT count(*) FROM profiles") == 1
    # The in-memory graph was dropped with the transaction: the retry resolves afresh.
    result = intake.submit(
        [identify("m1", anonymousId="a1", userId="u1"), track("m2", anonymousId="a0")],
        source="w",
    )
    assert result.accepted == 2
    assert scalar(ws, "SELECT count(*) FROM profiles") == 2
