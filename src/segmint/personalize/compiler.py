"""Compile a template once: flatten its layouts, inline its CSS, derive its text part.

The steps, all on source whose Jinja tags are protected tokens:

1. **Flatten.** Each file in the chain (the template, what it extends and includes) is
   syntax-checked, then loaded with every tag protected except ``extends``, ``include``
   (of a quoted name), ``block``/``endblock`` and ``super()``. Rendering that with plain
   Jinja resolves the inheritance and leaves one document with the other tags as tokens.
   The ``subject`` and ``preheader`` blocks are taken out the same way, and render nothing
   in the body (a layout can show ``{{ subject }}``).
2. **Inline CSS** with css-inline on the flattened document, macro and block-``set``
   definitions hoisted into single tokens first (:mod:`segmint.personalize.definitions`).
3. **Text template** from the inlined HTML (see :mod:`segmint.personalize.htmltext`).
4. **Restore** the tags, add the preheader and open-pixel slots, wrap link URLs in the
   ``segmint_link`` filter (see :func:`segmint.personalize.sandbox.link`).

Known differences from rendering the files directly: ``include ... without context`` sees
the context; ``{% set %}`` outside blocks in a child template is dropped, as Jinja drops
its output. CSS is inlined into what the template's own HTML holds: the output of macros
and of files imported or included by a computed name is not CSS-inlined (their links are
still rewritten, and the text part gets their text).
"""

from __future__ import annotations

import html as htmllib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import jinja2
from jinja2 import BaseLoader, Environment, FileSystemLoader
from jinja2.sandbox import ImmutableSandboxedEnvironment

from segmint.common import did_you_mean_file
from segmint.errors import SourceLocation
from segmint.personalize import source as src
from segmint.personalize.definitions import hoist_definitions
from segmint.personalize.errors import TemplateError, TemplateNotFound, TemplateSyntaxError
from segmint.personalize.htmltext import html_to_text_template, inline_css, wrap_links

META_BLOCKS = ("subject", "preheader")
PREHEADER_SLOT = "{{ __segmint_preheader }}"
PIXEL_SLOT = "{{ __segmint_pixel }}"
_SUPER = re.compile(r"\{\{-?\s*super\(\)\s*-?\}\}$")
_BODY_OPEN = re.compile(r"<body\b[^>]*>", re.I)
_BODY_CLOSE = re.compile(r"</body\s*>", re.I)


@dataclass(frozen=True)
class FlatSources:
    """The compiled template's sources, tags restored, ready for the sandbox."""

    html: str
    text: str
    subject: str | None
    preheader: str | None


def _keep(tag: src.Tag, text: str) -> bool:
    """Which tags the flattening render executes (the others are protected)."""
    if tag.kind == "statement" and tag.keyword in ("block", "endblock"):
        return True
    if tag.kind == "statement" and tag.keyword in ("extends", "include"):
        return src.is_literal_reference(text)
    return tag.kind == "expression" and _SUPER.match(text) is not None


def syntax_error(exc: jinja2.TemplateSyntaxError, name: str, text: str) -> TemplateSyntaxError:
    """Convert Jinja's syntax error into ours, with line, column and caret."""
    line = exc.lineno or 1
    column = src.syntax_error_column(text, line, exc.message or "")
    loc = SourceLocation(f"templates/{exc.name or name}", line, column)
    return TemplateSyntaxError(
        exc.message or "syntax error", template=name, location=loc, source=text
    )


class _ProtectingLoader(BaseLoader):
    """Loads files from ``templates/``, checked, with all but structural tags protected."""

    def __init__(
        self, files: FileSystemLoader, checker: Environment, table: list[str], max_bytes: int
    ) -> None:
        self.files = files
        self.checker = checker
        self.table = table
        self.max_bytes = max_bytes

    def get_source(
        self, environment: Environment, template: str
    ) -> tuple[str, str | None, Callable[[], bool] | None]:
        text, filename, uptodate = load_checked(self.files, self.checker, template, self.max_bytes)
        for tag in src.scan(text):
            raw = tag.text(text)
            if tag.keyword == "extends" and not src.is_literal_reference(raw):
                raise TemplateError(
                    'extends needs the layout\'s name in quotes, e.g. {% extends "layout.html" %}',
                    template=template,
                )
        return src.protect(text, self.table, _keep), filename, uptodate


def load_checked(
    files: FileSystemLoader, checker: Environment, name: str, max_bytes: int
) -> tuple[str, str | None, Callable[[], bool] | None]:
    """Load a template file, enforcing the size limit and checking its syntax.

    Raises:
        TemplateNotFound: If there is no such file.
        TemplateError: If the file is larger than ``max_bytes``.
        TemplateSyntaxError: If the file is not valid Jinja.
    """
    try:
        text, filename, uptodate = files.get_source(checker, name)
    except jinja2.TemplateNotFound:
        hint = did_you_mean_file(name, files.list_templates())
        raise TemplateNotFound(
            f"no template named {name!r} in templates/" + (f"; {hint}" if hint else ""),
            template=name,
        ) from None
    except UnicodeDecodeError as exc:
        raise TemplateError(f"not UTF-8 text: {exc.reason}", template=name) from None
    if len(text.encode("utf-8")) > max_bytes:
        raise TemplateError(f"template is larger than the {max_bytes:,}-byte limit", template=name)
    try:
        checker.parse(text, name, filename)
    except jinja2.TemplateSyntaxError as exc:
        raise syntax_error(exc, name, text) from None
    return text, filename, uptodate


def _empty_block(_context: Any) -> Iterator[str]:
    return iter(())


def flatten(
    files: FileSystemLoader, checker: Environment, name: str, max_bytes: int
) -> FlatSources:
    """Run the four compile steps of the module docstring for template ``name``.

    Raises:
        TemplateError: If the template cannot be loaded, parsed, flattened or inlined.
    """
    table: list[str] = []
    # Sandboxed too: it should only ever see structural tags, but if a tag ever slipped
    # past the scanner it must not run with full Python access.
    marker = ImmutableSandboxedEnvironment(  # noqa: S701 (structural tags only, no HTML)
        loader=_ProtectingLoader(files, checker, table, max_bytes),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    try:
        root = marker.get_template(name)
        body_ctx = root.new_context({})
        for block in META_BLOCKS:
            body_ctx.blocks[block] = [_empty_block]
        body = "".join(root.root_render_func(body_ctx))
        meta_ctx = root.new_context({})
        for _ in root.root_render_func(meta_ctx):
            pass
        meta = {b: _block_source(meta_ctx, b) for b in META_BLOCKS}
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateSyntaxError(exc.message or "syntax error", template=name) from None
    except jinja2.TemplateError as exc:
        raise TemplateError(f"cannot assemble the template: {exc}", template=name) from None
    body, text_table = hoist_definitions(body, table)
    inlined = inline_css(body, template=name)
    text = src.restore(html_to_text_template(inlined, table), text_table)
    marked = wrap_links(inlined)
    html = src.restore_inlined(_add_slots(marked), table)
    return FlatSources(
        html=html,
        text=text,
        subject=_meta_source(meta["subject"], table),
        preheader=_meta_source(meta["preheader"], table),
    )


def _block_source(context: Any, block: str) -> str | None:
    funcs = context.blocks.get(block)
    return "".join(funcs[0](context)) if funcs else None


def _meta_source(text: str | None, table: list[str]) -> str | None:
    """Subject and preheader are text: unescape entities in the static parts."""
    if text is None:
        return None
    return src.restore(htmllib.unescape(text), table)


def _add_slots(html: str) -> str:
    """Add the hidden-preheader slot after ``<body>`` and the pixel slot before ``</body>``."""
    opened = _BODY_OPEN.search(html)
    if opened:
        html = html[: opened.end()] + PREHEADER_SLOT + html[opened.end() :]
    else:
        html = PREHEADER_SLOT + html
    closes = list(_BODY_CLOSE.finditer(html))
    if closes:
        at = closes[-1].start()
        return html[:at] + PIXEL_SLOT + html[at:]
    return html + PIXEL_SLOT
