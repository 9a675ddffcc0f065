"""segmint: a customer data platform core for exact segments and personalised email.

The names below are the public Python API; the CLI and the REST API go through them.
"""

from __future__ import annotations

from segmint._version import __version__
from segmint.clock import Clock, FixedClock, SystemClock
from segmint.config import ConfigError, WorkspaceDef
from segmint.errors import SegmintError, Terminal, Transient
from segmint.intake import Intake, IntakeError, PayloadError, SubmitResult
from segmint.membership import Membership, MembershipChange, MembershipError, RealtimeEngine
from segmint.store import Store, StoreError, open_store
from segmint.workspace import Workspace

__all__ = [
    "Clock",
    "ConfigError",
    "FixedClock",
    "Intake",
    "IntakeError",
    "Membership",
    "MembershipChange",
    "MembershipError",
    "PayloadError",
    "RealtimeEngine",
    "SegmintError",
    "Store",
    "StoreError",
    "SubmitResult",
    "SystemClock",
    "Terminal",
    "Transient",
    "Workspace",
    "WorkspaceDef",
    "__version__",
    "open_store",
]
