"""Intake refuses events (503, Retry-After) while real time is too far behind.

The fault: a real-time engine that blocks until the test lets it go (a deliberately slow
engine). Lag seconds are measured on a clock the test moves, so nothing waits on time.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import httpx
import pytest
from tests.api.conftest import NOW, ThreadServer

from segmint.api import create_app
from segmint.api.backpressure import LagLimit
from segmint.clock import FixedClock
from segmint.events import Event
from segmint.intake.keys import create_key
from segmint.intake.pipeline import Intake
from segmint.membership.feed import ChangeFeed
from segmint.membership.follow import Follower
from segmint.workspace import Workspace


class SlowEngine:
    """Stands in for the real-time engine: blocks every batch until released."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        self.applied: list[str] = []

    def __call__(self, events: Sequence[Event], merges: Sequence[Any] = ()) -> None:
        self.started.set()
        assert self.release.wait(30), "the test never released the engine"
        self.applied += [e.message_id for e in events]

    def process(
        self,
        events: Sequence[Event],
        merges: Sequence[Any] = (),
        as_of: datetime | None = None,
        **_: Any,
    ) -> None:
        self(events, merges)

    def invalidate(self) -> None:
        """Nothing cached."""

    def catch_up(self, as_of: datetime, **_: Any) -> int:
        """Nothing stored yet."""
        return 0


class Ticks:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def slow(workspace: Workspace) -> Iterator[tuple[httpx.Client, SlowEngine, Ticks, Follower]]:
    clock = FixedClock(NOW)
    engine, ticks = SlowEngine(), Ticks()
    follower = Follower(engine, ChangeFeed(workspace.store), clock, monotonic=ticks)
    assert follower.lead(NOW)  # the one server of a DuckDB store
    intake = Intake(workspace, clock)
    intake.add_listener(follower)
    intake.watch_commits(follower)
    app = create_app(workspace, clock, intake=intake, realtime_lag=follower.lag,
                     lag_limit=LagLimit(events=50, seconds=5))  # fmt: skip
    _, key = create_key(workspace.store, "test", now=NOW)
    with (
        ThreadServer(app) as server,
        httpx.Client(
            base_url=f"http://127.0.0.1:{server.port}", timeout=30, auth=(key, "")
        ) as client,
    ):
        try:
            yield client, engine, ticks, follower
        finally:
            engine.release.set()


def _batch(n: int, start: int = 0) -> dict[str, Any]:
    return {"batch": [{"type": "track", "userId": f"u{i}", "event": "Viewed",
                       "messageId": f"m{i}"} for i in range(start, start + n)]}  # fmt: skip


def test_a_slow_engine_turns_intake_away_with_retry_after(
    slow: tuple[httpx.Client, SlowEngine, Ticks, Follower],
) -> None:
    client, engine, ticks, follower = slow
    assert client.post("/v1/batch", json=_batch(3)).status_code == 200
    assert engine.started.wait(10)  # stored, and now stuck in real time
    assert follower.lag().events == 3
    assert client.get("/v1/health").json()["status"] == "ok"

    ticks.now += 12  # the stuck batch has waited 12 s (limit 5)
    refused = client.post("/v1/batch", json=_batch(2, start=10))
    assert refused.status_code == 503
    assert refused.headers["Retry-After"] == "12"
    assert refused.json()["error"]["code"] == "unavailable"
    assert "12.0 s behind" in refused.json()["error"]["message"]
    health = client.get("/v1/health").json()
    assert health["status"] == "lagging"
    assert health["realtime"]["events"] == 3 and health["realtime"]["seconds"] == 12.0
    metrics = client.get("/metrics").text
    assert "segmint_realtime_lag_seconds 12.0" in metrics
    assert "segmint_realtime_unapplied_events 3.0" in metrics

    engine.release.set()  # real time catches up: intake takes events again
    for _ in range(200):
        if follower.lag().events == 0:
            break
        threading.Event().wait(0.05)
    assert follower.lag().events == 0 and follower.lag().seconds == 0
    assert client.post("/v1/batch", json=_batch(2, start=20)).status_code == 200
    assert client.get("/v1/health").json()["status"] == "ok"
    stored = client.get("/metrics").text
    assert "segmint_events_total 5.0" in stored  # the refused batch was never stored


def test_too_many_events_behind_is_refused_too(
    slow: tuple[httpx.Client, SlowEngine, Ticks, Follower],
) -> None:
    client, engine, _, follower = slow
    assert client.post("/v1/batch", json=_batch(60)).status_code == 200
    assert engine.started.wait(10)
    refused = client.post("/v1/batch", json=_batch(1, start=100))
    assert refused.status_code == 503
    assert refused.headers["Retry-After"] == "1"
    assert "60 events behind (limit 50)" in refused.json()["error"]["message"]


def test_limits_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEGMINT_MAX_LAG_EVENTS", "7")
    monkeypatch.setenv("SEGMINT_MAX_LAG_SECONDS", "2.5")
    assert LagLimit.from_env() == LagLimit(7, 2.5)
    assert LagLimit.from_env(events=9) == LagLimit(9, 2.5)


def test_health_without_real_time_reports_no_lag(workspace: Workspace) -> None:
    app = create_app(workspace, FixedClock(NOW))
    with ThreadServer(app) as server:
        body = httpx.get(f"http://127.0.0.1:{server.port}/v1/health", timeout=10).json()
    assert body == {"status": "ok", "realtime": None, "intake_queue": 0}
