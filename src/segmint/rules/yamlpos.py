"""Map a position inside a YAML scalar's *value* back to a line and column of the file.

A rule written in ``segmint.yaml`` is a YAML scalar: plain, ``'single'`` or ``"double"``
quoted, or a ``|`` block. Quotes and escapes shift columns; this undoes that so a rule error
points at the exact character in the file. Folded (``>``) and multi-line flow scalars fall
back to the start of the value.
"""

from __future__ import annotations

from segmint.errors import SourceLocation

_ESCAPE_WIDTH = {"x": 4, "u": 6, "U": 10}


def locate_in_scalar(
    source: str, start: SourceLocation, offset: int, length: int
) -> SourceLocation:
    """The file location of character ``offset`` of the scalar value starting at ``start``.

    Args:
        source: The whole YAML text.
        start: Where the scalar starts in the file (its opening quote or block indicator).
        offset: The 0-based offset into the scalar's value.
        length: The length of the span to point at.
    """
    lines = source.splitlines()
    if not 0 < start.line <= len(lines):
        return start
    line = lines[start.line - 1]
    col = start.column - 1
    indicator = line[col : col + 1]
    if indicator in ("|",):
        return _in_block(lines, start, offset, length)
    if indicator == ">":
        return start
    if indicator in ("'", '"'):
        raw_offsets = _quoted_offsets(line[col + 1 :], indicator)
        base = col + 1
    else:
        raw_offsets = list(range(len(line) - col + 1))
        base = col
    if raw_offsets is None or offset >= len(raw_offsets):
        return start
    column = base + raw_offsets[offset] + 1
    return SourceLocation(start.file, start.line, column, length)


def _quoted_offsets(raw: str, quote: str) -> list[int] | None:
    """Value index → raw index for a quoted scalar on one line; None if it spans lines."""
    out: list[int] = []
    index = 0
    while index < len(raw):
        char = raw[index]
        if char == quote:
            if quote == "'" and raw[index + 1 : index + 2] == "'":
                out.append(index)
                index += 2
                continue
            out.append(index)  # the closing quote: the end of the value
            return out
        out.append(index)
        if quote == '"' and char == "\\":
            index += _ESCAPE_WIDTH.get(raw[index + 1 : index + 2], 2)
        else:
            index += 1
    return None


def _in_block(lines: list[str], start: SourceLocation, offset: int, length: int) -> SourceLocation:
    body = lines[start.line :]
    indent = next((len(b) - len(b.lstrip(" ")) for b in body if b.strip()), 0)
    remaining = offset
    for number, text in enumerate(body):
        content = text[indent:]
        if remaining <= len(content):
            return SourceLocation(
                start.file, start.line + 1 + number, indent + remaining + 1, length
            )
        remaining -= len(content) + 1
    return start
