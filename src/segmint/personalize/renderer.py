"""The renderer: compile a template once, then render a complete message per recipient.

::

    renderer = Renderer(workspace.templates_dir, workspace.definition)
    compiled = renderer.compile("lifecycle")          # once per campaign
    email = compiled.render(profile, sender=..., to=..., message_id=..., date=as_of,
                            extra={"unsubscribe_url": ...})
    wire = email.as_bytes()                           # RFC 5322, CRLF line ends

A render error for one recipient raises :class:`TemplateRenderError`; the caller fails
that recipient and carries on.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import FileSystemLoader
from markupsafe import Markup, escape

from segmint.config.model import WorkspaceDef
from segmint.personalize.compiler import flatten, syntax_error
from segmint.personalize.context import ContextBuilder
from segmint.personalize.errors import (
    TemplateError,
    TemplateLimitError,
    TemplateRenderError,
    TemplateSecurityError,
    TemplateUndefinedError,
)
from segmint.personalize.htmltext import (
    ConvertingLoader,
    html_template_source,
    text_template_source,
)
from segmint.personalize.mime import (
    Skeleton,
    address_header,
    date_header,
    list_unsubscribe_headers,
    message_id_header,
    text_header,
)
from segmint.personalize.sandbox import BUDGET, Budget, Sandbox
from segmint.personalize.sandbox import make_undefined as _make_undefined
from segmint.profiles import Profile

_META_SEP = "\x1f"
_PREHEADER = ('<div style="display:none;max-height:0;overflow:hidden;mso-hide:all">', "</div>")
_PIXEL = (
    '<img src="',
    '" width="1" height="1" alt="" style="display:block;border:0;width:1px;height:1px">',
)


@dataclass(frozen=True)
class Limits:
    """Per-template and per-render limits.

    Attributes:
        max_template_bytes: Largest template file (each file of the chain).
        max_output_bytes: Largest rendered HTML or text part, in characters.
        max_render_seconds: Longest time one recipient's render may take.
    """

    max_template_bytes: int = 256_000
    max_output_bytes: int = 2_000_000
    max_render_seconds: float = 0.5


@dataclass(slots=True)
class RenderedEmail:
    """One recipient's message.

    Attributes:
        subject: The rendered subject, one line.
        preheader: The rendered preheader (may be empty).
        html: The HTML part, links rewritten, CSS inlined.
        text: The plain-text part, generated from the HTML.
        headers: The header block, encoded (ends with the MIME headers of the skeleton).
    """

    subject: str
    preheader: str
    html: str
    text: str
    headers: bytes
    skeleton: Skeleton

    def as_bytes(self) -> bytes:
        """Return the complete RFC 5322 message (multipart/alternative, UTF-8, CRLF)."""
        return self.skeleton.assemble(self.headers, self.text, self.html)


class Renderer:
    """Compiles the templates of one workspace (cache by name) for its profiles."""

    def __init__(
        self, templates_dir: Path | str, definition: WorkspaceDef, *, limits: Limits | None = None
    ) -> None:
        """Build the sandboxes for ``templates_dir`` and the workspace ``definition``."""
        self.templates_dir = Path(templates_dir)
        self.definition = definition
        self.limits = limits or Limits()
        self.context = ContextBuilder(definition)
        self.files = FileSystemLoader(str(self.templates_dir))
        undefined = _make_undefined(self.context.known_names)
        self.html_env = Sandbox(
            loader=ConvertingLoader(self.files, html_template_source),
            autoescape=True,
            undefined=undefined,
        )
        self.text_env = Sandbox(
            loader=ConvertingLoader(self.files, text_template_source),
            autoescape=False,
            undefined=undefined,
        )
        for env in (self.html_env, self.text_env):
            env.max_size = self.limits.max_output_bytes
            self.context.install(env)
        self._compiled: dict[str, CompiledTemplate] = {}

    def compile(self, template_name: str, *, subject: str | None = None) -> CompiledTemplate:
        """Compile ``template_name`` (cached): flatten, inline CSS, precompute the MIME skeleton.

        Args:
            template_name: A file in ``templates/``; ``.html`` may be left off.
            subject: A subject template that overrides the template's ``subject`` block.

        Raises:
            TemplateError: If the template is missing, invalid or has no subject.
        """
        name = self.resolve_name(template_name)
        key = f"{name}\0{subject}"
        if key not in self._compiled:
            self._compiled[key] = self._compile(name, subject)
        return self._compiled[key]

    def render_snippet(self, source: str, profile: Profile, *, date: datetime) -> str:
        """Render a snippet of template text (merge tags, filters) for one profile.

        The snippet sees what a template's text part sees (no HTML escaping); ``date`` is
        ``date`` of the context, as for a message. Used by segment fixtures
        (``segmint test``) to hold merge tags to expected text.

        Raises:
            TemplateError: If the snippet does not compile or fails for this profile.
        """
        template = self._from_string(self.text_env, source, "<snippet>")
        budget = Budget(
            time.monotonic() + self.limits.max_render_seconds, self.limits.max_output_bytes
        )
        token = BUDGET.set(budget)
        try:
            variables = self.context.build(profile, {"date": date}, budget)
            return _run(template, variables, budget)
        except TemplateRenderError:
            raise
        except jinja2.exceptions.UndefinedError as exc:
            raise TemplateUndefinedError(str(exc), template="<snippet>") from None
        except Exception as exc:  # a template is code: report any failure as this one's
            raise TemplateRenderError(
                f"{type(exc).__name__}: {exc}", template="<snippet>"
            ) from None
        finally:
            BUDGET.reset(token)

    def resolve_name(self, template_name: str) -> str:
        """Return the file name of ``template_name`` (``.html`` added when it has no suffix)."""
        if template_name.endswith((".html", ".htm")) or "." in Path(template_name).name:
            return template_name
        return f"{template_name}.html"

    def _compile(self, name: str, subject: str | None) -> CompiledTemplate:
        flat = flatten(self.files, self.html_env, name, self.limits.max_template_bytes)
        subject_src = subject if subject is not None else flat.subject
        if subject_src is None or not subject_src.strip():
            raise TemplateError(
                "the template has no subject",
                template=name,
                hint="add {% block subject %}…{% endblock %} or give the campaign a subject",
            )
        return CompiledTemplate(
            name=name,
            renderer=self,
            html=self._from_string(self.html_env, flat.html, name),
            text=self._from_string(self.text_env, flat.text, name),
            meta=self._from_string(
                self.text_env, subject_src + _META_SEP + (flat.preheader or ""), name
            ),
        )

    def _from_string(self, env: Sandbox, source: str, name: str) -> jinja2.Template:
        try:
            return env.from_string(source)
        except jinja2.TemplateSyntaxError as exc:
            exc.filename = exc.filename or name
            raise syntax_error(exc, name, source) from None


class CompiledTemplate:
    """A template ready to render: its HTML, text and subject+preheader sandboxed templates.

    The MIME skeleton (boundary and part headers) is built once here too.
    """

    def __init__(
        self,
        *,
        name: str,
        renderer: Renderer,
        html: jinja2.Template,
        text: jinja2.Template,
        meta: jinja2.Template,
    ) -> None:
        """Hold the compiled parts; use :meth:`Renderer.compile` to build one."""
        self.name = name
        self._renderer = renderer
        self._html = html
        self._text = text
        self._meta = meta
        self.skeleton = Skeleton.for_template(name)

    def render(
        self,
        profile: Profile,
        *,
        sender: str,
        to: str,
        message_id: str,
        extra: Mapping[str, Any] | None = None,
        link_rewriter: Callable[[str], str] | None = None,
        open_pixel_url: str | None = None,
        list_unsubscribe: tuple[str, str] | None = None,
        date: datetime | None = None,
    ) -> RenderedEmail:
        """Render the message for one profile.

        Args:
            profile: The recipient's traits and segments.
            sender: The ``From`` address, display name allowed (``Shop <s@example.com>``).
            to: The ``To`` address.
            message_id: The ``Message-ID`` (angle brackets optional).
            extra: More template variables (``unsubscribe_url``, ``preferences_url``…);
                ``extra["date"]`` is the message date when ``date`` is not given.
            link_rewriter: Called with each http(s) link URL (HTML and text parts); returns
                the URL to use (e.g. a signed click-tracking URL).
            open_pixel_url: Adds a 1×1 image before ``</body>``.
            list_unsubscribe: (one-click HTTPS URL, ``mailto:`` URI), either may be empty.
            date: The ``Date`` header; required here or in ``extra``.

        Raises:
            TemplateRenderError: If this recipient's message cannot be built; ``reason``
                says why (``undefined``, ``security``, ``limit`` or ``error``).
        """
        when = date if date is not None else (extra or {}).get("date")
        if not isinstance(when, datetime):
            raise TemplateRenderError("no message date: pass date= (or extra['date'])")
        limits = self._renderer.limits
        budget = Budget(
            time.monotonic() + limits.max_render_seconds,
            limits.max_output_bytes,
            rewriter=link_rewriter,
        )
        token = BUDGET.set(budget)
        try:
            variables = self._renderer.context.build(profile, extra, budget)
            subject, preheader, html, text = self._render_parts(variables, budget, open_pixel_url)
        except TemplateRenderError:
            raise
        except jinja2.exceptions.SecurityError as exc:
            raise TemplateSecurityError(str(exc), template=self.name) from None
        except jinja2.exceptions.UndefinedError as exc:
            raise TemplateUndefinedError(str(exc), template=self.name) from None
        except Exception as exc:  # a template is code: any failure fails this recipient only
            raise TemplateRenderError(f"{type(exc).__name__}: {exc}", template=self.name) from None
        finally:
            BUDGET.reset(token)
        headers = b"".join(
            (
                address_header("From", sender),
                address_header("To", to),
                text_header("Subject", subject),
                date_header(when),
                message_id_header(message_id),
                list_unsubscribe_headers(list_unsubscribe) if list_unsubscribe else b"",
            )
        )
        return RenderedEmail(subject, preheader, html, text, headers, self.skeleton)

    def _render_parts(
        self, variables: dict[str, Any], budget: Budget, pixel: str | None
    ) -> tuple[str, str, str, str]:
        subject, _, preheader = _run(self._meta, variables, budget).partition(_META_SEP)
        subject = " ".join(subject.split())
        preheader = " ".join(preheader.split())
        variables["subject"] = subject
        variables["preheader"] = preheader
        variables["__segmint_preheader"] = _wrap(_PREHEADER, preheader)
        variables["__segmint_pixel"] = _wrap(_PIXEL, pixel)
        html = _run(self._html, variables, budget)
        text = _run(self._text, variables, budget)
        text = _tidy(text)
        return subject, preheader, html, text


def _wrap(around: tuple[str, str], value: str | None) -> Markup | str:
    """Return ``value`` escaped between the two HTML halves of ``around`` (or "")."""
    return Markup(around[0] + str(escape(value)) + around[1]) if value else ""  # noqa: S704


def _tidy(text: str) -> str:
    """Strip trailing spaces and keep at most one blank line between paragraphs."""
    if " \n" in text or "\t\n" in text:
        text = "\n".join([line.rstrip() for line in text.split("\n")])
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    if text[:1].isspace() or text[-1:] != "\n" or text[-2:-1].isspace():
        return text.strip() + "\n"
    return text


def _run(template: jinja2.Template, variables: dict[str, Any], budget: Budget) -> str:
    """Render ``template`` chunk by chunk, enforcing the output limit.

    Time is charged where work can repeat (loops, calls); output without either is
    bounded by the template's size.
    """
    out: list[str] = []
    append = out.append
    size = 0
    limit = budget.max_output
    # A bare Context: ``Template.new_context`` would copy the globals' keys (a ChainMap
    # walk) for ``{% import %}`` exports, which a root template never makes.
    context = template.environment.context_class(
        template.environment, variables, template.name, template.blocks
    )
    for chunk in template.root_render_func(context):
        size += len(chunk)
        if size > limit:
            raise TemplateLimitError(f"output larger than the {limit:,}-character limit")
        append(chunk)
    budget.charge()
    return "".join(out)
