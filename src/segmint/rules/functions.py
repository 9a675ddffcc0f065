"""The functions of the rule language: their signatures, and building nodes from calls."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from segmint.common import did_you_mean, parse_duration
from segmint.rules.ast import (
    DaysSince,
    Expr,
    InSegment,
    Interval,
    LastPerformed,
    Literal,
    Now,
    Performed,
    StringMatch,
    Within,
)
from segmint.rules.errors import RuleNameError, RuleSyntaxError, RuleTypeError, Span
from segmint.rules.lexer import Token

SIGNATURES: dict[str, str] = {
    "now": "now()",
    "within": "within(timestamp, 'duration')",
    "days_since": "days_since(timestamp)",
    "contains": "contains(text, 'part')",
    "starts_with": "starts_with(text, 'prefix')",
    "ends_with": "ends_with(text, 'suffix')",
    "icontains": "icontains(text, 'part')",
    "istarts_with": "istarts_with(text, 'prefix')",
    "iends_with": "iends_with(text, 'suffix')",
    "performed": (
        "performed('Event', at_least => 1, within => '30 days', where => 'property > 1')"
    ),
    "last_performed": "last_performed('Event')",
    "in_segment": "in_segment('segment')",
}
_NAMED = {"performed": ("at_least", "within", "where")}
EmbeddedParser = Callable[[str, Token], Expr]


@dataclass(frozen=True)
class Argument:
    """One argument of a call: an optional ``name =>`` label, the value and its first token."""

    label: Token | None
    value: Expr
    token: Token
    span: Span


@dataclass(frozen=True)
class Call:
    """A parsed call, before it becomes a node."""

    name: str
    args: tuple[Argument, ...]
    span: Span
    name_token: Token


def interval_node(text: str, span: Span, string_span: Span) -> Interval:
    """Build ``interval 'text'``, refusing durations that are not a whole number of seconds."""
    return Interval(_duration(text, string_span), span=span)


def _duration(text: str, span: Span) -> timedelta:
    try:
        value = parse_duration(text)
    except ValueError as exc:
        raise RuleSyntaxError(str(exc), span) from None
    if value.microseconds or value <= timedelta(0):
        raise RuleSyntaxError("a duration is a positive whole number of seconds", span)
    return value


def build(call: Call, text: str, embedded: EmbeddedParser) -> Expr:
    """Turn a call into its node, checking the arguments' number, names and literal kinds."""
    positional = [a for a in call.args if a.label is None]
    named = {a.label.value.lower(): a for a in call.args if a.label is not None}
    _check_names(call, named)
    if call.name == "performed":
        return _performed(call, positional, named, text, embedded)
    _arity(call, positional, _ARITY[call.name])
    span = call.span
    if call.name == "now":
        return Now(span=span)
    if call.name == "days_since":
        return DaysSince(positional[0].value, span=span)
    if call.name == "within":
        duration = _duration(_string(call, positional[1]), positional[1].span)
        return Within(positional[0].value, duration, span=span)
    if call.name == "last_performed":
        return LastPerformed(_string(call, positional[0]), span=span)
    if call.name == "in_segment":
        return InSegment(_string(call, positional[0]), span=span)
    ci = call.name.startswith("i")
    func = call.name[1:] if ci else call.name
    a, b = positional[0].value, positional[1].value
    return StringMatch(func, a, b, ci, span=span)  # type: ignore[arg-type]


_ARITY = {
    "now": 0, "within": 2, "days_since": 1, "last_performed": 1, "in_segment": 1,
    "contains": 2, "starts_with": 2, "ends_with": 2,
    "icontains": 2, "istarts_with": 2, "iends_with": 2,
}  # fmt: skip


def _check_names(call: Call, named: dict[str, Argument]) -> None:
    allowed = _NAMED.get(call.name, ())
    for name, arg in named.items():
        if name not in allowed:
            assert arg.label is not None
            where = Span(call.span.text, arg.label.start, arg.label.end)
            hint = did_you_mean(name, allowed) or f"usage: {SIGNATURES[call.name]}"
            raise RuleNameError(f"{call.name}() has no argument '{name}'", where, hint)


def _arity(call: Call, positional: list[Argument], wanted: int) -> None:
    if len(positional) != wanted:
        noun = "argument" if wanted == 1 else "arguments"
        raise RuleTypeError(
            f"{call.name}() takes {wanted} {noun}, got {len(positional)}",
            call.span,
            f"usage: {SIGNATURES[call.name]}",
        )


def _string(call: Call, arg: Argument) -> str:
    if not isinstance(arg.value, Literal) or not isinstance(arg.value.value, str):
        raise RuleTypeError(
            f"{call.name}() expects a quoted string here",
            arg.span,
            f"usage: {SIGNATURES[call.name]}",
        )
    return arg.value.value


def _performed(
    call: Call,
    positional: list[Argument],
    named: dict[str, Argument],
    text: str,
    embedded: EmbeddedParser,
) -> Performed:
    _arity(call, positional, 1)
    event = _string(call, positional[0])
    at_least = 1
    if "at_least" in named:
        at_least = _count(call, named["at_least"])
    within = None
    if "within" in named:
        within = _duration(_string(call, named["within"]), named["within"].span)
    where = None
    if "where" in named:
        _string(call, named["where"])
        where = embedded(text, named["where"].token)
    return Performed(event, at_least, within, where, span=call.span)


def _count(call: Call, arg: Argument) -> int:
    value = arg.value.value if isinstance(arg.value, Literal) else None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise RuleTypeError(
            f"{call.name}() at_least is a whole number of events (0 or more)", arg.span
        )
    return value
