"""segmint: a customer data platform core for exact segments and personalised email.

The names below are the public Python API; the CLI and the REST API go through them.
"""

from __future__ import annotations

import typing
from importlib import import_module

from segmint._version import __version__

if typing.TYPE_CHECKING:
    from segmint.clock import Clock, FixedClock, SystemClock
    from segmint.config import ConfigError, WorkspaceDef
    from segmint.errors import SegmintError, Terminal, Transient
    from segmint.intake import Intake, IntakeError, PayloadError, SubmitResult
    from segmint.membership import Membership, MembershipChange, MembershipError, RealtimeEngine
    from segmint.store import Store, StoreError, open_store
    from segmint.workspace import Workspace

# Imported on first use (PEP 562), so that ``segmint --version`` and every command's start
# do not pay for the whole package (pydantic, sqlglot, DuckDB, pyarrow…).
_HOME = {
    "Clock": "segmint.clock",
    "ConfigError": "segmint.config",
    "FixedClock": "segmint.clock",
    "Intake": "segmint.intake",
    "IntakeError": "segmint.intake",
    "Membership": "segmint.membership",
    "MembershipChange": "segmint.membership",
    "MembershipError": "segmint.membership",
    "PayloadError": "segmint.intake",
    "RealtimeEngine": "segmint.membership",
    "SegmintError": "segmint.errors",
    "Store": "segmint.store",
    "StoreError": "segmint.store",
    "SubmitResult": "segmint.intake",
    "SystemClock": "segmint.clock",
    "Terminal": "segmint.errors",
    "Transient": "segmint.errors",
    "Workspace": "segmint.workspace",
    "WorkspaceDef": "segmint.config",
    "open_store": "segmint.store",
}


def __getattr__(name: str) -> typing.Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'segmint' has no attribute {name!r}")
    value = getattr(import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOME))


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
