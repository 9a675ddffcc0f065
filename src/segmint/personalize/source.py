r"""Template source surgery: find Jinja tags in text and swap them for opaque tokens.

Compile-time steps (flattening layouts, inlining CSS, deriving the plain-text template)
must treat Jinja tags as opaque. :func:`protect` replaces each tag (except the ones a step
must execute) with a token ``\ue000N\ue001`` made of private-use characters, which neither
Jinja nor an HTML parser gives any meaning to; :func:`restore` puts the original tags back.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

OPEN = "\ue000"
CLOSE = "\ue001"
TOKEN_RE = re.compile(f"{OPEN}(\\d+){CLOSE}")
# A token as css-inline may hand it back: wrapped in a comment (escaped inside <title>),
# or as an attribute name with an empty value appended.
_INLINED_TOKEN_RE = re.compile(
    f'(?:<!--|&lt;!--){OPEN}(\\d+){CLOSE}(?:-->|--&gt;)|{OPEN}(\\d+){CLOSE}(?:="")?'
)
_OPENERS = re.compile(r"\{\{|\{%|\{#")
_RAW_START = re.compile(r"\{%-?\s*raw\s*-?%\}")
_RAW_END = re.compile(r"\{%-?\s*endraw\s*-?%\}")
_KEYWORD = re.compile(r"[{][%{]-?\s*([A-Za-z_][A-Za-z0-9_]*)")
_LITERAL_REF = re.compile(
    r"\{%-?\s*(?:extends|include)\s+(?:\"[^\"]*\"|'[^']*')"
    r"(?:\s+ignore\s+missing)?(?:\s+(?:with|without)\s+context)?\s*-?%\}$"
)


@dataclass(frozen=True)
class Tag:
    """One Jinja tag in a source text.

    Attributes:
        start: Offset of the tag's first character.
        end: Offset just past its last character.
        kind: ``statement`` (``{% %}``), ``expression`` (``{{ }}``), ``comment`` or ``raw``.
        keyword: The first name inside the tag (``if``, ``block``, ``super``…), if any.
    """

    start: int
    end: int
    kind: str
    keyword: str | None

    def text(self, source: str) -> str:
        """Return the tag's text in ``source``."""
        return source[self.start : self.end]


def _tag_end(source: str, pos: int, closer: str) -> int:
    """Return the offset past ``closer``, skipping quoted strings; -1 if never closed."""
    quote: str | None = None
    i = pos
    while i < len(source):
        ch = source[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif source.startswith(closer, i):
            return i + len(closer)
        i += 1
    return -1


def scan(source: str) -> Iterator[Tag]:
    """Yield the Jinja tags of ``source`` in order (an unclosed tag ends the scan)."""
    pos = 0
    while (match := _OPENERS.search(source, pos)) is not None:
        start = match.start()
        raw = _RAW_START.match(source, start)
        if raw:
            end_match = _RAW_END.search(source, raw.end())
            end = end_match.end() if end_match else len(source)
            yield Tag(start, end, "raw", "raw")
            pos = end
            continue
        opener = match.group()
        closer = {"{{": "}}", "{%": "%}", "{#": "#}"}[opener]
        if opener == "{#":
            found = source.find(closer, start + 2)
            # Jinja's lexer takes a ``{#`` that ends the source as an empty comment.
            at_eof = len(source) if start + 2 == len(source) else -1
            end = found + 2 if found >= 0 else at_eof
        else:
            end = _tag_end(source, start + 2, closer)
        if end < 0:
            return
        kind = {"{{": "expression", "{%": "statement", "{#": "comment"}[opener]
        word = _KEYWORD.match(source, start) if kind != "comment" else None
        yield Tag(start, end, kind, word.group(1) if word else None)
        pos = end


def is_literal_reference(text: str) -> bool:
    """Whether an ``extends``/``include`` tag names its template with a string literal."""
    return _LITERAL_REF.match(text) is not None


def protect(source: str, table: list[str], keep: Callable[[Tag, str], bool]) -> str:
    """Replace every tag for which ``keep`` is false by a token indexing ``table``."""
    out: list[str] = []
    pos = 0
    for tag in scan(source):
        text = tag.text(source)
        out.append(source[pos : tag.start])
        if keep(tag, text):
            out.append(text)
        else:
            out.append(f"{OPEN}{len(table)}{CLOSE}")
            table.append(text)
        pos = tag.end
    out.append(source[pos:])
    return "".join(out)


def restore(text: str, table: list[str]) -> str:
    """Put back the tags that :func:`protect` replaced."""
    return TOKEN_RE.sub(lambda m: table[int(m.group(1))], text)


def restore_inlined(text: str, table: list[str]) -> str:
    """Put back tags after css-inline re-serialised the document (see module docs)."""
    return _INLINED_TOKEN_RE.sub(lambda m: table[int(m.group(1) or m.group(2))], text)


def wrap_text_tokens(html: str) -> str:
    """Wrap tokens that sit between HTML tags in comments.

    An HTML parser moves stray text out of a ``<table>`` ("foster parenting"); a comment
    stays where it is. Tokens inside a tag (attribute values or names) stay bare.
    """
    out: list[str] = []
    for piece in re.split(r"(<!--.*?-->|<[^>]*>)", html, flags=re.S):
        if piece.startswith("<"):
            out.append(piece)
        else:
            out.append(TOKEN_RE.sub(lambda m: f"<!--{m.group()}-->", piece))
    return "".join(out)


_QUOTED = re.compile(r"'([^']+)'")


def syntax_error_column(source: str, line: int, message: str) -> int:
    """Guess the 1-based column of a syntax error Jinja reported only by line.

    Jinja names the offending token in quotes ("unknown tag 'endfro'"); point at it on the
    line, else at the line's last tag opener, else at the first non-blank character.
    """
    lines = source.splitlines() or [""]
    text = lines[min(max(line, 1), len(lines)) - 1]
    for word in _QUOTED.findall(message):
        at = text.find(word)
        if at >= 0:
            return at + 1
    openers = [m.start() for m in _OPENERS.finditer(text)]
    if openers:
        return openers[-1] + 1
    return len(text) - len(text.lstrip()) + 1
