"""The FastAPI application: tracking endpoints, auth, one error shape, pluggable routers.

Other packages add routers by appending a module path to :data:`EXTRA_ROUTERS`; each such
module exposes ``router`` (a :class:`fastapi.APIRouter`) and is imported when an app is
created. Guard management routes with :func:`segmint.api.auth.require_read` /
``require_write``. The app's state holds ``workspace``, ``clock``, ``intake`` (add real-time
listeners to it), ``committer`` (the group-commit writer) and ``keys``.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import FastAPI

from segmint._version import __version__
from segmint.api import backpressure, browser, observe, tracking
from segmint.api.auth import KeyRing
from segmint.api.backpressure import LagLimit
from segmint.api.errors import install_handlers
from segmint.api.inputs import BodyLimit
from segmint.clock import Clock, SystemClock
from segmint.intake.groupcommit import GroupCommitter
from segmint.intake.pipeline import Intake
from segmint.workspace import Workspace

if TYPE_CHECKING:
    from segmint.membership.follow import Lag

EXTRA_ROUTERS: list[str] = [
    "segmint.api.shopify",
    "segmint.api.links",
    "segmint.api.profiles",
    "segmint.api.manage",
    "segmint.api.privacy",
    "segmint.api.definitions",
    "segmint.api.reports",
    "segmint.web.routes",
]
"""Module paths whose ``router`` is included in every app, in order."""


def create_app(
    workspace: Workspace,
    clock: Clock | None = None,
    *,
    intake: Intake | None = None,
    max_wait: float = 0.004,
    realtime_lag: Callable[[], Lag] | None = None,
    lag_limit: LagLimit | None = None,
) -> FastAPI:
    """Build the app for ``workspace``.

    Args:
        workspace: The workspace whose store receives events.
        clock: The clock that stamps ``receivedAt`` (the system clock by default).
        intake: The pipeline to use (to share one that has listeners); built if omitted.
        max_wait: The group commit's longest wait for company, in seconds.
        realtime_lag: The real-time lag (a server's
            :meth:`~segmint.membership.follow.Follower.lag`): intake then refuses events
            past ``lag_limit`` (:mod:`segmint.api.backpressure`).
        lag_limit: The limits (from the environment when omitted).

    The group-commit writer starts now and stops when the app shuts down (lifespan), after
    committing what is queued.
    """
    clock = clock or SystemClock()
    intake = intake or Intake(workspace, clock)
    committer = GroupCommitter(intake, max_wait=max_wait)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            committer.close()

    app = FastAPI(title="segmint", version=__version__, lifespan=lifespan)
    app.state.workspace = workspace
    app.state.clock = clock
    app.state.intake = intake
    app.state.committer = committer
    app.state.keys = KeyRing(workspace.store)
    install_handlers(app)
    if realtime_lag is not None:
        backpressure.install(app, realtime_lag, lag_limit or LagLimit.from_env())
    backpressure.add_health(app)
    app.include_router(tracking.router)
    browser.install(app)  # short paths, settings, pixel, CORS, per-IP limits
    for path in EXTRA_ROUTERS:
        app.include_router(importlib.import_module(path).router)
    app.add_middleware(BodyLimit)  # around every route: before one reads a body
    observe.install(app)  # /metrics, /healthz, /readyz

    @app.get("/health", tags=["meta"])
    async def health() -> dict[str, str]:
        """Liveness: the server answers."""
        return {"status": "ok"}

    return app
