"""Personalisation: sandboxed Jinja templates per profile, and fast MIME messages.

Build a :class:`Renderer` once per workspace, :meth:`~Renderer.compile` a template once per
campaign, then :meth:`~CompiledTemplate.render` per recipient. :func:`lint_templates` checks
templates against the workspace's traits and segments; :func:`render_previews` writes
``.html`` and ``.eml`` previews for real profiles.
"""

from __future__ import annotations

from segmint.personalize.errors import (
    TemplateError,
    TemplateLimitError,
    TemplateNotFound,
    TemplateRenderError,
    TemplateSecurityError,
    TemplateSyntaxError,
    TemplateUndefinedError,
)
from segmint.personalize.lint import LintIssue, lint_templates
from segmint.personalize.preview import PreviewRequest, PreviewResult, render_previews
from segmint.personalize.renderer import CompiledTemplate, Limits, RenderedEmail, Renderer

__all__ = [
    "CompiledTemplate",
    "Limits",
    "LintIssue",
    "PreviewRequest",
    "PreviewResult",
    "RenderedEmail",
    "Renderer",
    "TemplateError",
    "TemplateLimitError",
    "TemplateNotFound",
    "TemplateRenderError",
    "TemplateSecurityError",
    "TemplateSyntaxError",
    "TemplateUndefinedError",
    "lint_templates",
    "render_previews",
]
