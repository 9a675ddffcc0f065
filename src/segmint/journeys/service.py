"""Running journeys: ``segmint journeys run`` (a tick for cron and tests) and the server.

In ``segmint serve`` the journey engine is one more timer of the real-time service's
loop (:meth:`segmint.membership.service.RealtimeService.add_timer`): the loop sleeps until
the earliest instant due among its timers, and membership changes and intake commits wake
it, so steps fire at their instant rather than at the next poll.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from segmint.clock import Clock, SystemClock
from segmint.deliver.engagement import email_announcer
from segmint.deliver.transport import EmailTransport
from segmint.journeys.engine import LEAD, JourneyEngine, TickReport
from segmint.workspace import Workspace


def run_journeys(
    workspace: Workspace,
    clock: Clock,
    until: datetime,
    *,
    transport: Callable[[], EmailTransport] | None = None,
    since: datetime | None = None,
) -> TickReport:
    """Take every trigger recorded and every step due until ``until``; return the counts.

    Triggers that happened before ``since`` (when given) start nothing; those that happen
    after ``until`` are left for a run that reaches them.
    """
    from segmint.intake import Intake

    intake = Intake(workspace, clock)
    engine = JourneyEngine(workspace, clock, transport=transport,
                           announce=email_announcer(intake))  # fmt: skip
    return engine.tick(until, since=since, keep_later=True)


def attach_journeys(
    workspace: Workspace,
    intake: Any,
    service: Any,
    clock: Clock,
    *,
    transport: Callable[[], EmailTransport] | None = None,
) -> JourneyEngine:
    """Wire journeys into a server: a timer of ``service``, woken by changes and events.

    Args:
        workspace: The workspace.
        intake: The server's intake (its commits wake the timer).
        service: The :class:`~segmint.membership.service.RealtimeService`.
        clock: The server's clock.
        transport: Builds the transport (the SMTP pool by default).
    """
    engine = JourneyEngine(workspace, clock, transport=transport,
                           announce=email_announcer(intake))  # fmt: skip
    # on the system clock, messages are prepared ahead and each sent at its instant
    engine.listen(lead=LEAD if isinstance(clock, SystemClock) else 0.0)
    engine.warm()

    def heard(*_: object) -> None:
        engine.heard()
        service.wake()

    service.add_timer(engine)
    service.membership.hub.subscribe(heard)
    intake.add_listener(heard)
    service.wake()
    return engine
