"""Errors raised while compiling, linting and rendering email templates.

::

    SegmintError
    └── TemplateError                  a template cannot be used (compile time)
        ├── TemplateNotFound           no such template in ``templates/``
        ├── TemplateSyntaxError        bad Jinja syntax: file, line, column and caret
        └── TemplateRenderError        one recipient's render failed (the others go on)
            ├── TemplateSecurityError  the sandbox refused an unsafe operation
            └── TemplateLimitError     a size or time limit was exceeded

A campaign catches :class:`TemplateRenderError` per recipient, records ``reason`` and
carries on; a :class:`TemplateError` raised by ``compile`` stops the campaign before any
message is built.
"""

from __future__ import annotations

from segmint.errors import SegmintError, SourceLocation, caret_excerpt


class TemplateError(SegmintError):
    """A template cannot be compiled or used.

    Attributes:
        message: What is wrong, without the location.
        template: The template's name, when known.
        location: Where in the template, when known.
        source: The template's text, for the caret excerpt.
        hint: A suggestion such as "did you mean 'first_name'?".
    """

    def __init__(
        self,
        message: str,
        *,
        template: str | None = None,
        location: SourceLocation | None = None,
        source: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.message = message
        self.template = template
        self.location = location
        self.source = source
        self.hint = hint
        super().__init__(self._headline())

    def _headline(self) -> str:
        if self.location is not None:
            where = f"{self.location}: "
        elif self.template:
            where = f"{self.template}: "
        else:
            where = ""
        hint = f"; {self.hint}" if self.hint else ""
        return f"{where}{self.message}{hint}"

    def detailed_message(self) -> str:
        """Return the headline plus the offending template line with a caret."""
        if self.location is None or self.source is None:
            return str(self)
        excerpt = caret_excerpt(self.source, self.location, self.hint)
        return f"{self.location}: {self.message}\n{excerpt}"


class TemplateNotFound(TemplateError, LookupError):
    """The named template (or one it extends or includes) does not exist."""


class TemplateSyntaxError(TemplateError, ValueError):
    """The template is not valid Jinja."""


class TemplateRenderError(TemplateError):
    """Rendering the template for one recipient failed; ``reason`` says why.

    Attributes:
        reason: A short machine-friendly reason (``undefined``, ``security``, ``limit``,
            ``error``), for campaign reports that count failures by reason.
    """

    reason = "error"


class TemplateSecurityError(TemplateRenderError):
    """The sandbox refused an operation (the template tried to reach Python internals)."""

    reason = "security"


class TemplateLimitError(TemplateRenderError):
    """The render exceeded the output size or time limit."""

    reason = "limit"


class TemplateUndefinedError(TemplateRenderError):
    """The template used a name or attribute that does not exist."""

    reason = "undefined"
