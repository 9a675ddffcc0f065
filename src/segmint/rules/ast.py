"""The rule AST: small frozen, hashable dataclasses; ``str(node)`` is canonical source text.

Every node carries an optional :class:`~segmint.rules.errors.Span` (where it was parsed
from) that takes no part in equality, hashing or the JSON form, so ``parse(str(e)) == e``.
Canonical text uses lower-case keywords and the fewest parentheses that keep the tree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import ClassVar
from typing import Literal as L

from segmint.common import format_duration
from segmint.rules.errors import Span

LiteralValue = str | int | float | bool | datetime | None
CompareOp = L["=", "!=", "<", "<=", ">", ">="]
ArithOp = L["+", "-", "*", "/"]
MatchFunc = L["contains", "starts_with", "ends_with"]

KEYWORDS = frozenset(
    {"and", "or", "not", "in", "is", "null", "between", "like", "ilike", "true", "false"}
    | {"interval", "timestamp", "select", "exists", "case", "cast"}
    | {"insert", "update", "delete", "drop"}
)
NOT_NAMES = frozenset(
    {"and", "or", "not", "in", "is", "between", "like", "ilike", "true", "false", "null"}
)
"""The keywords a rule never reads as a trait: operators and the literals true, false, null."""
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# Binding strength, loosest first; a child binding looser than its slot is parenthesised.
OR, AND, NOT, PREDICATE, ADD, MUL, PRIMARY = 1, 2, 3, 4, 5, 6, 9


@dataclass(frozen=True)
class Expr:
    """Base of every node."""

    span: Span | None = field(default=None, compare=False, repr=False, kw_only=True)
    precedence: ClassVar[int] = PRIMARY


def quote_string(value: str) -> str:
    """Quote ``value`` as a rule string literal (single quotes, doubled inside)."""
    return "'" + value.replace("'", "''") + "'"


def quote_ident(name: str) -> str:
    """Write a trait name, double-quoting it when it is not a plain identifier."""
    if _IDENT.match(name) and name.lower() not in KEYWORDS:
        return name
    return '"' + name.replace('"', '""') + '"'


def wrap(node: Expr, minimum: int) -> str:
    """Render ``node``, parenthesised if it binds looser than ``minimum``."""
    text = str(node)
    return f"({text})" if node.precedence < minimum else text


def format_instant(value: datetime) -> str:
    """Canonical text of an instant: ISO 8601 in UTC with a ``Z``."""
    utc = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    return utc.isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Literal(Expr):
    """A constant: string, number, boolean, instant (``timestamp '…'``) or NULL."""

    value: LiteralValue

    def __eq__(self, other: object) -> bool:
        # True == 1 in Python, but a boolean literal is not a number literal.
        if not isinstance(other, Literal):
            return NotImplemented
        return type(self.value) is type(other.value) and self.value == other.value

    def __hash__(self) -> int:
        return hash((type(self.value).__name__, self.value))

    def __str__(self) -> str:
        value = self.value
        if value is None:
            return "null"
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, str):
            return quote_string(value)
        if isinstance(value, datetime):
            return f"timestamp '{format_instant(value)}'"
        return repr(value)


@dataclass(frozen=True)
class TraitRef(Expr):
    """A reference to a profile trait (or, in a ``where`` filter, an event property)."""

    name: str

    def __str__(self) -> str:
        return quote_ident(self.name)


@dataclass(frozen=True)
class Now(Expr):
    """``now()``: the evaluation instant ``as_of``."""

    def __str__(self) -> str:
        return "now()"


@dataclass(frozen=True)
class Interval(Expr):
    """``interval '30 days'``: a fixed duration (no months or years)."""

    duration: timedelta

    def __str__(self) -> str:
        return f"interval '{format_duration(self.duration)}'"


@dataclass(frozen=True)
class Arithmetic(Expr):
    """``left op right`` on numbers, or a timestamp plus or minus an interval."""

    op: ArithOp
    left: Expr
    right: Expr

    @property
    def precedence(self) -> int:  # type: ignore[override]
        """Multiplication binds tighter than addition."""
        return MUL if self.op in "*/" else ADD

    def __str__(self) -> str:
        own = self.precedence
        return f"{wrap(self.left, own)} {self.op} {wrap(self.right, own + 1)}"


@dataclass(frozen=True)
class And(Expr):
    """All operands true (SQL ``AND``)."""

    operands: tuple[Expr, ...]
    precedence: ClassVar[int] = AND

    def __str__(self) -> str:
        return " and ".join(wrap(o, AND + 1) for o in self.operands)


@dataclass(frozen=True)
class Or(Expr):
    """Any operand true (SQL ``OR``)."""

    operands: tuple[Expr, ...]
    precedence: ClassVar[int] = OR

    def __str__(self) -> str:
        return " or ".join(wrap(o, OR + 1) for o in self.operands)


@dataclass(frozen=True)
class Not(Expr):
    """Negation (SQL ``NOT``): NULL stays NULL."""

    operand: Expr
    precedence: ClassVar[int] = NOT

    def __str__(self) -> str:
        return f"not {wrap(self.operand, NOT)}"


@dataclass(frozen=True)
class Compare(Expr):
    """``left op right`` with op one of ``= != < <= > >=``."""

    op: CompareOp
    left: Expr
    right: Expr
    precedence: ClassVar[int] = PREDICATE

    def __str__(self) -> str:
        return f"{wrap(self.left, ADD)} {self.op} {wrap(self.right, ADD)}"


@dataclass(frozen=True)
class InList(Expr):
    """``operand [not] in (item, …)``."""

    operand: Expr
    items: tuple[Expr, ...]
    negated: bool = False
    precedence: ClassVar[int] = PREDICATE

    def __str__(self) -> str:
        items = ", ".join(str(i) for i in self.items)
        neg = "not " if self.negated else ""
        return f"{wrap(self.operand, ADD)} {neg}in ({items})"


@dataclass(frozen=True)
class ListContains(Expr):
    """``item [not] in list_trait``: membership of a value in a list-valued trait."""

    item: Expr
    container: Expr
    negated: bool = False
    precedence: ClassVar[int] = PREDICATE

    def __str__(self) -> str:
        neg = "not " if self.negated else ""
        return f"{wrap(self.item, ADD)} {neg}in {wrap(self.container, PRIMARY)}"


@dataclass(frozen=True)
class Between(Expr):
    """``operand [not] between low and high`` (both ends included)."""

    operand: Expr
    low: Expr
    high: Expr
    negated: bool = False
    precedence: ClassVar[int] = PREDICATE

    def __str__(self) -> str:
        neg = "not " if self.negated else ""
        bounds = f"{wrap(self.low, ADD)} and {wrap(self.high, ADD)}"
        return f"{wrap(self.operand, ADD)} {neg}between {bounds}"


@dataclass(frozen=True)
class IsNull(Expr):
    """``operand is [not] null``: the only test that is never NULL itself."""

    operand: Expr
    negated: bool = False
    precedence: ClassVar[int] = PREDICATE

    def __str__(self) -> str:
        return f"{wrap(self.operand, ADD)} is {'not ' if self.negated else ''}null"


@dataclass(frozen=True)
class Like(Expr):
    r"""``operand [not] like|ilike pattern``: ``%`` any run, ``_`` one character, ``\\`` escapes."""

    operand: Expr
    pattern: Expr
    case_insensitive: bool = False
    negated: bool = False
    precedence: ClassVar[int] = PREDICATE

    def __str__(self) -> str:
        neg = "not " if self.negated else ""
        word = "ilike" if self.case_insensitive else "like"
        return f"{wrap(self.operand, ADD)} {neg}{word} {wrap(self.pattern, ADD)}"


@dataclass(frozen=True)
class StringMatch(Expr):
    """``contains|starts_with|ends_with(operand, needle)``; ``i``-prefixed ignore case."""

    func: MatchFunc
    operand: Expr
    needle: Expr
    case_insensitive: bool = False

    def __str__(self) -> str:
        name = ("i" if self.case_insensitive else "") + self.func
        return f"{name}({self.operand}, {self.needle})"


@dataclass(frozen=True)
class Within(Expr):
    """``within(ts, '30 days')``: ``now() - duration <= ts <= now()``."""

    operand: Expr
    duration: timedelta

    def __str__(self) -> str:
        return f"within({self.operand}, '{format_duration(self.duration)}')"


@dataclass(frozen=True)
class DaysSince(Expr):
    """``days_since(ts)``: fractional days from ``ts`` to ``now()``, ``(now - ts) / 86400 s``."""

    operand: Expr

    def __str__(self) -> str:
        return f"days_since({self.operand})"


@dataclass(frozen=True)
class Performed(Expr):
    """``performed('E', at_least => n, within => 'd', where => 'filter')``.

    True when the profile has at least ``at_least`` events named ``event`` that pass
    ``where`` (over the event's properties) in the last ``within`` (all time if None).
    """

    event: str
    at_least: int = 1
    within: timedelta | None = None
    where: Expr | None = None

    def __str__(self) -> str:
        args = [quote_string(self.event)]
        if self.at_least != 1:
            args.append(f"at_least => {self.at_least}")
        if self.within is not None:
            args.append(f"within => '{format_duration(self.within)}'")
        if self.where is not None:
            args.append(f"where => {quote_string(str(self.where))}")
        return f"performed({', '.join(args)})"


@dataclass(frozen=True)
class LastPerformed(Expr):
    """``last_performed('E')``: the timestamp of the latest event ``E`` (NULL if none)."""

    event: str

    def __str__(self) -> str:
        return f"last_performed({quote_string(self.event)})"


@dataclass(frozen=True)
class InSegment(Expr):
    """``in_segment('vip')``: current membership of another segment (never NULL)."""

    segment: str

    def __str__(self) -> str:
        return f"in_segment({quote_string(self.segment)})"


NODE_TYPES: tuple[type[Expr], ...] = (
    Literal, TraitRef, Now, Interval, Arithmetic, And, Or, Not, Compare, InList,
    ListContains, Between, IsNull, Like, StringMatch, Within, DaysSince, Performed,
    LastPerformed, InSegment,
)  # fmt: skip


def children(node: Expr) -> tuple[Expr, ...]:
    """The direct sub-expressions of ``node`` (a ``where`` filter is not one: it is events')."""
    match node:
        case And(operands=ops) | Or(operands=ops):
            return ops
        case Not(operand=o) | DaysSince(operand=o) | Within(operand=o) | IsNull(operand=o):
            return (o,)
        case Arithmetic(left=a, right=b) | Compare(left=a, right=b):
            return (a, b)
        case InList(operand=o, items=items):
            return (o, *items)
        case ListContains(item=a, container=b) | Like(operand=a, pattern=b):
            return (a, b)
        case StringMatch(operand=a, needle=b):
            return (a, b)
        case Between(operand=o, low=lo, high=hi):
            return (o, lo, hi)
    return ()


def walk(node: Expr) -> list[Expr]:
    """All nodes of the tree, parents before children (``where`` filters excluded)."""
    out = [node]
    for child in children(node):
        out.extend(walk(child))
    return out
