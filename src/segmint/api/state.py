"""What a route reads from its app: the workspace and the clock's now."""

from __future__ import annotations

from datetime import datetime

from fastapi import Request

from segmint.workspace import Workspace


def workspace_of(request: Request) -> Workspace:
    """The app's workspace."""
    ws: Workspace = request.app.state.workspace
    return ws


def now_of(request: Request) -> datetime:
    """The app clock's now (the server passes its clock; tests a fixed one)."""
    instant: datetime = request.app.state.clock.now()
    return instant
