r"""Compile-time HTML work: inline the CSS, and derive the plain-text template.

Both steps run once per template, on source whose Jinja tags are protected tokens (see
:mod:`segmint.personalize.source`), so no recipient pays for them. The plain-text template
is made *from the HTML template*: the tags come back untouched, so rendering it gives the
text of the rendered HTML, links written as ``text (url)``. Link URLs are wrapped in a
``{% filter segmint_link %}`` block (in both parts) that hands them to the render's link
rewriter: no scan of the output is needed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from html.parser import HTMLParser

import css_inline
from jinja2 import BaseLoader, Environment, FileSystemLoader

from segmint.personalize.errors import TemplateError
from segmint.personalize.source import CLOSE, OPEN, TOKEN_RE, protect, restore, wrap_text_tokens

LINK_FILTER = "segmint_link"
LINK_START, LINK_END = "{% filter " + LINK_FILTER + " %}", "{% endfilter %}"
_HREF = re.compile(r"""(\shref\s*=\s*)(?:"([^"]*)"|'([^']*)')""", re.I)
_STYLE_RE = re.compile(r"<style\b[^>]*>(.*?)</style>", re.S | re.I)
_SPACE_RE = re.compile(r"\s+")
_TOKEN_SPLIT = re.compile(f"({OPEN}\\d+{CLOSE})")
_BRACE_RE = re.compile(r"\{(?=[{%#])")
_BRACE = '{{ "{" }}'
_HIDDEN_RE = re.compile(r"display\s*:\s*none", re.I)
_PARAGRAPHS = {"p", "h1", "h2", "h3", "h4", "h5", "h6", "table", "blockquote", "pre", "ul", "ol"}
_LINES = {"div", "tr", "li", "section", "article", "header", "footer", "center", "dl", "dt"}
_SKIP = {"head", "style", "script", "title", "template"}
_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source"}


def inline_css(html: str, *, template: str) -> str:
    """Inline the ``<style>`` rules of ``html`` (with protected tags) into style attributes.

    ``@media`` and other at-rules stay in a ``<style>`` block so responsive layouts work.

    Raises:
        TemplateError: If a Jinja tag sits inside ``<style>``: CSS is fixed at compile time.
    """
    for match in _STYLE_RE.finditer(html):
        if OPEN in match.group(1):
            raise TemplateError(
                "template tags inside <style> are not supported: CSS is inlined once, "
                "at compile time; use a style attribute with a tag instead",
                template=template,
            )
    inliner = css_inline.CSSInliner(load_remote_stylesheets=False, keep_at_rules=True)
    try:
        result: str = inliner.inline(wrap_text_tokens(html))
    except css_inline.InlineError as exc:
        raise TemplateError(f"cannot inline the CSS: {exc}", template=template) from None
    return result


class _TextWriter(HTMLParser):
    """Turns HTML (with protected tokens) into text (with the same tokens)."""

    def __init__(self, table: list[str], template: bool = True, piece: bool = False) -> None:
        super().__init__(convert_charrefs=True)
        self.table = table
        self.template = template
        self.piece = piece  # a part of a document: keep its leading line breaks
        self.out: list[str] = []
        self.pending = 0
        self.skip: list[str] = []
        self.pre = 0
        self.links: list[str | None] = []
        self.at_line_start = True

    def _breaks(self, count: int) -> None:
        self.pending = max(self.pending, count)

    def _emit(self, text: str) -> None:
        if not text or (not self.pre and text.isspace() and (self.pending or self.at_line_start)):
            return
        if self.pending and (self.out or self.piece):
            self.out.append("\n" * self.pending)
            self.at_line_start = True
        self.pending = 0
        if self.at_line_start and not self.pre:
            text = text.lstrip(" ")
            if not text:
                return
        self.out.append(text)
        self.at_line_start = text.endswith("\n")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = dict(attrs)
        if self.skip:
            if tag == self.skip[-1] and tag not in _VOID:
                self.skip.append(tag)
            return
        if tag in _SKIP or _HIDDEN_RE.search(attr.get("style") or ""):
            if tag not in _VOID:
                self.skip.append(tag)
            return
        self._open(tag, attr)

    def _open(self, tag: str, attr: dict[str, str | None]) -> None:
        if tag in _PARAGRAPHS:
            self._breaks(2)
            self.pre += tag == "pre"
        elif tag in _LINES:
            self._breaks(1)
        if tag == "li":
            self._emit("- ")
        elif tag == "br":
            self.out.append("\n")
            self.at_line_start = True
        elif tag == "hr":
            self._breaks(2)
            self._emit("----------")
            self._breaks(2)
        elif tag in ("td", "th") and not self.at_line_start and self.out[-1][-1:] != " ":
            self._emit(" ")
        elif tag == "img" and attr.get("alt"):
            self._emit(self._text(attr["alt"] or ""))
        elif tag == "a":
            self.links.append(attr.get("href"))

    def handle_endtag(self, tag: str) -> None:
        if self.skip:
            if tag == self.skip[-1]:
                self.skip.pop()
            return
        if tag == "a" and self.links:
            href = self.links.pop()
            if href and not href.startswith("#"):
                self._emit(f" ({self._link(href)})")
        elif tag in _PARAGRAPHS:
            self.pre -= tag == "pre"
            self._breaks(2)
        elif tag in _LINES:
            self._breaks(1)

    def _text(self, data: str) -> str:
        text = data if self.pre else _SPACE_RE.sub(" ", data)
        return _BRACE_RE.sub(_BRACE, text) if self.template else text

    def _link(self, href: str) -> str:
        if not self.template:
            return href
        return f"{LINK_START}{_BRACE_RE.sub(_BRACE, href)}{LINK_END}"

    def handle_data(self, data: str) -> None:
        for piece in _TOKEN_SPLIT.split(data):
            match = TOKEN_RE.fullmatch(piece)
            if match:
                self._token(piece, int(match.group(1)))
            elif not self.skip:
                self._emit(self._text(piece))

    def handle_comment(self, data: str) -> None:
        match = TOKEN_RE.fullmatch(data)
        if match:
            self._token(data, int(match.group(1)))

    def _token(self, token: str, index: int) -> None:
        if self.table[index].startswith("{{"):
            if not self.skip:
                self._emit(token)
        else:
            # A statement is kept even in skipped parts (<head>, hidden elements): a
            # {% set %} or {% macro %} there serves the text too. Glued, so a false
            # branch leaves no gap.
            self.out.append(token)


def html_to_text_template(html: str, table: list[str], *, whole: bool = True) -> str:
    """Return the text template for ``html`` (tokens kept; restore them afterwards).

    ``whole`` trims the result to a document (no leading or trailing blank lines); a piece
    such as a macro body is returned as it comes, with its trailing line breaks.
    """
    writer = _TextWriter(table, piece=not whole)
    writer.feed(html)
    writer.close()
    text = "".join(writer.out)
    return text.strip() + "\n" if whole else text + "\n" * writer.pending


def text_template_source(html_source: str) -> str:
    """Return the text template of a whole HTML template source (tags kept as they are)."""
    table: list[str] = []
    protected = protect(html_source, table, lambda tag, text: False)
    return restore(html_to_text_template(protected, table, whole=False), table)


def wrap_links(html: str) -> str:
    """Wrap every quoted ``href`` value in the ``segmint_link`` filter block."""

    def wrap(m: re.Match[str]) -> str:
        quote = '"' if m[2] is not None else "'"
        value = m[2] if m[2] is not None else m[3]
        return f"{m[1]}{quote}{LINK_START}{value}{LINK_END}{quote}"

    return _HREF.sub(wrap, html)


def html_template_source(html_source: str) -> str:
    """Return an HTML template source with its links wrapped (tags kept as they are)."""
    table: list[str] = []
    protected = protect(html_source, table, lambda tag, text: False)
    return restore(wrap_links(protected), table)


class ConvertingLoader(BaseLoader):
    """Serves the files under ``templates/`` to a sandbox through a source conversion.

    What a compiled template imports or includes at render time (macro files, computed
    includes) goes through the same conversion as the template itself: the HTML sandbox gets
    its links wrapped (so they reach the link rewriter), the text sandbox gets the text of
    the file, not its HTML.
    """

    def __init__(self, files: FileSystemLoader, convert: Callable[[str], str]) -> None:
        self.files = files
        self.convert = convert

    def get_source(
        self, environment: Environment, template: str
    ) -> tuple[str, str | None, Callable[[], bool] | None]:
        """Load ``template`` and convert its source."""
        source, filename, uptodate = self.files.get_source(environment, template)
        return self.convert(source), filename, uptodate


def html_to_text(html: str) -> str:
    """Return the plain text of rendered ``html``, by the rules of the text template.

    Used to check the compiled text template against a direct conversion; a renderer
    never calls it per recipient.
    """
    writer = _TextWriter([], template=False)
    writer.feed(html)
    writer.close()
    return "".join(writer.out).strip() + "\n"
