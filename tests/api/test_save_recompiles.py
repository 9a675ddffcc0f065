"""A save through the management API reaches a running server's real-time engine at once.

The server is wired as ``segmint serve`` wires it (intake, real-time engine, timer thread);
no restart and no refresh happen between the save and the checks.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import httpx
import pytest

from segmint.api import create_app
from segmint.clock import FixedClock
from segmint.intake.keys import create_key
from segmint.intake.pipeline import Intake
from segmint.membership.service import RealtimeService, attach_realtime
from segmint.workspace import Workspace

from .conftest import ThreadServer
from .test_manage import NOW, bearer, populate


@dataclass
class Serving:
    client: httpx.Client
    ws: Workspace
    service: RealtimeService
    admin: dict[str, str]
    write: dict[str, str]


@pytest.fixture
def serving(ws: Workspace) -> Iterator[Serving]:
    populate(ws)  # u0 … u9; u<i> spent 300 * i
    _, admin = create_key(ws.store, "ops", scopes=("admin",), now=NOW)
    _, write = create_key(ws.store, "web", now=NOW)
    clock = FixedClock(NOW)
    intake = Intake(ws, clock)
    service = attach_realtime(ws, intake, clock)
    try:
        with (
            ThreadServer(create_app(ws, clock, intake=intake)) as server,
            httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=60) as client,
        ):
            yield Serving(client, ws, service, bearer(admin), bearer(write))
    finally:
        service.close()


def members(ws: Workspace, segment: str) -> set[str]:
    rows = ws.store.fetchall(
        "SELECT i.value FROM memberships m JOIN identities i ON i.profile_id = m.profile_id "
        "AND i.kind = 'user_id' WHERE m.segment = ?",
        [segment],
    )
    return {str(r[0]) for r in rows}


def settles(ws: Workspace, segment: str, expected: set[str], timeout: float = 30) -> bool:
    """Whether the members become ``expected`` (listeners run just after the commit's answer)."""
    deadline = time.monotonic() + timeout
    while members(ws, segment) != expected:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def order(user: str, total: float, n: int) -> dict[str, object]:
    at = (NOW - timedelta(minutes=1)).isoformat()
    return {"userId": user, "event": "Order Completed", "properties": {"total": total},
            "timestamp": at, "messageId": f"late-{user}-{n}"}  # fmt: skip


def test_a_new_segment_is_live_for_the_next_event(serving: Serving) -> None:
    body = {"name": "big_spender", "rule": "lifetime_value >= 2500"}
    made = serving.client.post("/v1/manage/segments", json=body, headers=serving.admin)
    assert made.status_code == 201, made.text
    assert members(serving.ws, "big_spender") == {"u9"}  # decided at the save
    sent = serving.client.post("/v1/track", json=order("u8", 200.0, 1), headers=serving.write)
    assert sent.status_code == 200, sent.text
    assert settles(serving.ws, "big_spender", {"u8", "u9"})  # 2400 + 200, by the engine
    causes = serving.ws.store.fetchall(
        "SELECT cause FROM membership_changes WHERE segment = 'big_spender' "
        "AND profile_id = (SELECT profile_id FROM identities WHERE kind = 'user_id' "
        "AND value = 'u8')"
    )
    assert len(causes) == 1 and "event" in str(causes[0][0])


def test_a_changed_rule_and_a_changed_trait_apply_without_restart(serving: Serving) -> None:
    before = members(serving.ws, "vip")  # lifetime_value >= 1000: u4 … u9
    assert before == {f"u{i}" for i in range(4, 10)}
    read = serving.client.get("/v1/manage/segments/vip", headers=serving.admin).json()
    put = serving.client.put("/v1/manage/segments/vip",
                             json={"rule": "orders >= 8", "version": read["version"]},
                             headers=serving.admin)  # fmt: skip
    assert put.status_code == 200, put.text
    assert members(serving.ws, "vip") == {"u8", "u9"}
    sent = serving.client.post("/v1/track", json=order("u7", 10.0, 2), headers=serving.write)
    assert sent.status_code == 200
    assert settles(serving.ws, "vip", {"u7", "u8", "u9"})  # the engine runs the new rule
    # a trait redefined through the generic API: orders now counts only big orders
    trait = {"count": "events", "event": "Order Completed", "where": "total > 100"}
    changed = serving.client.put("/v1/manage/traits/orders", json={"definition": trait},
                                 headers=serving.admin)  # fmt: skip
    assert changed.status_code == 200, changed.text
    assert members(serving.ws, "vip") == {"u8", "u9"}  # u7's 10.0 order no longer counts
    assert serving.service.engine.compiled.plan.spec("vip").rule == "orders >= 8"
