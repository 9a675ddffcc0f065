"""Membership: segments kept current in batch and in real time, and their changes fanned out.

Stages of this package, following the data flow:

- :mod:`~segmint.membership.structure`: exclusive groups, defaults, parents, the order.
- :mod:`~segmint.membership.changes`: enter/exit changes written with the memberships.
- :mod:`~segmint.membership.schedule`: when each profile may next change by time alone.
- :mod:`~segmint.membership.compiled`: rules, traits and the dependency index, compiled once.
- :mod:`~segmint.membership.batch` (with :mod:`~segmint.membership.segsql`): refresh and
  reconcile in SQL; :mod:`~segmint.membership.realtime`: the real-time engine.
- :mod:`~segmint.membership.hub`, :mod:`~segmint.membership.redis_stream`,
  :mod:`~segmint.membership.webhooks`: fan-out (webhooks queue and retry through
  :mod:`segmint.deliver.outbox`, delivery's one outbox and retry mechanism).
- :mod:`~segmint.membership.insight`, :mod:`~segmint.membership.explain`: sizes, overlap, why.
- :mod:`~segmint.membership.service`: the :class:`Membership` facade and server wiring.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from segmint.common import lazy_exports

if TYPE_CHECKING:  # imported on first use: a command loads only what it runs
    from segmint.membership.batch import Difference, RefreshReport
    from segmint.membership.changes import MembershipChange, read_changes
    from segmint.membership.compiled import CompiledSegments
    from segmint.membership.errors import MembershipError, SegmentStructureError
    from segmint.membership.hub import ChangeHub
    from segmint.membership.realtime import RealtimeEngine
    from segmint.membership.redis_stream import RedisChangeStream
    from segmint.membership.schedule import Schedule
    from segmint.membership.service import Membership, attach_realtime
    from segmint.membership.structure import SegmentPlan, SegmentSpec, check_plan
    from segmint.membership.webhooks import (
        WebhookDispatcher,
        WebhookOutbox,
        outbox_status,
        sign,
        verify,
    )

__getattr__ = lazy_exports(
    __name__,
    {
        "ChangeHub": "hub",
        "CompiledSegments": "compiled",
        "Difference": "batch",
        "Membership": "service",
        "MembershipChange": "changes",
        "MembershipError": "errors",
        "RealtimeEngine": "realtime",
        "RedisChangeStream": "redis_stream",
        "RefreshReport": "batch",
        "Schedule": "schedule",
        "SegmentPlan": "structure",
        "SegmentSpec": "structure",
        "SegmentStructureError": "errors",
        "check_plan": "structure",
        "WebhookDispatcher": "webhooks",
        "WebhookOutbox": "webhooks",
        "attach_realtime": "service",
        "outbox_status": "webhooks",
        "read_changes": "changes",
        "sign": "webhooks",
        "verify": "webhooks",
    },
)

__all__ = [
    "ChangeHub",
    "CompiledSegments",
    "Difference",
    "Membership",
    "MembershipChange",
    "MembershipError",
    "RealtimeEngine",
    "RedisChangeStream",
    "RefreshReport",
    "Schedule",
    "SegmentPlan",
    "SegmentSpec",
    "SegmentStructureError",
    "WebhookDispatcher",
    "WebhookOutbox",
    "attach_realtime",
    "check_plan",
    "outbox_status",
    "read_changes",
    "sign",
    "verify",
]
