"""The text parser: recursive descent over :mod:`segmint.rules.lexer` tokens.

Grammar, loosest binding first::

    rule       := or
    or         := and ("or" and)*
    and        := not ("and" not)*
    not        := "not" not | predicate
    predicate  := sum [ cmp sum | "is" ["not"] "null" | ["not"] "in" "(" sum, … ")"
                      | ["not"] "in" unary | ["not"] "between" sum "and" sum
                      | ["not"] ("like" | "ilike") sum ]
    sum        := product (("+" | "-") product)*
    product    := unary (("*" | "/") unary)*
    unary      := "-" unary | primary
    primary    := number | string | true | false | null | interval 'd' | timestamp 'iso'
                | name | "quoted name" | function "(" args ")" | "(" rule ")"

Anything else (subqueries, unknown functions, ``;``) is refused at its position.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime
from typing import Any

from segmint.clock import parse_instant
from segmint.common import did_you_mean
from segmint.rules import functions
from segmint.rules.ast import (
    And,
    Arithmetic,
    Between,
    Compare,
    Expr,
    InList,
    IsNull,
    Like,
    ListContains,
    Literal,
    Not,
    Or,
    TraitRef,
)
from segmint.rules.errors import RuleError, RuleNameError, RuleSyntaxError, Span
from segmint.rules.lexer import Token, raw_offsets, tokenize

_COMPARE = ("=", "!=", "<", "<=", ">", ">=")
_REFUSED = {
    "select": "subqueries are not part of the rule language",
    "exists": "subqueries are not part of the rule language",
    "case": "CASE expressions are not part of the rule language",
    "cast": "casts are not part of the rule language",
    "insert": "statements are not part of the rule language",
    "update": "statements are not part of the rule language",
    "delete": "statements are not part of the rule language",
    "drop": "statements are not part of the rule language",
}


def parse(text: str) -> Expr:
    """Parse a rule from its text form.

    Args:
        text: The rule, e.g. ``"orders > 3 and within(last_purchase_at, '30 days')"``.

    Returns:
        The AST; every node carries the span of text it came from.

    Raises:
        RuleSyntaxError: With the position of the first problem.
        RuleNameError: For an unknown function or argument name.
        RuleTypeError: For a function called with the wrong arguments.
    """
    return Parser(text).parse_all()


class Parser:
    """One parse of one text; call :meth:`parse_all`."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.index = 0

    # -- token helpers -------------------------------------------------------------------
    @property
    def peek(self) -> Token:
        """The current token."""
        return self.tokens[self.index]

    def advance(self) -> Token:
        """Consume and return the current token."""
        token = self.tokens[self.index]
        self.index = min(self.index + 1, len(self.tokens) - 1)
        return token

    def span(self, start: int, end: int | None = None) -> Span:
        """A span from ``start`` to ``end`` (default: the end of the last consumed token)."""
        stop = self.tokens[self.index - 1].end if end is None else end
        return Span(self.text, start, max(stop, start))

    def error(self, message: str, token: Token, hint: str | None = None) -> RuleSyntaxError:
        """A syntax error located at ``token``."""
        end = token.end if token.end > token.start else token.start + 1
        return RuleSyntaxError(message, Span(self.text, token.start, end), hint)

    def expect_op(self, op: str, what: str) -> Token:
        """Consume the operator ``op`` or fail naming ``what`` was expected."""
        token = self.peek
        if token.kind != "op" or token.value != op:
            raise self.error(f"expected {what}, found {describe(token)}", token)
        return self.advance()

    def accept_word(self, *words: str) -> Token | None:
        """Consume and return the current token if it is one of ``words``."""
        if self.peek.is_word(*words):
            return self.advance()
        return None

    # -- grammar -------------------------------------------------------------------------
    def parse_all(self) -> Expr:
        """Parse the whole text as one rule."""
        if self.peek.kind == "eof":
            raise self.error("empty rule", self.peek)
        expr = self.parse_or()
        token = self.peek
        if token.kind != "eof":
            hint = "join conditions with 'and' or 'or'" if token.kind != "op" else None
            raise self.error(f"unexpected {describe(token)}", token, hint)
        return expr

    def parse_or(self) -> Expr:
        """``and ("or" and)*``."""
        return self._chain("or", self.parse_and, Or)

    def parse_and(self) -> Expr:
        """``not ("and" not)*``."""
        return self._chain("and", self.parse_not, And)

    def _chain(self, word: str, sub: Callable[[], Expr], node: type[And] | type[Or]) -> Expr:
        start = self.peek.start
        operands = [sub()]
        while self.accept_word(word):
            operands.append(sub())
        if len(operands) == 1:
            return operands[0]
        return node(tuple(operands), span=self.span(start))

    def parse_not(self) -> Expr:
        """``"not" not | predicate``."""
        start = self.peek.start
        if self.accept_word("not"):
            return Not(self.parse_not(), span=self.span(start))
        return self.parse_predicate()

    def parse_predicate(self) -> Expr:
        """A sum, optionally followed by one comparison or test."""
        start = self.peek.start
        left = self.parse_sum()
        token = self.peek
        if token.kind == "op" and token.value in _COMPARE:
            self.advance()
            node: Expr = Compare(token.value, left, self.parse_sum(), span=self.span(start))  # type: ignore[arg-type]
            if self.peek.kind == "op" and self.peek.value in _COMPARE:
                raise self.error("comparisons do not chain", self.peek, "join them with 'and'")
            return node
        if self.accept_word("is"):
            negated = self.accept_word("not") is not None
            if not self.accept_word("null"):
                raise self.error(f"expected 'null', found {describe(self.peek)}", self.peek)
            return IsNull(left, negated, span=self.span(start))
        negated = self.peek.is_word("not") and self.tokens[self.index + 1].is_word(
            "in", "between", "like", "ilike"
        )
        if negated:
            self.advance()
        return self._negatable(left, start, negated)

    def _negatable(self, left: Expr, start: int, negated: bool) -> Expr:
        if self.accept_word("in"):
            if self.peek.kind == "op" and self.peek.value == "(":
                return InList(left, self._items(), negated, span=self.span(start))
            return ListContains(left, self.parse_unary(), negated, span=self.span(start))
        if self.accept_word("between"):
            low = self.parse_sum()
            if not self.accept_word("and"):
                raise self.error(
                    f"expected 'and' in between, found {describe(self.peek)}", self.peek
                )
            high = self.parse_sum()
            return Between(left, low, high, negated, span=self.span(start))
        word = self.accept_word("like", "ilike")
        if word is not None:
            pattern = self.parse_sum()
            ci = word.value.lower() == "ilike"
            return Like(left, pattern, ci, negated, span=self.span(start))
        return left

    def _items(self) -> tuple[Expr, ...]:
        self.expect_op("(", "'('")
        if self.peek.is_word("select"):
            raise self.error(_REFUSED["select"], self.peek, "list the values: x in ('a', 'b')")
        items = [self.parse_sum()]
        while self.peek.kind == "op" and self.peek.value == ",":
            self.advance()
            items.append(self.parse_sum())
        self.expect_op(")", "',' or ')'")
        return tuple(items)

    def parse_sum(self) -> Expr:
        """``product (("+" | "-") product)*``."""
        return self._binary(("+", "-"), self.parse_product)

    def parse_product(self) -> Expr:
        """``unary (("*" | "/") unary)*``."""
        return self._binary(("*", "/"), self.parse_unary)

    def _binary(self, ops: tuple[str, ...], sub: Callable[[], Expr]) -> Expr:
        start = self.peek.start
        left = sub()
        while self.peek.kind == "op" and self.peek.value in ops:
            op = self.advance().value
            left = Arithmetic(op, left, sub(), span=self.span(start))  # type: ignore[arg-type]
        return left

    def parse_unary(self) -> Expr:
        """``"-" unary | primary``; a minus before a number makes a negative literal."""
        start = self.peek.start
        if self.peek.kind == "op" and self.peek.value == "-":
            self.advance()
            operand = self.parse_unary()
            if isinstance(operand, Literal) and _is_number(operand.value):
                return Literal(-operand.value, span=self.span(start))  # type: ignore[operator]
            return Arithmetic("-", Literal(0), operand, span=self.span(start))
        return self.parse_primary()

    def parse_primary(self) -> Expr:
        """A literal, a name, a function call or a parenthesised rule."""
        token = self.peek
        if token.kind == "number":
            self.advance()
            return Literal(_number(token.value), span=self.span(token.start))
        if token.kind == "string":
            self.advance()
            return Literal(token.value, span=self.span(token.start))
        if token.kind == "quoted":
            self.advance()
            return TraitRef(token.value, span=self.span(token.start))
        if token.kind == "op" and token.value == "(":
            self.advance()
            if self.peek.is_word("select"):
                raise self.error(_REFUSED["select"], self.peek)
            inner = self.parse_or()
            self.expect_op(")", "')'")
            return inner
        if token.kind == "ident":
            return self._word(token)
        raise self.error(f"expected a value, found {describe(token)}", token)

    def _word(self, token: Token) -> Expr:
        word = token.value.lower()
        nxt = self.tokens[self.index + 1]
        if word in _REFUSED and not (nxt.kind == "op" and nxt.value in _COMPARE):
            raise self.error(_REFUSED[word], token)
        self.advance()
        if word in ("true", "false"):
            return Literal(word == "true", span=self.span(token.start))
        if word == "null":
            return Literal(None, span=self.span(token.start))
        if word in ("interval", "timestamp") and self.peek.kind == "string":
            return self._typed_string(word, token)
        if self.peek.kind == "op" and self.peek.value == "(":
            return self._call(token)
        if word in ("and", "or", "not", "in", "is", "between", "like", "ilike"):
            raise self.error(f"expected a value, found keyword '{word}'", token)
        return TraitRef(token.value, span=self.span(token.start))

    def _typed_string(self, word: str, token: Token) -> Expr:
        string = self.advance()
        span = self.span(token.start)
        if word == "interval":
            return functions.interval_node(
                string.value, span, Span(self.text, string.start, string.end)
            )
        try:
            value: datetime = parse_instant(string.value)
        except ValueError:
            raise RuleSyntaxError(
                f"cannot read timestamp {string.value!r}",
                Span(self.text, string.start, string.end),
                "write ISO 8601, e.g. '2024-05-01T00:00:00Z'",
            ) from None
        return Literal(value, span=span)

    def _call(self, name: Token) -> Expr:
        if name.value.lower() not in functions.SIGNATURES:
            hint = did_you_mean(name.value.lower(), functions.SIGNATURES)
            known = "functions are: " + ", ".join(sorted(functions.SIGNATURES))
            raise RuleNameError(
                f"unknown function '{name.value}'",
                Span(self.text, name.start, name.end),
                hint or known,
            )
        self.expect_op("(", "'('")
        args: list[functions.Argument] = []
        while not (self.peek.kind == "op" and self.peek.value == ")"):
            if args:
                self.expect_op(",", "',' or ')'")
            args.append(self._argument())
        self.advance()
        call = functions.Call(name.value.lower(), tuple(args), self.span(name.start), name)
        return functions.build(call, self.text, parse_embedded)

    def _argument(self) -> functions.Argument:
        start = self.peek.start
        label: Token | None = None
        nxt = self.tokens[self.index + 1]
        if self.peek.kind == "ident" and nxt.kind == "op" and nxt.value == "=>":
            label = self.advance()
            self.advance()
        value_token = self.peek
        value = self.parse_or()
        return functions.Argument(label, value, value_token, self.span(start))


def parse_embedded(text: str, token: Token) -> Expr:
    """Parse the rule inside the string ``token`` of ``text``, keeping outer positions."""
    raw = text[token.start + 1 : token.end - 1]
    offsets = raw_offsets(raw)
    base = token.start + 1

    def move(span: Span | None) -> Span | None:
        if span is None:
            return None
        start = base + offsets[min(span.start, len(offsets) - 1)]
        end = base + offsets[min(span.end, len(offsets) - 1)]
        return Span(text, start, end)

    try:
        inner = parse(token.value)
    except RuleError as exc:
        raise type(exc)(exc.message, move(exc.span), exc.hint) from None
    return respan(inner, move)


def respan(node: Expr, move: Callable[[Span | None], Span | None]) -> Expr:
    """Rebuild ``node`` with every span passed through ``move``."""
    changes: dict[str, Any] = {"span": move(node.span)}
    for f in dataclasses.fields(node):
        value = getattr(node, f.name)
        if isinstance(value, Expr):
            changes[f.name] = respan(value, move)
        elif isinstance(value, tuple) and value and isinstance(value[0], Expr):
            changes[f.name] = tuple(respan(v, move) for v in value)
    return dataclasses.replace(node, **changes)


def describe(token: Token) -> str:
    """A short description of a token for error messages."""
    if token.kind == "eof":
        return "the end of the rule"
    if token.kind == "string":
        return f"string '{token.value}'"
    return f"'{token.value}'"


def _number(text: str) -> int | float:
    return float(text) if any(c in text for c in ".eE") else int(text)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
