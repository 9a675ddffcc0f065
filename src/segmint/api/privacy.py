"""Data-subject requests over HTTP: erase and export one person (admin-scoped keys only).

``POST /v1/privacy/erase`` with ``{"person": "<id, email or KIND:VALUE>"}`` answers the
erasure receipt; ``POST /v1/privacy/export`` answers the export document with its manifest.
Both go through :mod:`segmint.privacy` (the same functions as ``segmint privacy erase`` and
``export``) and are written to the audit log under the calling key's id.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from segmint.api.auth import require_admin
from segmint.api.inputs import refuse_nul
from segmint.api.profiles import person_or_error
from segmint.api.state import now_of, workspace_of
from segmint.intake.keys import ApiKey

router = APIRouter(tags=["privacy"], dependencies=[Depends(refuse_nul)])
AdminKey = Annotated[ApiKey, Depends(require_admin)]


class PersonBody(BaseModel):
    """Whom a request is about."""

    person: str = Field(description="A profile id, user id, anonymous id, email or KIND:VALUE.")


@router.post("/v1/privacy/erase")
def erase_route(body: PersonBody, request: Request, key: AdminKey) -> dict[str, Any]:
    """Erase a person (crypto-shredding, deletion, anonymised counts); answer the receipt."""
    from segmint.privacy.erase import erase
    from segmint.privacy.erased import finish_erasures, unlinked_identities

    ws = workspace_of(request)
    finish_erasures(ws.privacy)  # asking again after a failed one: 404 erased, keys gone
    ref = body.person  # someone no profile holds (only quarantine names them): as typed
    if not unlinked_identities(ws.privacy, ref):
        ref = person_or_error(ws, ref, "person", erased_too=True)
    root, receipt = erase(ws.privacy, ref, at=now_of(request),
                          actor=f"api:{key.key_id}")  # fmt: skip
    return {"profile_id": root, **receipt.as_dict()}


@router.post("/v1/privacy/export")
def export_route(body: PersonBody, request: Request, key: AdminKey) -> dict[str, Any]:
    """Everything held on a person, with a manifest of its sections."""
    from segmint.privacy.erased import unlinked_identities
    from segmint.privacy.export import export_person

    ws = workspace_of(request)
    ref = body.person  # someone no profile holds (only quarantine names them): as typed
    if not unlinked_identities(ws.privacy, ref):
        ref = person_or_error(ws, ref, "person", erased_too=True)
    return export_person(ws.privacy, ref, at=now_of(request),
                         actor=f"api:{key.key_id}")  # fmt: skip
