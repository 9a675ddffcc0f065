"""Journeys: triggered, timed, durable sequences of steps under the delivery policy.

>>> engine = JourneyEngine(workspace, clock)
>>> engine.tick(as_of)            # triggers in, every step due until as_of taken
>>> show_journey(workspace, "abandoned_cart")
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from segmint.common import lazy_exports

if TYPE_CHECKING:  # imported on first use: a command loads only what it runs
    from segmint.journeys.engine import JOURNEY_RETRY, JourneyEngine, TickReport
    from segmint.journeys.errors import JourneyError, UnknownJourneyError
    from segmint.journeys.insight import list_journeys, profile_journeys, show_journey
    from segmint.journeys.service import attach_journeys, run_journeys

__getattr__ = lazy_exports(
    __name__,
    {
        "JOURNEY_RETRY": "engine",
        "JourneyEngine": "engine",
        "JourneyError": "errors",
        "TickReport": "engine",
        "UnknownJourneyError": "errors",
        "attach_journeys": "service",
        "list_journeys": "insight",
        "profile_journeys": "insight",
        "run_journeys": "service",
        "show_journey": "insight",
    },
)

__all__ = [
    "JOURNEY_RETRY",
    "JourneyEngine",
    "JourneyError",
    "TickReport",
    "UnknownJourneyError",
    "attach_journeys",
    "list_journeys",
    "profile_journeys",
    "run_journeys",
    "show_journey",
]
