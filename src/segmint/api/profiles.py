"""Segment lookup for low-latency targeting: ``GET /v1/profiles/{id}/segments``.

Answers from the live memberships, which the real-time engine updates in the same
transaction as each change. ``id`` is anything :func:`segmint.intake.identity.resolve_person`
accepts (a profile id, user id, anonymous id, email, or ``KIND:VALUE``), followed through
merges to the surviving profile; ``?by=user_id`` (or ``anonymous_id``, ``email``,
``profile_id``) says which kind a bare ``id`` is. An id that names nobody answers 404 (saying
when, for someone erased), one that names two people 409, both with ``field``
``profile_id``. Needs a key with the ``read``
scope.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Request

from segmint.api.auth import require_read
from segmint.api.errors import ApiError
from segmint.api.inputs import refuse_nul
from segmint.intake.errors import AmbiguousPersonError, PersonRefError
from segmint.intake.identity import resolve_person
from segmint.membership.changes import members_of
from segmint.workspace import Workspace

router = APIRouter(tags=["profiles"], dependencies=[Depends(refuse_nul)])

By = Literal["profile_id", "user_id", "anonymous_id", "email"]


@router.get("/v1/profiles/{profile_id}/segments", dependencies=[Depends(require_read)])
def profile_segments(profile_id: str, request: Request, by: By | None = None) -> dict[str, Any]:
    """The segments a profile is a member of now."""
    workspace: Workspace = request.app.state.workspace
    ref = profile_id if by is None else f"{by}:{profile_id}"
    pid = person_or_error(workspace, ref, "profile_id", erased_too=True)
    segments = sorted(members_of(workspace.store, [pid])[pid])
    return {"profile_id": pid, "segments": segments}


def person_or_error(workspace: Workspace, ref: str, field: str, *, erased_too: bool = False) -> str:
    """Resolve ``ref`` to a profile, or raise the API's 404 (nobody) or 409 (two people).

    Args:
        workspace: The workspace (its store and identifier traits).
        ref: The id as the client sent it.
        field: The request field it came from, named in the error.
        erased_too: Say in the 404 when ``ref`` names a person since erased (privacy
            requests: erasing twice is no mystery).
    """
    try:
        if erased_too:
            from segmint.privacy.erased import resolve_living

            return resolve_living(workspace.privacy, ref, field=field)
        return resolve_person(workspace.store, ref, workspace.definition.identifiers)
    except AmbiguousPersonError as exc:
        raise ApiError(409, "ambiguous", str(exc), field) from None
    except PersonRefError as exc:
        raise ApiError(404, "not_found", str(exc), field) from None
