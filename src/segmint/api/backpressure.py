"""Backpressure: intake refuses (503, ``Retry-After``) while real time is too far behind.

A server whose real-time engine cannot keep up would otherwise queue requests in memory
without bound. The lag (:class:`~segmint.membership.follow.Lag`: events accepted or
committed and not yet applied, and how long the oldest has waited) plus the group commit's
queue is checked before each submission is queued; past either limit of :class:`LagLimit`
the request is refused with 503 and a ``Retry-After`` of about the lag's seconds (nothing
is stored: the client sends it again). ``GET /v1/health`` reports the figures.

Limits: ``segmint serve --max-lag-events N --max-lag-seconds S`` or the environment
(``SEGMINT_MAX_LAG_EVENTS``, ``SEGMINT_MAX_LAG_SECONDS``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from segmint.intake.errors import IntakeBusy

if TYPE_CHECKING:
    from segmint.membership.follow import Lag

EVENTS_ENV = "SEGMINT_MAX_LAG_EVENTS"
SECONDS_ENV = "SEGMINT_MAX_LAG_SECONDS"
MAX_RETRY_AFTER = 60


@dataclass(frozen=True)
class LagLimit:
    """How far real time may fall behind before intake refuses new events.

    Attributes:
        events: Events accepted or committed and not yet applied (0: no limit).
        seconds: How long the oldest of them may wait (0: no limit).
    """

    events: int = 100_000
    seconds: float = 30.0

    @classmethod
    def from_env(cls, events: int | None = None, seconds: float | None = None) -> LagLimit:
        """The limits given, else those of the environment, else the defaults."""
        default = cls()
        if events is None:
            events = int(os.environ.get(EVENTS_ENV) or default.events)
        if seconds is None:
            seconds = float(os.environ.get(SECONDS_ENV) or default.seconds)
        return cls(events, seconds)

    def exceeded(self, lag: Lag, queued: int) -> str | None:
        """Why ``lag`` (and ``queued`` messages) are past the limit, or None."""
        behind = lag.events + queued
        if self.events and behind > self.events:
            return f"real time is {behind} events behind (limit {self.events})"
        if self.seconds and lag.seconds > self.seconds:
            return f"real time is {lag.seconds:.1f} s behind (limit {self.seconds:g} s)"
        return None


def install(app: FastAPI, lag: Callable[[], Lag], limit: LagLimit) -> None:
    """Gate ``app``'s intake on ``lag`` (and report it in ``/v1/health`` and ``/metrics``)."""
    committer = app.state.committer
    app.state.lag = lag
    app.state.lag_limit = limit

    def gate(queued: int) -> None:
        now = lag()
        why = limit.exceeded(now, queued)
        if why is not None:
            wait = min(MAX_RETRY_AFTER, max(1, math.ceil(now.seconds)))
            raise IntakeBusy(why, retry_after=wait)

    committer.gate = gate


def add_health(app: FastAPI) -> None:
    """Add ``GET /v1/health``: liveness and, with real time, its lag."""

    @app.get("/v1/health", tags=["meta"])
    async def health() -> dict[str, Any]:
        """Liveness and real-time lag: ``lagging`` once intake refuses events."""
        return await run_in_threadpool(health_report, app)


def health_report(app: FastAPI) -> dict[str, Any]:
    """What ``/v1/health`` answers (also without real time: lag unknown, ``null``)."""
    committer = app.state.committer
    lag = getattr(app.state, "lag", None)
    if lag is None:
        return {"status": "ok", "realtime": None, "intake_queue": committer.pending}
    limit: LagLimit = app.state.lag_limit
    now = lag()
    lagging = limit.exceeded(now, committer.pending) is not None
    return {
        "status": "lagging" if lagging else "ok",
        "realtime": {**now.as_dict(), "limit": {"events": limit.events, "seconds": limit.seconds}},
        "intake_queue": committer.pending,
    }
