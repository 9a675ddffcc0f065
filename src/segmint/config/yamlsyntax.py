"""Plain-words diagnoses of YAML syntax errors, at the line where the mistake is.

ruamel.yaml reports where its parser gave up, in parser words ("expected <block end>, but
found '<scalar>'"), and often lines after the mistake: an unclosed quote runs on to the next
quote in the file. :func:`diagnose` looks for the common mistakes at or before that point:
a duplicate key, a tab in the indentation, an unclosed quote or bracket, a colon in an
unquoted value, text after a quoted value, a missing space after a colon or a missing colon,
a line that lines up with no key. A suspected mistake is confirmed by repairing it in a copy
of the text and parsing again: it stands only if the repair gets the parser past the
original error (at most :data:`MAX_REPAIRS` tries). Anything else is left to the caller,
which reports the parser's own words where it stopped.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from ruamel.yaml import YAML
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError

_KEY = re.compile(
    r"^(?P<lead>\s*(?:-\s+)*)(?P<key>[^\s#'\"\[\]{},:-][^:#]*?|\"[^\"]*\"|'[^']*'):(?=\s|$)"
)
_NO_SPACE = re.compile(r"^(?P<lead>\s*(?:-\s+)*)(?P<key>[A-Za-z_][\w.-]*):(?P<value>[^\s:/].*)$")
_BLOCK_SCALAR = re.compile(r":\s*[|>][-+0-9]*\s*(#.*)?$")
_CLOSERS = {"[": "]", "{": "}"}
MAX_REPAIRS = 40  # parses of a repaired copy per error: bounds the time on a large file


@dataclass(frozen=True)
class Diagnosis:
    """One mistake found in the text.

    Attributes:
        message: What is wrong, in plain words.
        line: The 0-based line of the mistake.
        column: The 0-based column where it starts.
        length: How many characters to underline.
        hint: How to fix it.
    """

    message: str
    line: int
    column: int
    length: int = 1
    hint: str | None = None


def diagnose(exc: MarkedYAMLError, text: str) -> Diagnosis | None:
    """Name the mistake behind a YAML syntax error, or None when it is not a common one.

    Args:
        exc: The error ruamel.yaml raised for ``text``.
        text: The whole YAML text.

    Returns:
        The mistake with its own location (which may be lines before the parser's), or None.
    """
    mark = exc.problem_mark
    if mark is None:
        return None
    lines = text.split("\n")
    if isinstance(exc, DuplicateKeyError):
        return _duplicate(lines, mark.line, mark.column)
    if "'\\t'" in str(exc.problem):
        return Diagnosis(
            "a tab character in the indentation: YAML indents with spaces only",
            mark.line,
            mark.column,
            1,
            "replace the tab with spaces",
        )
    checks: tuple[Callable[[list[str], int], Iterator[tuple[Diagnosis, str]]], ...] = (
        _unclosed,
        _colon_in_value,
        _text_after_quote,
        _missing_space,
        _missing_colon,
        _indentation,
    )
    tries = 0
    for check in checks:
        for found, repaired in check(lines, mark.line):
            if _parses_past(lines, found.line, repaired, mark.line):
                return found
            tries += 1
            if tries >= MAX_REPAIRS:
                return None
    return None


def _parses_past(lines: list[str], index: int, repaired: str, failed_at: int) -> bool:
    """True if replacing line ``index`` by ``repaired`` gets the parser past ``failed_at``."""
    fixed = [*lines[:index], repaired, *lines[index + 1 :]]
    try:
        YAML(typ="rt").load("\n".join(fixed))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark
        return mark is not None and mark.line > failed_at
    return True


def _content(lines: list[str], upto: int, start: int = 0) -> Iterator[int]:
    """Indices of lines up to ``upto`` holding YAML content (no blanks, comments, block text)."""
    block_indent: int | None = None
    for index in range(start, min(upto + 1, len(lines))):
        line = lines[index]
        stripped = line.strip()
        indent = len(line) - len(line.lstrip(" "))
        if block_indent is not None:
            if not stripped or indent > block_indent:
                continue
            block_indent = None
        if not stripped or stripped.startswith("#"):
            continue
        if _BLOCK_SCALAR.search(line):
            block_indent = indent
        yield index


def _duplicate(lines: list[str], line: int, column: int) -> Diagnosis:
    text = lines[line][column:]
    key = text.split(":", 1)[0].strip().strip("\"'")
    first = next(
        (
            i
            for i in range(line - 1, -1, -1)
            if _indent(lines[i]) == column and _key_of(lines[i]) == key
        ),
        None,
    )
    path = _key_path(lines, line, column)
    where = f" in {path}" if path else ""
    already = f": it is already given on line {first + 1}" if first is not None else ""
    return Diagnosis(
        f"duplicate key '{key}'{where}{already}",
        line,
        column,
        len(key),
        "a key may appear once in a mapping: keep one of them (or rename one)",
    )


def _unclosed(lines: list[str], upto: int) -> Iterator[tuple[Diagnosis, str]]:
    for index in _content(lines, upto):
        line = lines[index]
        found = _open_at_end(line)
        if found is None:
            continue
        column, opener = found
        closer = _CLOSERS.get(opener, opener)
        if opener in _CLOSERS:
            kind = "list" if opener == "[" else "mapping"
            message = f"unclosed '{opener}': the {kind} that starts here has no closing '{closer}'"
            hint = f"end it with '{closer}' on this line"
        else:
            message = (
                f"unclosed quote: the value that starts here has no closing {closer}, "
                "so it runs on into the lines below"
            )
            hint = f"end the value with {closer}"
        length = len(line.rstrip()) - column
        yield Diagnosis(message, index, column, max(length, 1), hint), line.rstrip() + closer


def _open_at_end(line: str) -> tuple[int, str] | None:
    """The column and character of a quote or bracket left open at the end of ``line``."""
    stack: list[tuple[int, str]] = []
    index, previous = 0, ""
    while index < len(line):
        char = line[index]
        starts_value = previous in ("", ":", "-", "[", "{", ",", "?")
        if char in "\"'" and starts_value:
            end = _quote_end(line, index)
            if end is None:
                return index, char
            index, previous = end + 1, char
            continue
        if char == "#" and (index == 0 or line[index - 1] in " \t"):
            break
        if char in "[{" and starts_value:
            stack.append((index, char))
        elif char in "]}" and stack:
            stack.pop()
        if not char.isspace():
            previous = char if char in ":-[{,?" else "x"
        index += 1
    return stack[-1] if stack else None


def _quote_end(line: str, start: int) -> int | None:
    quote = line[start]
    index = start + 1
    while index < len(line):
        char = line[index]
        if quote == '"' and char == "\\":
            index += 2
            continue
        if char == quote:
            if quote == "'" and line[index + 1 : index + 2] == "'":
                index += 2
                continue
            return index
        index += 1
    return None


def _colon_in_value(lines: list[str], upto: int) -> Iterator[tuple[Diagnosis, str]]:
    if upto >= len(lines):
        return
    line = lines[upto]
    match = _KEY.match(line)
    if match is None:
        return
    start = match.end() + len(line[match.end() :]) - len(line[match.end() :].lstrip())
    value = _strip_comment(line[start:])
    if ": " not in value + " " or value[:1] in "\"'[{|>":
        return
    colon = start + (value.index(": ") if ": " in value else len(value) - 1)
    quoted = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    found = Diagnosis(
        "a mapping value is not allowed here: did you forget quotes around a value that "
        "contains ': '?",
        upto,
        colon,
        1,
        f"quote the value: {match.group('key')}: {quoted}",
    )
    yield found, line[:start] + quoted


def _missing_space(lines: list[str], upto: int) -> Iterator[tuple[Diagnosis, str]]:
    for index in _content(lines, upto):
        line = lines[index]
        match = _NO_SPACE.match(_strip_comment(line))
        if match is None:
            continue
        key, value = match.group("key"), match.group("value")
        column = match.start("key")
        found = Diagnosis(
            f"'{key}:{value}' has no space after the colon, so YAML reads it as text, "
            "not as a key and its value",
            index,
            column,
            len(key) + 1 + len(value),
            f"write '{key}: {value}'",
        )
        yield found, line[: match.end("key") + 1] + " " + line[match.end("key") + 1 :]


def _text_after_quote(lines: list[str], upto: int) -> Iterator[tuple[Diagnosis, str]]:
    """``key: "Our" best customers``: a quoted value ends where its closing quote is."""
    for index in _content(lines, upto):
        line = lines[index]
        match = _KEY.match(line)
        if match is None:
            continue
        start = match.end() + len(line[match.end() :]) - len(line[match.end() :].lstrip())
        if line[start : start + 1] not in ("'", '"'):
            continue
        end = _quote_end(line, start)
        value = _strip_comment(line[start:])
        if end is None or end + 1 >= start + len(value):
            continue
        quoted = "'" + value.replace("'", "''") + "'"
        after = len(line[: start + len(value)]) - len(line[end + 1 : start + len(value)].lstrip())
        found = Diagnosis(
            f"text after the closing quote: the quoted value ends at column {end + 1}",
            index,
            after,
            start + len(value) - after,
            f"quote the whole value: {match.group('key')}: {quoted}",
        )
        yield found, line[:start] + quoted


def _missing_colon(lines: list[str], upto: int) -> Iterator[tuple[Diagnosis, str]]:
    """A line of a mapping that is neither ``key: value`` nor ``key:``."""
    for index in _content(lines, upto):
        line = lines[index]
        stripped = _strip_comment(line).strip()
        if _KEY.match(line) or stripped.startswith(("-", "[", "{", '"', "'", "?")):
            continue
        word, _, rest = stripped.partition(" ")
        fixed = f"{word}: {rest.strip()}" if rest.strip() else f"{word}:"
        found = Diagnosis(
            f"'{stripped}' is not a 'key: value' pair: is the ':' missing?",
            index,
            _indent(line),
            len(stripped),
            f"write '{fixed}'",
        )
        yield found, " " * _indent(line) + fixed


def _indentation(lines: list[str], upto: int) -> Iterator[tuple[Diagnosis, str]]:
    """Lines that line up with no key above them (or a block's odd first line)."""
    content = list(_content(lines, upto))
    unit = _unit(lines, content)
    levels: list[int] = []
    odd: list[tuple[int, int]] = []  # (line, expected indent) of blocks' odd first lines
    for position, index in enumerate(content):
        line, indent = lines[index], _indent(lines[index])
        if position and _is_child(lines[content[position - 1]], line):
            parent = _key_column(lines[content[position - 1]])
            if indent not in (parent, parent + unit):
                odd.append((index, parent + unit))
            levels.append(indent)
            _push_item(levels, line, indent)
            continue
        before = list(levels)
        while levels and levels[-1] > indent:
            levels.pop()
        if not levels or levels[-1] == indent:
            levels[len(levels) :] = [] if levels else [indent]
            _push_item(levels, line, indent)
            continue
        yield from _misaligned(lines, content, position, before, odd)
        levels.append(indent)


def _is_child(previous: str, line: str) -> bool:
    """True if ``line`` opens the block that ``previous`` (a ``key:`` line) announces."""
    if not _opens(previous):
        return False
    parent, indent = _key_column(previous), _indent(line)
    return indent > parent or (indent == parent and line.lstrip(" ").startswith("-"))


def _misaligned(
    lines: list[str],
    content: list[int],
    position: int,
    levels: list[int],
    odd: list[tuple[int, int]],
) -> Iterator[tuple[Diagnosis, str]]:
    index = content[position]
    indent = _indent(lines[index])
    following = next(_content(lines, len(lines), start=index + 1), None)
    for first, expected in reversed(odd):
        if expected != indent:
            continue
        found = Diagnosis(
            f"bad indentation: this line is indented {_spaces(_indent(lines[first]))}, but "
            f"line {index + 1}, in the same mapping, is indented {indent}: "
            "the keys of one mapping must line up",
            first,
            0,
            max(_indent(lines[first]), 1),
            f"indent it {_spaces(indent)}",
        )
        yield found, " " * indent + lines[first].lstrip(" ")
    candidates = [level for level in levels if level != indent]
    if _opens(lines[index]) and following is not None:
        candidates = [c for c in candidates if c < _indent(lines[following])] or candidates
    if not candidates:
        return
    best = min(candidates, key=lambda c: (abs(c - indent), -c))
    found = Diagnosis(
        f"bad indentation: this line is indented {_spaces(indent)}, which lines up with no key "
        f"above it",
        index,
        0,
        max(indent, 1),
        f"indent it {_spaces(best)}, like the keys of the block it belongs to",
    )
    yield found, " " * best + lines[index].lstrip(" ")


def _push_item(levels: list[int], line: str, indent: int) -> None:
    """A ``- key: value`` item opens a mapping two columns in."""
    stripped = line.lstrip(" ")
    if stripped.startswith("- ") and _KEY.match(stripped[2:]):
        levels.append(indent + 2)


def _unit(lines: list[str], content: list[int]) -> int:
    steps: Counter[int] = Counter()
    for before, after in zip(content, content[1:], strict=False):
        step = _indent(lines[after]) - _key_column(lines[before])
        if _opens(lines[before]) and step > 0:
            steps[step] += 1
    return steps.most_common(1)[0][0] if steps else 2


def _opens(line: str) -> bool:
    """True for ``key:`` (or ``- key:``) with nothing after the colon: a block follows."""
    return _strip_comment(line).rstrip().endswith(":") and _KEY.match(line) is not None


def _key_column(line: str) -> int:
    match = _KEY.match(line)
    return len(match.group("lead")) if match else _indent(line)


def _key_of(line: str) -> str | None:
    match = _KEY.match(line)
    return match.group("key").strip().strip("\"'") if match else None


def _key_path(lines: list[str], line: int, column: int) -> str:
    """The dotted path of the mapping holding the key at (``line``, ``column``)."""
    parts: list[str] = []
    for index in range(line - 1, -1, -1):
        text = lines[index]
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        key_column = _key_column(text)
        key = _key_of(text)
        if key is not None and key_column < column:
            parts.append(key)
            column = key_column
    return ".".join(reversed(parts))


def _spaces(count: int) -> str:
    return "1 space" if count == 1 else f"{count} spaces"


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _strip_comment(text: str) -> str:
    match = re.search(r"\s#", text)
    return (text[: match.start()] if match else text).rstrip()
