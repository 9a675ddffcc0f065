"""Segment lookup for low-latency targeting: ``GET /v1/profiles/{id}/segments``.

Answers from the live memberships, which the real-time engine updates in the same
transaction as each change. ``id`` is a profile id, or with ``?by=user_id`` (or
``anonymous_id``, ``email``) an identity the profile owns. Needs a key with the ``read``
scope.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Request

from segmint.api.auth import require_read
from segmint.api.errors import ApiError
from segmint.membership.changes import members_of
from segmint.store import Store
from segmint.workspace import Workspace

router = APIRouter(tags=["profiles"])

By = Literal["profile_id", "user_id", "anonymous_id", "email"]


@router.get("/v1/profiles/{profile_id}/segments", dependencies=[Depends(require_read)])
def profile_segments(profile_id: str, request: Request, by: By = "profile_id") -> dict[str, Any]:
    """The segments a profile is a member of now."""
    workspace: Workspace = request.app.state.workspace
    store = workspace.store
    pid = _resolve(store, profile_id, by)
    segments = sorted(members_of(store, [pid])[pid])
    return {"profile_id": pid, "segments": segments}


def _resolve(store: Store, key: str, by: By) -> str:
    if by == "profile_id":
        for _ in range(16):  # follow merges to the surviving profile
            rows = store.fetchall("SELECT merged_into FROM profiles WHERE profile_id = ?", [key])
            if not rows:
                raise ApiError(404, "not_found", f"no profile '{key}'", "profile_id")
            if rows[0][0] is None:
                return key
            key = str(rows[0][0])
        return key
    value = key.strip().lower() if by == "email" else key
    rows = store.fetchall(
        "SELECT profile_id FROM identities WHERE kind = ? AND value = ?", [by, value]
    )
    if not rows:
        raise ApiError(404, "not_found", f"no profile with {by} '{key}'", "profile_id")
    return str(rows[0][0])
