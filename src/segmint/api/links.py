"""Email links served by ``segmint serve``: open pixel, click redirect, unsubscribe, preferences.

Every link is signed (:class:`segmint.deliver.links.LinkSigner`); a tampered or truncated
link is refused with 403 and never redirects. Opens, clicks and unsubscribes enter intake as
``Email Opened``, ``Email Link Clicked`` and ``Email Unsubscribed`` events (through the
app's group-commit writer), and unsubscribes and preference changes are recorded as consent
changes. ``POST /v1/consent`` and ``POST /v1/suppressions`` let other systems record
consent and complaints (API key with the ``write`` scope).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from segmint.api.auth import require_write
from segmint.api.errors import ApiError
from segmint.api.inputs import instant, refuse_nul
from segmint.clock import Clock
from segmint.common import looks_like_address
from segmint.deliver import engagement, pages
from segmint.deliver.consent import (
    ALL_TOPICS,
    check_topic,
    current_consents,
    record_consent,
    suppress,
    sync_trait_consents,
)
from segmint.deliver.errors import CampaignError, LinkError
from segmint.deliver.links import LinkKind, LinkSigner, is_web_url
from segmint.deliver.subjects import consent_subject, record_subject_consent
from segmint.intake.errors import AmbiguousPersonError, PersonRefError
from segmint.intake.identity import survivor
from segmint.workspace import Workspace

router = APIRouter(tags=["email"])

PIXEL = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00"
    b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)
NO_STORE = {"Cache-Control": "no-store, max-age=0"}


def _workspace(request: Request) -> Workspace:
    ws: Workspace = request.app.state.workspace
    return ws


def _now(request: Request) -> datetime:
    clock: Clock = request.app.state.clock
    return clock.now()


def _verify(request: Request, kind: LinkKind, token: str) -> dict[str, Any]:
    try:
        signer = LinkSigner.from_email(_workspace(request).definition.email)
        return signer.verify(kind, token)
    except LinkError as exc:
        raise ApiError(403, "invalid_link", str(exc), "token") from None
    except CampaignError as exc:
        raise ApiError(503, "not_configured", str(exc)) from None


def _submit(request: Request, messages: list[dict[str, Any]]) -> None:
    intake = request.app.state.intake
    submission, _ = intake.decode(messages, source="email", received_at=_now(request))
    request.app.state.committer.submit(submission).result(timeout=30)


@router.get("/e/o/{token}", include_in_schema=False)
def open_pixel(request: Request, token: str) -> Response:
    """Record an open and answer a 1×1 transparent GIF."""
    data = _verify(request, "o", token)
    agent = request.headers.get("user-agent")
    store = _workspace(request).store
    _submit(request, [engagement.open_message(store, data, _now(request), agent)])
    return Response(PIXEL, media_type="image/gif", headers=NO_STORE)


@router.get("/e/c/{token}", include_in_schema=False)
def click(request: Request, token: str) -> Response:
    """Record a click and redirect to the signed target (only http and https)."""
    data = _verify(request, "c", token)
    target = data.get("u")
    if not isinstance(target, str) or not is_web_url(target):
        raise ApiError(403, "invalid_link", "the link's target is not an http(s) URL", "token")
    agent = request.headers.get("user-agent")
    store = _workspace(request).store
    _submit(request, [engagement.click_message(store, data, _now(request), agent)])
    return RedirectResponse(target, status_code=302, headers=NO_STORE)


def _html(request: Request, kind: LinkKind, token: str) -> dict[str, Any] | HTMLResponse:
    try:
        return _verify(request, kind, token)
    except ApiError as exc:
        return HTMLResponse(pages.refused(), status_code=exc.status)


@router.get("/e/u/{token}", include_in_schema=False)
def unsubscribe_page(request: Request, token: str) -> HTMLResponse:
    """Show the unsubscribe confirmation (GET never unsubscribes: link scanners fetch it)."""
    data = _html(request, "u", token)
    if isinstance(data, HTMLResponse):
        return data
    signer = LinkSigner.from_email(_workspace(request).definition.email)
    body = pages.unsubscribe_form(
        data["t"], str(request.url.path), signer.preferences_url(data["p"])
    )
    return HTMLResponse(body, headers=NO_STORE)


@router.post("/e/u/{token}", include_in_schema=False)
def unsubscribe(request: Request, token: str) -> HTMLResponse:
    """Unsubscribe: RFC 8058 one-click (``List-Unsubscribe=One-Click``) or the page's form."""
    data = _html(request, "u", token)
    if isinstance(data, HTMLResponse):
        return data
    ws, at = _workspace(request), _now(request)
    profile_id, topic = data["p"], data["t"]
    record_consent(ws.store, profile_id, topic, "unsubscribed", source="unsubscribe_link", at=at)
    message = engagement.unsubscribe_message(
        ws.store, profile_id, topic, data.get("c"), at, "one_click"
    )
    _submit(request, [message])
    signer = LinkSigner.from_email(ws.definition.email)
    return HTMLResponse(pages.unsubscribed(topic, signer.preferences_url(profile_id)))


def _subscribed(ws: Workspace, profile_id: str, at: datetime) -> dict[str, bool]:
    consent = ws.definition.consent
    sync_trait_consents(ws.store, consent)  # show consent given through identify calls too
    profile_id = survivor(ws.store, profile_id) or profile_id  # an email to a merged profile
    out = {}
    for topic in consent.topics:
        status = current_consents(ws.store, topic, at, [profile_id]).get(profile_id)
        out[topic] = status == "granted" or (status is None and consent.policy == "opt_out")
    return out


@router.get("/e/p/{token}", include_in_schema=False)
def preferences(request: Request, token: str) -> HTMLResponse:
    """Show one checkbox per topic, checked where the profile receives it."""
    data = _html(request, "p", token)
    if isinstance(data, HTMLResponse):
        return data
    state = _subscribed(_workspace(request), data["p"], _now(request))
    return HTMLResponse(pages.preferences_form(str(request.url.path), state), headers=NO_STORE)


@router.post("/e/p/{token}", include_in_schema=False)
async def save_preferences(request: Request, token: str) -> HTMLResponse:
    """Record a consent change for each topic whose checkbox changed."""
    data = _html(request, "p", token)
    if isinstance(data, HTMLResponse):
        return data
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    wanted = set(form.get("topic", []))
    ws, at, profile_id = _workspace(request), _now(request), data["p"]
    for topic, was in _subscribed(ws, profile_id, at).items():
        if (topic in wanted) != was:
            status: Literal["granted", "unsubscribed"] = (
                "granted" if topic in wanted else "unsubscribed"
            )
            record_consent(ws.store, profile_id, topic, status, source="preferences", at=at)
    state = _subscribed(ws, profile_id, at)
    return HTMLResponse(pages.preferences_form(str(request.url.path), state, saved=True))


class ConsentIn(BaseModel):
    """A consent change sent by another system, about one person.

    Exactly one of ``profileId`` (anything the resolver takes: a profile id, user id, email,
    ``KIND:VALUE``), ``userId``, ``anonymousId`` or ``email`` names the person.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    profile_id: str | None = Field(None, alias="profileId", min_length=1)
    user_id: str | None = Field(None, alias="userId", min_length=1)
    anonymous_id: str | None = Field(None, alias="anonymousId", min_length=1)
    email: str | None = Field(None, min_length=1)
    topic: str = ALL_TOPICS
    status: Literal["granted", "denied", "unsubscribed"]
    source: str = "api"
    timestamp: str | None = Field(
        None, description="When the person made the choice (ISO 8601; default: now)."
    )


_PERSON_FIELDS = (
    ("profileId", "profile_id", ""),
    ("userId", "user_id", "user_id:"),
    ("anonymousId", "anonymous_id", "anonymous_id:"),
    ("email", "email", "email:"),
)
"""Body field, model attribute, and the ``KIND:`` its value is resolved as."""


def _person(body: ConsentIn) -> tuple[str, str]:
    """The field naming the person and the reference to resolve, as ``(field, ref)``."""
    given = [
        (name, prefix + value)
        for name, attr, prefix in _PERSON_FIELDS
        if (value := getattr(body, attr)) is not None
    ]
    if len(given) != 1:
        names = ", ".join(name for name, _, _ in _PERSON_FIELDS)
        got = ", ".join(name for name, _ in given) or "none"
        field = given[1][0] if given else "profileId"
        message = f"give exactly one of {names} (got {got})"
        raise ApiError(422, "invalid_request", message, field)
    return given[0]


@router.post("/v1/consent", dependencies=[Depends(refuse_nul), Depends(require_write)])
def post_consent(request: Request, body: ConsentIn) -> dict[str, Any]:
    """Record a consent change: the person, ``topic`` (or ``*``) and ``status``.

    The person is one of ``profileId``, ``userId``, ``anonymousId`` or ``email``. A person
    nobody knows answers 404 naming the field (409 for a bare id naming two people), except
    an address: a statement about an email address no profile has yet is recorded for the
    address (``profileId`` null in the answer) and counts once a profile has it, unless it
    was an erased person's: then 404 naming the erasure, as ``segmint consent set`` says.
    """
    from segmint.privacy.erased import erased_note

    ws = _workspace(request)
    field, ref = _person(body)
    if body.email is not None and not looks_like_address(body.email):
        raise ApiError(422, "invalid_request", "email: not an email address", "email")
    try:
        check_topic(ws.definition.consent, body.topic)
    except CampaignError as exc:
        raise ApiError(422, "invalid_request", str(exc), "topic") from None
    try:
        subject = consent_subject(ws.store, ref, ws.definition.identifiers, field=field,
                                  erased=lambda ref: erased_note(ws.privacy, ref))  # fmt: skip
    except AmbiguousPersonError as exc:
        raise ApiError(409, "ambiguous", str(exc), field) from None
    except PersonRefError as exc:
        raise ApiError(404, "not_found", str(exc), field) from None
    at = _occurred_at(body.timestamp, _now(request))
    change = record_subject_consent(
        ws.store, subject, body.topic, body.status, source=body.source, at=at
    )
    return {"profileId": change.profile_id, "address": change.address, "topic": change.topic,
            "status": change.status, "occurredAt": change.occurred_at.isoformat()}  # fmt: skip


CLOCK_SKEW = timedelta(minutes=5)
"""How far ahead of the server's clock a client's ``timestamp`` may be (its clock's error)."""


def _occurred_at(timestamp: str | None, now: datetime) -> datetime:
    """When a posted consent statement took place: its ``timestamp``, never later than now.

    It is read as every instant the API takes (:func:`segmint.api.inputs.instant`): a
    statement dated before 1900 is refused, as an event dated then is.

    A statement dated later would not count until then, and would outrank every statement
    recorded before it meanwhile (an unsubscribe dated next month lets this month's email
    through). Up to :data:`CLOCK_SKEW` ahead is a client's clock running fast: taken as now.

    Raises:
        ApiError: 422 naming ``timestamp`` when it is later than that.
    """
    at = instant(timestamp, "timestamp", now, now=now)
    if at > now + CLOCK_SKEW:
        raise ApiError(
            422, "invalid_request",
            f"timestamp: {at.isoformat()} is later than now ({now.isoformat(timespec='seconds')})"
            ": a statement dated then would not count until then; give when the person made "
            "the choice, or leave timestamp out (now)",
            "timestamp",
        )  # fmt: skip
    return min(at, now)


class SuppressionIn(BaseModel):
    """A complaint, bounce or manual block reported by another system."""

    model_config = ConfigDict(extra="forbid")

    address: str = Field(min_length=3)
    reason: Literal["complaint", "bounce", "manual"] = "complaint"
    source: str = "api"


@router.post("/v1/suppressions", dependencies=[Depends(refuse_nul), Depends(require_write)])
def post_suppression(request: Request, body: SuppressionIn) -> dict[str, Any]:
    """Suppress an address (a spam complaint from a feedback loop, a bounce, a block)."""
    if not looks_like_address(body.address):  # as consent checks an address
        raise ApiError(422, "invalid_request", "address: not an email address", "address")
    suppress(_workspace(request).store, body.address, body.reason, source=body.source,
             at=_now(request))  # fmt: skip
    return {"address": body.address.strip().lower(), "reason": body.reason}
