"""Personalisation: sandboxed Jinja templates per profile, and fast MIME messages.

Build a :class:`Renderer` once per workspace, :meth:`~Renderer.compile` a template once per
campaign, then :meth:`~CompiledTemplate.render` per recipient. :func:`lint_template` checks
a template against the workspace's traits and segments.
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
from segmint.personalize.renderer import CompiledTemplate, Limits, RenderedEmail, Renderer

__all__ = [
    "CompiledTemplate",
    "Limits",
    "RenderedEmail",
    "Renderer",
    "TemplateError",
    "TemplateLimitError",
    "TemplateNotFound",
    "TemplateRenderError",
    "TemplateSecurityError",
    "TemplateSyntaxError",
    "TemplateUndefinedError",
]
