"""Errors of the rule language, each pointing at the offending text.

::

    SegmintError
    └── RuleError                        position (offset, line, column) + caret excerpt
        ├── RuleSyntaxError (ValueError)   the text does not parse, or uses a refused construct
        ├── RuleTypeError   (TypeError)    a type mismatch or a wrong number of arguments
        ├── RuleNameError   (LookupError)  an unknown trait, segment or function
        └── RuleCycleError                 in_segment or derived traits that refer to themselves
"""

from __future__ import annotations

from dataclasses import dataclass

from segmint.errors import SegmintError, SourceLocation, caret_excerpt


@dataclass(frozen=True)
class Span:
    """Where a node came from: the whole source text and the node's character range."""

    text: str
    start: int
    end: int

    @property
    def line(self) -> int:
        """The 1-based line of the start."""
        return self.text.count("\n", 0, self.start) + 1

    @property
    def column(self) -> int:
        """The 1-based column of the start."""
        return self.start - (self.text.rfind("\n", 0, self.start) + 1) + 1

    def location(self, file: str | None = None) -> SourceLocation:
        """The start as a :class:`SourceLocation` (the length is clipped to the line)."""
        line_end = self.text.find("\n", self.start)
        stop = self.end if line_end < 0 else min(self.end, line_end)
        return SourceLocation(file, self.line, self.column, max(stop - self.start, 1))


class RuleError(SegmintError):
    """A problem in a rule, located by :attr:`span` when the rule came from text.

    Attributes:
        message: What is wrong, without the position.
        span: The offending text range, or None.
        hint: A suggestion such as "did you mean 'orders'?".
    """

    def __init__(self, message: str, span: Span | None = None, hint: str | None = None) -> None:
        self.message = message
        self.span = span
        self.hint = hint
        super().__init__(self._headline())

    @property
    def offset(self) -> int | None:
        """The 0-based character offset of the problem in the rule text."""
        return None if self.span is None else self.span.start

    @property
    def line(self) -> int | None:
        """The 1-based line of the problem."""
        return None if self.span is None else self.span.line

    @property
    def column(self) -> int | None:
        """The 1-based column of the problem."""
        return None if self.span is None else self.span.column

    def _headline(self) -> str:
        where = f"{self.span.line}:{self.span.column}: " if self.span else ""
        hint = f"; {self.hint}" if self.hint else ""
        return f"{where}{self.message}{hint}"

    def detailed_message(self) -> str:
        """Return the message, the rule line and a caret under the offending text."""
        if self.span is None:
            return str(self)
        where = f"{self.span.line}:{self.span.column}: "
        excerpt = caret_excerpt(self.span.text, self.span.location(), self.hint)
        return f"{where}{self.message}\n{excerpt}"


class RuleSyntaxError(RuleError, ValueError):
    """The text does not parse, or uses a construct outside the rule language."""


class RuleTypeError(RuleError, TypeError):
    """Operands of the wrong type, or a function called with the wrong arguments."""


class RuleNameError(RuleError, LookupError):
    """An unknown trait, segment, function or argument name."""


class RuleCycleError(RuleError):
    """Segments (through in_segment) or derived traits that depend on themselves."""
