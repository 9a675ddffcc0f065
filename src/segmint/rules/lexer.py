"""The tokenizer of the rule language: every token knows its exact character range."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal as L

from segmint.rules.errors import RuleSyntaxError, Span

TokenKind = L["number", "string", "ident", "quoted", "op", "eof"]
_OPERATORS = ("=>", "<=", ">=", "!=", "<>", "=", "<", ">", "+", "-", "*", "/", "(", ")", ",")


@dataclass(frozen=True)
class Token:
    """One token: its kind, its value (unescaped for strings) and where it is."""

    kind: TokenKind
    value: str
    start: int
    end: int

    def is_word(self, *words: str) -> bool:
        """True if this is an unquoted identifier equal (ignoring case) to one of ``words``."""
        return self.kind == "ident" and self.value.lower() in words


def tokenize(text: str) -> list[Token]:
    """Split ``text`` into tokens, ending with an ``eof`` token.

    Raises:
        RuleSyntaxError: At an unterminated string or a character the language does not use.
    """
    tokens: list[Token] = []
    pos = 0
    while True:
        pos = _skip_space(text, pos)
        if pos >= len(text):
            tokens.append(Token("eof", "", pos, pos))
            return tokens
        token = _next(text, pos)
        tokens.append(token)
        pos = token.end


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text):
        if text[pos].isspace():
            pos += 1
        elif text.startswith("--", pos):
            end = text.find("\n", pos)
            pos = len(text) if end < 0 else end
        else:
            break
    return pos


def _next(text: str, pos: int) -> Token:
    char = text[pos]
    if char.isdigit() or (char == "." and text[pos + 1 : pos + 2].isdigit()):
        return _number(text, pos)
    if char == "'":
        return _quoted(text, pos, "'", "string")
    if char == '"':
        return _quoted(text, pos, '"', "quoted")
    if char.isalpha() or char == "_":
        end = pos + 1
        while end < len(text) and (text[end].isalnum() or text[end] == "_"):
            end += 1
        return Token("ident", text[pos:end], pos, end)
    for op in _OPERATORS:
        if text.startswith(op, pos):
            return Token("op", "!=" if op == "<>" else op, pos, pos + len(op))
    hint = "end a rule without ';'" if char == ";" else None
    raise RuleSyntaxError(f"unexpected character {char!r}", Span(text, pos, pos + 1), hint)


def _number(text: str, pos: int) -> Token:
    end = pos
    while end < len(text) and text[end].isdigit():
        end += 1
    if text[end : end + 1] == "." and text[end + 1 : end + 2].isdigit():
        end += 1
        while end < len(text) and text[end].isdigit():
            end += 1
    if text[end : end + 1] in ("e", "E"):
        probe = end + 1 + (text[end + 1 : end + 2] in ("+", "-"))
        if text[probe : probe + 1].isdigit():
            end = probe
            while end < len(text) and text[end].isdigit():
                end += 1
    if end < len(text) and (text[end].isalpha() or text[end] == "_"):
        raise RuleSyntaxError("a number runs into a name", Span(text, pos, end + 1))
    return Token("number", text[pos:end], pos, end)


def _quoted(text: str, pos: int, quote: str, kind: TokenKind) -> Token:
    out: list[str] = []
    index = pos + 1
    while index < len(text):
        if text[index] == quote:
            if text[index + 1 : index + 2] == quote:
                out.append(quote)
                index += 2
                continue
            return Token(kind, "".join(out), pos, index + 1)
        out.append(text[index])
        index += 1
    what = "string" if quote == "'" else "quoted name"
    raise RuleSyntaxError(
        f"unterminated {what}", Span(text, pos, len(text)), f"close it with {quote}"
    )


def raw_offsets(raw: str, quote: str = "'") -> list[int]:
    """Map each character index of an unescaped string to its index in ``raw``.

    One extra entry maps the end, so positions inside an embedded rule point at the outer text.
    """
    out: list[int] = []
    index = 0
    while index < len(raw):
        out.append(index)
        index += 2 if raw[index] == quote and raw[index + 1 : index + 2] == quote else 1
    out.append(len(raw))
    return out
