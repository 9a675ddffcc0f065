"""Hoist definitions out of the HTML before it is parsed as HTML.

A ``{% macro %}`` or a block ``{% set %}`` defines something and outputs nothing where it
stands, but its body is HTML. Placed in ``<head>`` or before ``<html>``, that body would
make an HTML parser restructure the document (text in ``<head>`` opens the body). So, in
the flattened source, each definition (from its opening tag to its matching closing tag)
becomes one protected token: the HTML template gets the definition back unchanged, the
text template gets its text version. Output of macros is therefore not CSS-inlined.
"""

from __future__ import annotations

import re

from segmint.personalize.htmltext import html_to_text_template, wrap_links
from segmint.personalize.source import CLOSE, OPEN, TOKEN_RE, restore

_KEYWORD = re.compile(r"\{%[-+]?\s*(\w+)(.*?)[-+]?%\}$", re.S)


def _step(tag: str) -> int:
    """+1 for a tag that opens a definition, -1 for one that closes it, else 0."""
    match = _KEYWORD.match(tag)
    if match is None:
        return 0
    word, rest = match.group(1), match.group(2)
    if word == "macro" or (word == "set" and "=" not in rest.split("|", 1)[0]):
        return 1
    return -1 if word in ("endmacro", "endset") else 0


def hoist_definitions(body: str, table: list[str]) -> tuple[str, list[str]]:
    """Replace each top-level definition in ``body`` by one token.

    Returns the new body and the table for the text template (the same as ``table``, which
    grows by one entry per definition, except that those entries hold text versions).
    Links inside a definition are wrapped for the link rewriter in both versions.
    """
    text_table = list(table)
    out: list[str] = []
    depth, pos, opened, body_start = 0, 0, 0, 0
    for match in TOKEN_RE.finditer(body):
        step = _step(table[int(match.group(1))])
        if step > 0 and depth == 0:
            out.append(body[pos : match.start()])
            opened, body_start = match.start(), match.end()
        depth = max(depth + step, 0)
        if step < 0 and depth == 0:
            inner = body[body_start : match.start()]
            head, tail = body[opened:body_start], match.group()
            out.append(f"{OPEN}{len(table)}{CLOSE}")
            text = html_to_text_template(inner, table, whole=False)
            table.append(restore(head + wrap_links(inner) + tail, table))
            text_table.append(restore(head + text + tail, table))
            pos = match.end()
    out.append(body[pos:])
    return "".join(out), text_table
