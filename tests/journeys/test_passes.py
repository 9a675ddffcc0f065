"""Triggers applied many in one pass decide exactly what one at a time decides.

The engine applies a run of triggers (distinct profiles, no step due in between) in one
pass and one transaction (``JourneyEngine._pass``). With ``pass_size=1`` every trigger is its
own pass, after every step due until its instant: the reference. Two copies of one shop
run the same ticks, one each way; histories, instances, ledger rows and reports must agree.
"""

from __future__ import annotations

import shutil
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from segmint.clock import FixedClock
from segmint.journeys import JourneyEngine
from segmint.workspace import Workspace

from .conftest import SECRET, T0, Shop, deliver, edit  # type: ignore[import-not-found]

USERS = ("ann", "bob", "cy", "dee")
OPT_OUT = "opt out"  # an identify call withdrawing consent: no trigger, but the gate sees it
EVENTS = ("Cart Abandoned", "Order Completed", "Signed Up", "Lapsed", OPT_OUT)
OFFSETS = (0, 30, 100, 120, 150, 26 * 60)  # minutes after T0: many triggers share an instant
TICKS = (T0 + timedelta(minutes=90), T0 + timedelta(minutes=150), T0 + timedelta(days=3))
"""Each tick records the triggers up to its instant first (a trigger is never ahead)."""

bursts = st.lists(  # triggers in bursts at one instant: passes form inside and across them
    st.tuples(
        st.sampled_from(OFFSETS),
        st.lists(st.tuples(st.sampled_from(USERS), st.sampled_from(EVENTS)), min_size=1,
                 max_size=4),
    ),
    min_size=1,
    max_size=5,
)  # fmt: skip
triggers = bursts.map(lambda found: [(u, e, at) for at, burst in found for u, e in burst])


def _message(index: int, user: str, event: str, minutes: int) -> dict[str, Any]:
    at = (T0 + timedelta(minutes=minutes)).isoformat()
    if event == OPT_OUT:
        return {"type": "identify", "userId": user, "traits": {"email_consent": False},
                "timestamp": at, "messageId": f"m{index}"}  # fmt: skip
    return {"type": "track", "userId": user, "event": event, "timestamp": at,
            "messageId": f"m{index}"}  # fmt: skip


def _state(ws: Workspace) -> dict[str, Any]:
    store = ws.store
    return {
        "history": sorted(
            store.fetchall(
                "SELECT instance_id, coalesce(step, ''), outcome, coalesce(reason, ''), "
                "occurred_at FROM journey_history"
            )
        ),
        "instances": sorted(
            store.fetchall(
                "SELECT instance_id, coalesce(step, ''), status, due_at, step_since, "
                "coalesce(exit_reason, '') FROM journey_instances"
            )
        ),
        "sends": sorted(
            store.fetchall(
                "SELECT send_key, status, coalesce(reason, ''), sent_at, topic FROM sends "
                "WHERE campaign LIKE 'journey:%'"
            )
        ),
    }


def _run(path: Path, found: list[tuple[str, str, int]], pass_size: int) -> tuple[Any, ...]:
    """Record each tick's triggers (those up to its instant), tick; the outcome."""
    from segmint.intake import Intake

    ws = Workspace.open(path)
    try:
        engine = JourneyEngine(ws, FixedClock(T0), pass_size=pass_size)
        reports = []
        messages = [(T0 + timedelta(minutes=m), _message(i, u, e, m))
                    for i, (u, e, m) in enumerate(found)]  # fmt: skip
        done = T0 - timedelta(days=1)
        for tick in TICKS:
            now = [m for at, m in messages if done < at <= tick]
            if now:
                Intake(ws, FixedClock(tick)).submit(now, source="test")
            reports.append(engine.tick(tick).to_dict())
            done = tick
        return _state(ws), reports
    finally:
        ws.close()


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(found=triggers)
@example(found=[("ann", "Cart Abandoned", 0), ("ann", "Order Completed", 0)])  # one profile
@example(
    found=[
        ("ann", "Cart Abandoned", 0),
        ("bob", "Signed Up", 0),
        ("bob", "Lapsed", 0),
        ("cy", "Lapsed", 120),
        ("ann", "Order Completed", 150),
    ]
)  # a step due between
@example(
    found=[
        ("ann", "Cart Abandoned", 0),
        ("bob", "Lapsed", 100),
        ("cy", "Lapsed", 120),
        ("ann", OPT_OUT, 150),
        ("dee", "Lapsed", 150),
    ]
)  # ann's reminder is decided at 2 h (with cy's trigger), before she opts out
def test_a_pass_of_triggers_decides_what_one_at_a_time_decides(
    found: list[tuple[str, str, int]],
    smtp_server: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SEGMINT_SECRET", SECRET)
    root = Path(tempfile.mkdtemp(prefix="segmint-passes-"))
    try:
        path = root / "shop"
        Workspace.init(path, name="passes").close()
        deliver.configure(path, smtp_server.port, pool=2)
        # immediate sends on entry, so sends of one instant compete for the caps
        edit(path, "trigger: {segment_entry: new_customer}", "trigger: {event: Signed Up}")
        edit(path, "trigger: {segment_entry: lapsing}", "trigger: {event: Lapsed}")
        shop = Shop(path, smtp_server, Workspace.open(path))
        shop.people(list(USERS))
        shop.workspace.close()
        shutil.copytree(path, root / "reference")

        batched = _run(path, found, 2000)
        one_at_a_time = _run(root / "reference", found, 1)
        assert batched == one_at_a_time
    finally:
        shutil.rmtree(root, ignore_errors=True)
