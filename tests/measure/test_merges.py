"""Merges are followed: a merged-away profile's sends, conversions and arm count for the
profile that survives it (both backends)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from segmint.clock import FixedClock
from segmint.config.measure import ExperimentDef, MeasureDef, VariantDef
from segmint.deliver.ledger import SendLedger
from segmint.intake import Intake
from segmint.measure.assign import assign
from segmint.measure.attribution import rebuild
from segmint.measure.experiments import experiment_report
from segmint.store import utcnow_naive
from segmint.workspace import Workspace

from .conftest import T0

D = timedelta(days=1)


def submit(ws: Workspace, *messages: dict[str, Any]) -> list[str]:
    result = Intake(ws, FixedClock(T0 + 400 * D)).submit(list(messages), source="test")
    return [e.profile_id for e in result.events]


def visitor_then_user(ws: Workspace) -> tuple[str, str]:
    """A visitor (anonymous), a user, then an identify that merges the visitor into her."""
    (visitor,) = submit(ws, {"type": "track", "anonymousId": "v1", "event": "Page Viewed",
                             "timestamp": T0.isoformat(), "messageId": "m1"})  # fmt: skip
    (user,) = submit(ws, {"type": "identify", "userId": "uma", "timestamp": T0.isoformat(),
                          "traits": {"email": "uma@example.com"}, "messageId": "m2"})  # fmt: skip
    assert visitor != user
    return visitor, user


def merge(ws: Workspace, at: Any) -> None:
    submit(ws, {"type": "identify", "userId": "uma", "anonymousId": "v1",
                "timestamp": at.isoformat(), "messageId": "m3"})  # fmt: skip


def test_a_send_to_a_merged_away_profile_touches_the_survivor(ws: Workspace) -> None:
    visitor, user = visitor_then_user(ws)
    ledger = SendLedger(ws.store, "spring", FixedClock(T0 + D))
    ledger.plan([visitor])
    ledger.claim(visitor, "v@example.com", "<m@x>")
    ledger.sent(visitor)
    merge(ws, T0 + 2 * D)
    submit(ws, {"type": "track", "userId": "uma", "event": "Order Completed",
                "properties": {"total": 30}, "timestamp": (T0 + 3 * D).isoformat(),
                "messageId": "m4"})  # fmt: skip
    report = rebuild(ws.store, MeasureDef(attribution="sent"), T0 + 10 * D)
    assert (report.attributed, report.revenue) == (1, 30.0)
    rows = ws.store.fetchall("SELECT profile_id, campaign FROM attributions")
    assert rows == [(user, "spring")]


def test_the_survivor_keeps_the_arm_and_counts_once(ws: Workspace) -> None:
    visitor, user = visitor_then_user(ws)
    arms = (VariantDef(name="control"), VariantDef(name="b"))
    first = assign(ws.store, "exp", arms, [visitor], T0)[visitor]
    merge(ws, T0 + D)
    # the survivor had no arm: it takes the visitor's, whatever its own hash says
    assert assign(ws.store, "exp", arms, [user], T0 + 2 * D) == {user: first}
    # had it one of its own (a later one), the person still counts once, in the first arm
    ws.store.execute(
        "INSERT INTO experiment_assignments VALUES ('exp', ?, ?, ?)",
        [user, "b" if first == "control" else "control", utcnow_naive(T0 + 3 * D)],
    )
    submit(ws, {"type": "track", "userId": "uma", "event": "Order Completed",
                "properties": {"total": 10}, "timestamp": (T0 + 2 * D).isoformat(),
                "messageId": "m5"})  # fmt: skip
    exp = ExperimentDef(campaign="spring", variants=arms)
    defn = ws.definition.model_copy(update={"experiments": {"exp": exp}})
    report = experiment_report(ws.store, defn, "exp", T0 + 10 * D)
    counts = {a.name: (a.n, a.converted) for a in report.arms}
    other = "b" if first == "control" else "control"
    assert counts == {first: (1, 1), other: (0, 0)}
