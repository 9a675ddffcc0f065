"""The management API: segments, previews of rules not saved yet, and profiles.

Segments: list, read, validate, create, update, archive. Profiles: search and the whole view.
Reads need a key with the ``read`` scope, changes one with ``admin``. A save goes through
:class:`segmint.config.edit.DefinitionEditor`: ``segmint.yaml`` keeps its comments and
layout, only the edited entry's lines change, and a save that the loader would refuse is
answered 422 with the loader's message (``file:line:column``, key path, hint) and the key
path as ``field``. ``POST …/validate`` answers 200 with every problem, located the same way.
Saved definitions apply to this process at once; memberships of a new or changed segment are
decided at the next ``segmint refresh``, ``rebuild`` or server start.

The functions without a route are the Python API the console (:mod:`segmint.web`) calls.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field

from segmint.api.auth import require_admin, require_read
from segmint.api.definitions import problems, refused
from segmint.api.errors import ApiError
from segmint.api.inputs import instant, not_renamed, refuse_nul
from segmint.api.profiles import person_or_error
from segmint.api.state import now_of, workspace_of
from segmint.config.edit import DefinitionEditor
from segmint.config.errors import ConfigError
from segmint.membership.errors import UnknownSegmentError
from segmint.membership.preview import preview_rule, read_rule
from segmint.membership.service import Membership
from segmint.rules import RuleError, to_json
from segmint.workspace import Workspace

router = APIRouter(tags=["manage"], dependencies=[Depends(refuse_nul)])
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
"""A new segment's name: what ``in_segment('…')``, URLs and YAML keys all take as they are."""
PREFIX = "/v1/manage"


class SegmentBody(BaseModel):
    """A segment as the client edits it: the keys of ``segments.<name>`` in ``segmint.yaml``."""

    name: str | None = Field(default=None, description="The name (create only).")
    rule: str | None = Field(default=None, description="The rule text.")
    tree: dict[str, Any] | None = Field(
        default=None, description="The rule as its JSON tree (instead of `rule`)."
    )
    description: str | None = Field(default=None, description="What the segment is for.")
    tags: list[str] | None = Field(default=None, description="Free labels.")
    group: str | None = Field(default=None, description="An exclusive group.")
    priority: int | None = Field(default=None, description="Rank within the group.")
    default: bool | None = Field(default=None, description="The group's fallback segment.")
    parent: str | None = Field(default=None, description="A segment bounding this one.")
    version: str | None = Field(
        default=None, description="The file version edited (refused if the file changed)."
    )


class PreviewBody(BaseModel):
    """A rule to preview, as text or as its JSON tree."""

    rule: str | None = Field(default=None, description="The rule text.")
    tree: dict[str, Any] | None = Field(default=None, description="The rule's JSON tree.")
    as_of: str | None = Field(default=None, description="ISO 8601 instant (default: now).")
    limit: int = Field(default=20, ge=0, le=1000, description="How many member ids.")


# -- the Python API ------------------------------------------------------------------------


def segments_overview(ws: Workspace) -> list[dict[str, Any]]:
    """Every segment with its definition and live size."""
    return Membership(ws).segments()


def segments_board(ws: Workspace) -> dict[str, Any]:
    """The segments list with each one's size over time, and every pair's overlap."""
    membership = Membership(ws)
    rows = membership.segments()
    histories = membership.size_histories()
    for row in rows:
        row["history"] = histories.get(row["name"], [])
    pairs = membership.overlap(exclusive_pairs=True)
    return {"segments": rows, "overlap": pairs}


def segment_detail(ws: Workspace, name: str, *, members: int = 20) -> dict[str, Any]:
    """One segment: definition, size, history, recent changes with causes, some members.

    Raises:
        ApiError: 404 for a segment that is not defined.
    """
    try:
        info = Membership(ws).segment(name)
    except UnknownSegmentError as exc:
        raise ApiError(404, "not_found", str(exc), "name") from None
    info["tree"] = to_json(read_rule(ws.definition, info["rule"])) if info["rule"] else None
    rows = ws.store.fetchall(
        "SELECT profile_id FROM memberships WHERE segment = ? ORDER BY profile_id LIMIT ?",
        [name, members],
    )
    info["members"] = [str(r[0]) for r in rows]
    info["version"] = DefinitionEditor(ws.path).version()
    return info


def definitions_version(ws: Workspace) -> str:
    """The version of ``segmint.yaml`` a client sends back with a save."""
    return DefinitionEditor(ws.path).version()


def rule_text(body: SegmentBody | PreviewBody) -> str | None:
    """The rule text of a body: ``rule``, or the canonical text of ``tree``.

    Raises:
        ApiError: 422 when the tree is not a rule, or both are given.
    """
    one_rule(body)
    if body.tree is None:
        return body.rule
    try:
        return str(read_rule_tree(body.tree))
    except RuleError as exc:
        raise ApiError(422, "invalid_rule", str(exc), "tree") from None


def one_rule(body: SegmentBody | PreviewBody) -> None:
    """Refuse a body giving a rule both as text and as a tree: one would be dropped unseen.

    Raises:
        ApiError: 422 naming ``tree``.
    """
    if body.tree is not None and body.rule not in (None, ""):
        message = "tree: give the rule as text (rule) or as a tree (tree), not both"
        raise ApiError(422, "invalid_request", message, "tree")


def read_rule_tree(tree: dict[str, Any]) -> Any:
    """The AST of a JSON tree (:func:`segmint.rules.from_json`)."""
    from segmint.rules import from_json

    return from_json(tree)


def segment_fields(body: SegmentBody) -> dict[str, Any]:
    """The keys to write under ``segments.<name>``."""
    return {"rule": rule_text(body), "description": body.description, "tags": body.tags or None,
            "group": body.group, "priority": body.priority or None,
            "default": body.default or None, "parent": body.parent}  # fmt: skip


def validate_segment(ws: Workspace, name: str, body: SegmentBody) -> list[dict[str, Any]]:
    """Every problem the loader would report if segment ``name`` were saved as ``body``."""
    try:
        DefinitionEditor(ws.path).put_segment(name, segment_fields(body), version=body.version,
                                              dry_run=True)  # fmt: skip
    except ConfigError as exc:
        return problems(exc)
    return []


def save_segment(ws: Workspace, name: str, body: SegmentBody, *, create: bool) -> dict[str, Any]:
    """Create (``create``) or update segment ``name``; the workspace takes the new definitions.

    Raises:
        ApiError: 409 if it exists (create) or the file changed since ``body.version``;
            404 if it does not exist (update); 422 with the loader's error otherwise.
    """
    exists = name in ws.definition.segments
    not_archived(ws, name)
    if create and not NAME.fullmatch(name):
        hint = "use letters, digits and '_', starting with a letter or '_'"
        raise ApiError(422, "invalid_request", f"name: {name!r} is not a segment name: {hint}",
                       "name")  # fmt: skip
    if create and exists:
        raise ApiError(409, "conflict", f"segment '{name}' already exists: update it", "name")
    if not create and not exists:
        raise ApiError(404, "not_found", _unknown(ws, name), "name")
    if not create:
        not_renamed("segment", name, body.name)
    try:  # the loader's checks, the segment plan's among them (nothing written on a problem)
        saved = DefinitionEditor(ws.path).put_segment(
            name, segment_fields(body), version=body.version
        )
    except ConfigError as exc:
        raise refused(exc) from None
    ws.replace_definition(saved.definition)
    return segment_detail(ws, name) | {"version": saved.version}


def not_archived(ws: Workspace, name: str) -> None:
    """Refuse to create, update or archive a segment that is archived.

    It is in ``segmint.yaml``, set aside with its history: a new segment under its name
    would take that history over, and an update or archive has nothing to act on.

    Raises:
        ApiError: 409 naming ``name``, saying how to bring it back.
    """
    if name in ws.definition.archived_segments:
        message = (f"segment '{name}' is archived (set aside with its history): choose "
                   "another name, or set 'archived: false' on it in segmint.yaml to bring it "
                   "back and edit it")  # fmt: skip
        raise ApiError(409, "conflict", message, "name")


def archive_segment(ws: Workspace, name: str, version: str | None = None) -> dict[str, Any]:
    """Mark segment ``name`` ``archived: true`` (it stays in ``segmint.yaml``, set aside).

    Raises:
        ApiError: 404 for an unknown segment, 409 for a changed file, 422 when another
            definition still uses it.
    """
    not_archived(ws, name)
    if name not in ws.definition.segments:
        raise ApiError(404, "not_found", _unknown(ws, name), "name")
    try:
        saved = DefinitionEditor(ws.path).archive_segment(name, version=version)
    except ConfigError as exc:
        raise refused(exc) from None
    ws.replace_definition(saved.definition)
    return {"archived": name, "version": saved.version}


def preview(ws: Workspace, body: PreviewBody, as_of: datetime) -> dict[str, Any]:
    """Size and sample of a rule at ``as_of``.

    Raises:
        ApiError: 422 naming the position of a problem in the rule.
    """
    as_of = instant(body.as_of, "as_of", as_of, now=as_of)
    one_rule(body)
    rule: str | dict[str, Any] | None = body.tree if body.tree is not None else body.rule
    if rule is None or rule == "":
        raise ApiError(422, "invalid_request", "give a rule (text) or a tree (JSON)", "rule")
    try:
        found = preview_rule(ws.store, ws.definition, rule, as_of, limit=body.limit)
    except RuleError as exc:
        field = "rule" if body.tree is None else "tree"  # an empty tree is a tree
        raise ApiError(422, "invalid_rule", str(exc), field) from None
    from segmint.models.registry import unscored_warnings
    from segmint.rules.vocabulary import preview_warnings

    warnings = preview_warnings(ws.definition, ws.store, found.rule)
    warnings += unscored_warnings(ws.definition.models, ws.store, found.rule)
    return found.to_dict() | {"warnings": warnings}


def profile_view(ws: Workspace, ref: str, as_of: datetime, *, events: int = 50) -> dict[str, Any]:
    """A profile: traits, segments with why, recent events, consents and sends.

    Raises:
        ApiError: 404 (nobody; someone since erased: when, and the receipt) or 409 (two
            people) naming ``id``.
    """
    from segmint.deliver.subjects import history_of
    from segmint.membership.explain import add_profile_segments
    from segmint.traits.live import profile_events, profile_traits
    from segmint.traits.validate import workspace_catalog

    pid = person_or_error(ws, ref, "id", erased_too=True)  # erased: says when, as the CLI
    view = profile_traits(ws.store, workspace_catalog(ws), pid, as_of)
    if view is None:
        raise ApiError(404, "not_found", f"profile '{pid}' has no events yet", "id")
    add_profile_segments(view, ws)
    recent = sorted(profile_events(ws.store, pid), key=lambda e: e.timestamp, reverse=True)
    view["recent_events"] = [
        {"timestamp": e.timestamp.isoformat(), "type": e.type, "event": e.event,
         "properties": e.properties, "message_id": e.message_id}
        for e in recent[:events]
    ]  # fmt: skip
    defn = ws.definition
    _, history = history_of(ws.store, pid, defn.consent, identifiers=defn.identifiers,
                            email_trait=defn.email.email_trait)  # fmt: skip
    view["consents"] = [
        {"occurred_at": c.occurred_at, "topic": c.topic, "status": c.status, "source": c.source}
        for c in history
    ]
    rows = ws.store.fetchall(
        "SELECT campaign, status, reason, updated_at FROM sends WHERE profile_id = ? "
        "ORDER BY updated_at DESC, campaign",
        [pid],
    )
    view["sends"] = [
        {"campaign": c, "status": s, "reason": r, "updated_at": u} for c, s, r, u in rows
    ]
    return view


def search_profiles(ws: Workspace, query: str) -> dict[str, Any]:
    """The profile an id, user id, email or ``KIND:VALUE`` names, with its live segments.

    Raises:
        ApiError: 404 (nobody; someone since erased: when, and the receipt) or 409 (two
            people) naming ``q``.
    """
    pid = person_or_error(ws, query.strip(), "q", erased_too=True)
    return {"profile_id": pid, "segments": Membership(ws).profile_segments(pid)}


def _unknown(ws: Workspace, name: str) -> str:
    from segmint.common import did_you_mean

    hint = did_you_mean(name, ws.definition.segments)
    return f"unknown segment '{name}'" + (f"; {hint}" if hint else "")


# -- routes --------------------------------------------------------------------------------


@router.get(f"{PREFIX}/segments", dependencies=[Depends(require_read)])
def list_route(request: Request) -> dict[str, Any]:
    """Every segment with its definition and live size."""
    ws = workspace_of(request)
    return {"segments": segments_overview(ws), "version": DefinitionEditor(ws.path).version()}


@router.get(f"{PREFIX}/segments/{{name}}", dependencies=[Depends(require_read)])
def read_route(
    name: str, request: Request, members: Annotated[int, Query(ge=0, le=1000)] = 20
) -> dict[str, Any]:
    """One segment: rule (text and tree), size, history, recent changes, members.

    ``members`` (0 to 1000, as a preview's ``limit``) is how many member ids to list.
    """
    return segment_detail(workspace_of(request), name, members=members)


@router.post(f"{PREFIX}/segments/validate", dependencies=[Depends(require_read)])
def validate_route(body: SegmentBody, request: Request) -> dict[str, Any]:
    """Check a segment as the loader would, without saving: ``{"valid", "problems"}``."""
    if not body.name:
        raise ApiError(422, "invalid_request", "name: a segment needs a name", "name")
    problems = validate_segment(workspace_of(request), body.name, body)
    return {"valid": not problems, "problems": problems}


@router.post(f"{PREFIX}/segments", status_code=201, dependencies=[Depends(require_admin)])
def create_route(body: SegmentBody, request: Request) -> dict[str, Any]:
    """Create a segment in ``segmint.yaml``."""
    if not body.name:
        raise ApiError(422, "invalid_request", "name: a segment needs a name", "name")
    return save_segment(workspace_of(request), body.name, body, create=True)


@router.put(f"{PREFIX}/segments/{{name}}", dependencies=[Depends(require_admin)])
def update_route(name: str, body: SegmentBody, request: Request) -> dict[str, Any]:
    """Replace a segment's keys in ``segmint.yaml`` (keys left out are removed)."""
    return save_segment(workspace_of(request), name, body, create=False)


@router.post(f"{PREFIX}/segments/{{name}}/archive", dependencies=[Depends(require_admin)])
def archive_route(name: str, request: Request, version: str | None = None) -> dict[str, Any]:
    """Move a segment from ``segmint.yaml`` to ``archive/segments.yaml``."""
    return archive_segment(workspace_of(request), name, version)


@router.post("/v1/segments/preview", dependencies=[Depends(require_read)])
def preview_route(body: PreviewBody, request: Request) -> dict[str, Any]:
    """Size and a sample of members for a rule (text or JSON tree), nothing saved."""
    return preview(workspace_of(request), body, now_of(request))


@router.get(f"{PREFIX}/profiles", dependencies=[Depends(require_read)])
def search_route(q: str, request: Request) -> dict[str, Any]:
    """Find a profile by profile id, user id, anonymous id, email or ``KIND:VALUE``."""
    return search_profiles(workspace_of(request), q)


@router.get(f"{PREFIX}/profiles/{{id}}", dependencies=[Depends(require_read)])
def profile_route(
    ref: Annotated[str, Path(alias="id")], request: Request, as_of: str | None = None
) -> dict[str, Any]:
    """A profile: traits, segments with why, recent events, consents, sends.

    The path's ``id`` is what every error about it names.
    """
    now = now_of(request)
    return profile_view(workspace_of(request), ref, instant(as_of, "as_of", now, now=now))
