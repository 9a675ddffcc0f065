"""Previews: render a template for real profiles and write ``.html`` and ``.eml`` files.

Profiles come from the store through :func:`segmint.profiles.segment_members` (the first
``count`` members of a segment, by profile id) or :func:`segmint.profiles.load_profile`.
Links point at the workspace's ``email.base_url`` with a ``preview`` token, so nothing in
a preview can unsubscribe anyone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from segmint.common import did_you_mean
from segmint.config.model import WorkspaceDef
from segmint.personalize.errors import TemplateError, TemplateRenderError
from segmint.personalize.renderer import CompiledTemplate, Renderer
from segmint.profiles import Profile, load_profile, segment_members
from segmint.workspace import Workspace

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True)
class PreviewRequest:
    """What to preview.

    Attributes:
        template: The template name.
        segment: Render for members of this segment (or give ``profile_id``).
        profile_id: Render for this one profile.
        count: How many members of ``segment``.
        out: The folder the files are written to (created if missing).
        sender: The From address; a campaign's sender for this template when None.
        date: The messages' ``Date``.
    """

    template: str
    segment: str | None
    profile_id: str | None
    count: int
    out: Path
    sender: str | None
    date: datetime


@dataclass
class PreviewResult:
    """Files written, and profiles whose render failed (with the reason)."""

    written: list[dict[str, str]] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Return the result as a JSON-ready dict."""
        return {"written": self.written, "failed": self.failed}


def render_previews(workspace: Workspace, request: PreviewRequest) -> PreviewResult:
    """Render ``request.template`` for the requested profiles into ``request.out``.

    Raises:
        TemplateError: If the template does not compile, the segment or profile is unknown,
            or the segment has no members.
    """
    definition = workspace.definition
    renderer = Renderer(workspace.templates_dir, definition)
    compiled = renderer.compile(request.template)
    profiles = _profiles(workspace, request, renderer.context.types)
    sender = request.sender or _default_sender(definition, compiled.name)
    request.out.mkdir(parents=True, exist_ok=True)
    result = PreviewResult()
    for profile in profiles:
        _render_one(compiled, definition, profile, sender, request, result)
    return result


def _profiles(
    workspace: Workspace, request: PreviewRequest, types: dict[str, str]
) -> list[Profile]:
    definition = workspace.definition
    if request.profile_id is not None:
        profile = load_profile(workspace.store, request.profile_id, types)
        if profile is None:
            raise TemplateError(f"no profile with id {request.profile_id!r}")
        return [profile]
    segment = request.segment or ""
    if segment not in definition.segments:
        hint = did_you_mean(segment, definition.segments)
        raise TemplateError(f"unknown segment {segment!r}", hint=hint)
    members = list(segment_members(workspace.store, segment, types, limit=request.count))
    if not members:
        raise TemplateError(
            f"segment {segment!r} has no members to preview",
            hint="refresh the segments, or preview one profile with --profile",
        )
    return members


def _default_sender(definition: WorkspaceDef, template: str) -> str:
    for campaign in definition.campaigns.values():
        if campaign.template in (template, template.removesuffix(".html")):
            return campaign.sender
    return f"{definition.name} <preview@segmint.invalid>"


def _render_one(
    compiled: CompiledTemplate,
    definition: WorkspaceDef,
    profile: Profile,
    sender: str,
    request: PreviewRequest,
    result: PreviewResult,
) -> None:
    safe = _UNSAFE.sub("_", profile.profile_id) or "profile"
    address = profile.traits.get(definition.email.email_trait)
    to = address if isinstance(address, str) and "@" in address else f"{safe}@preview.invalid"
    base = definition.email.base_url.rstrip("/")
    links = {
        "unsubscribe_url": f"{base}/preview/unsubscribe",
        "preferences_url": f"{base}/preview/preferences",
    }
    try:
        email = compiled.render(
            profile,
            sender=sender,
            to=to,
            message_id=f"preview.{safe}@segmint.invalid",
            date=request.date,
            extra=links,
            list_unsubscribe=(links["unsubscribe_url"], ""),
        )
    except TemplateRenderError as exc:
        result.failed.append(
            {"profile_id": profile.profile_id, "reason": exc.reason, "error": str(exc)}
        )
        return
    html = request.out / f"{safe}.html"
    eml = request.out / f"{safe}.eml"
    html.write_text(email.html, encoding="utf-8")
    eml.write_bytes(email.as_bytes())
    result.written.append(
        {
            "profile_id": profile.profile_id,
            "subject": email.subject,
            "html": str(html),
            "eml": str(eml),
        }
    )
