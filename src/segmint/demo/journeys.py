"""The demo's journeys step: the abandoned-cart flow (and the others) over the last days.

The journeys run at the demo's instant over the triggers of its last three days, each step
at its own instant, with the delivery policy; messages are written to an outbox folder as
``.eml`` files instead of being sent.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from segmint.clock import FixedClock
from segmint.demo.emails import signing_secret
from segmint.demo.stage import DemoContext, need

WINDOW = timedelta(days=3)
"""Triggers of this period before the demo's instant start journeys."""


def _name(message: bytes, recipients: Sequence[str]) -> str:
    return f"{recipients[0]}-{hashlib.sha256(message).hexdigest()[:8]}"


def run_journeys(ctx: DemoContext) -> str:
    """Run the demo's journeys into ``<out>/journeys-outbox/``; say what they did."""
    (engine_type,) = need("segmint.journeys", "JourneyEngine")
    (outbox_type,) = need("segmint.deliver.fake", "OutboxTransport")
    ws = ctx.ws
    folder = ctx.options.out / "journeys-outbox"
    transport = outbox_type(folder, name_of=_name)
    as_of = ctx.options.as_of
    with signing_secret(ctx):
        engine = engine_type(ws, FixedClock(as_of), transport=lambda: transport)
        report = engine.tick(as_of, since=as_of - WINDOW)
    data: dict[str, Any] = report.to_dict()
    ctx.facts["journeys"] = data
    cart = ws.store.fetchall(
        "SELECT outcome, count(*) FROM journey_history WHERE journey = 'abandoned_cart' "
        "GROUP BY outcome ORDER BY outcome"
    )
    steps = ", ".join(f"{n:,} {outcome}" for outcome, n in cart) or "no carts abandoned"
    return (
        f"abandoned_cart: {steps}; {data['sent']:,} message(s) of all journeys written to "
        f"{folder}/ (not sent); see 'segmint journeys show abandoned_cart'"
    )
