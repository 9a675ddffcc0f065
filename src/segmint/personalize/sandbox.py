"""The Jinja2 sandbox that marketer-written templates run in.

:class:`Sandbox` is an :class:`~jinja2.sandbox.ImmutableSandboxedEnvironment` made stricter:

- any access to an unsafe attribute (``__class__``, ``_TemplateReference__context``,
  ``__globals__``, ``mro``…) raises at once instead of yielding a silent empty value;
- a name the workspace does not know (``config``, ``request``…) raises when used, while a
  known trait that is missing for this profile renders empty (and ``default`` applies);
- only ``range`` and ``namespace`` are global; ``cycler``, ``joiner``, ``lipsum`` and
  ``dict`` are gone;
- ``*``, ``**``, ``%``, ``str.format``, the padding methods (``center``, ``ljust``…) and
  the filters ``center``, ``indent``, ``format`` and ``slice`` are checked so a template
  cannot build a huge string or number.

Render time is bounded without threads or signals: a :class:`Budget` (kept in a context
variable) is charged on every sandboxed call, every ``*``/``**``/``%`` and every loop
iteration (each ``for`` loop's iterable is wrapped at parse time), and the clock is read
every 64 charges. Output written without a loop or a call is bounded by the template's
size, so it needs no charge.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from html import unescape as html_unescape
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Undefined, nodes
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import missing
from markupsafe import Markup, escape

from segmint.common import did_you_mean
from segmint.personalize.errors import TemplateLimitError

ITER_NAME = "__segmint_iter"
_WIDE_FORMAT = re.compile(r"\d{6,}|%[-#0 +]*\*")
_NESTED_SPEC = re.compile(r"\{[^{}]*:[^{}]*\{")
_PADDING = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs"})
_MAX_SLICES = 10_000
_UTC = ZoneInfo("UTC")


@dataclass
class Budget:
    """One render's state: its deadline and output allowance, time zone and link rewriter."""

    deadline: float
    max_output: int
    tz: ZoneInfo = _UTC
    rewriter: Callable[[str], str] | None = None
    ticks: int = field(default=0)
    links: dict[str, str] = field(default_factory=dict)

    def rewrite(self, url: str) -> str:
        """Return the rewritten http(s) ``url`` (once per distinct URL); others unchanged."""
        if self.rewriter is None or not url[:8].lower().startswith(("http://", "https://")):
            return url
        found = self.links.get(url)
        if found is None:
            found = self.links[url] = self.rewriter(url)
        return found

    def charge(self) -> None:
        """Count one unit of work; every 64 units, check the deadline."""
        self.ticks += 1
        if not self.ticks & 63 and time.monotonic() > self.deadline:
            raise TemplateLimitError("render time limit exceeded")


BUDGET: ContextVar[Budget | None] = ContextVar("segmint_template_budget", default=None)


def charge() -> None:
    """Charge the current render's budget, if a render is running."""
    budget = BUDGET.get()
    if budget is not None:
        budget.charge()


def link(value: Any) -> Any:
    """The ``segmint_link`` filter wrapped around every link URL at compile time.

    Hands the URL to the current render's link rewriter. In HTML the value is escaped
    markup: it is unescaped for the rewriter and the result escaped again.
    """
    budget = BUDGET.get()
    if budget is None or budget.rewriter is None:
        return value
    if isinstance(value, Markup):
        return escape(budget.rewrite(html_unescape(str(value)).strip()))
    return budget.rewrite(str(value).strip())


def budget_iter(iterable: Iterable[Any]) -> Iterator[Any]:
    """Iterate ``iterable``, charging the budget for each item (wraps every ``for``)."""
    budget = BUDGET.get()
    if budget is None:
        yield from iterable
        return
    for item in iterable:
        budget.charge()
        yield item


def make_undefined(known: frozenset[str]) -> type[Undefined]:
    """Return an Undefined class that is lenient for ``known`` names and strict otherwise."""

    class WorkspaceUndefined(Undefined):
        __slots__ = ()

        def _check(self) -> None:
            name = self._undefined_name
            if self._undefined_obj is missing and name is not None and name not in known:
                hint = did_you_mean(name, known)
                suffix = f"; {hint}" if hint else ""
                raise UndefinedError(f"unknown variable {name!r}{suffix}")

        def _fail_with_undefined_error(self, *args: Any, **kwargs: Any) -> Any:
            self._check()
            return super()._fail_with_undefined_error(*args, **kwargs)

        def __str__(self) -> str:
            self._check()
            return ""

        def __iter__(self) -> Iterator[Any]:
            self._check()
            return iter(())

        def __bool__(self) -> bool:
            self._check()
            return False

        def __len__(self) -> int:
            self._check()
            return 0

    # Undefined aliases its operators to the base method; point them at the override.
    for attr, value in vars(Undefined).items():
        if value is Undefined._fail_with_undefined_error:
            setattr(WorkspaceUndefined, attr, WorkspaceUndefined._fail_with_undefined_error)
    return WorkspaceUndefined


def _check_size(value: Any, limit: int) -> None:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > limit:
        raise TemplateLimitError(f"number {value} is too large for a template argument")


def bounded_filters(
    filters: dict[str, Callable[..., Any]], limit: int
) -> dict[str, Callable[..., Any]]:
    """Guard the built-in filters whose arguments size their output or their work.

    ``center`` and ``indent`` take a width, ``slice`` a count, ``format`` a format string
    (whose ``*`` widths come from the arguments): each is refused up front when too large.
    """

    def guard(func: Callable[..., Any], bound: int | None) -> Callable[..., Any]:
        def guarded(value: Any, *args: Any, **kwargs: Any) -> Any:
            if bound is None:
                if isinstance(value, str) and _WIDE_FORMAT.search(value):
                    raise TemplateLimitError("format width too large")
            else:
                for arg in (*args, *kwargs.values()):
                    _check_size(arg, bound)
            return func(value, *args, **kwargs)

        return guarded

    return {
        "center": guard(filters["center"], limit),
        "indent": guard(filters["indent"], limit),
        "format": guard(filters["format"], None),
        "slice": guard(filters["slice"], _MAX_SLICES),
    }


class Sandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox with the extra checks described in the module docstring."""

    intercepted_binops = frozenset({"*", "**", "%"})
    max_size = 1_000_000

    def unsafe_undefined(self, obj: Any, attribute: str) -> Undefined:
        """Refuse an unsafe attribute at once, with a clear message."""
        raise SecurityError(
            f"access to attribute {attribute!r} of a {type(obj).__name__!r} object "
            "is not allowed in templates"
        )

    def getattr(self, obj: Any, attribute: str) -> Any:
        """Look up ``obj.attribute``; any name starting with ``_`` is refused outright."""
        if attribute[:1] == "_" and not (isinstance(obj, Mapping) and attribute in obj):
            self.unsafe_undefined(obj, attribute)
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        """Look up ``obj[argument]``; a ``_`` name that is not a mapping key is refused."""
        private = isinstance(argument, str) and argument[:1] == "_"
        if private and not (isinstance(obj, Mapping) and argument in obj):
            self.unsafe_undefined(obj, argument)
        return super().getitem(obj, argument)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        """Apply a binary operator after checking it cannot blow up memory or time."""
        charge()
        if operator == "*":
            for seq, count in ((left, right), (right, left)):
                sized = isinstance(seq, str | list | tuple) and isinstance(count, int)
                if sized and len(seq) * count > self.max_size:
                    raise TemplateLimitError("repetition would exceed the output limit")
        elif operator == "**":
            if isinstance(right, int) and isinstance(left, int) and abs(right) > 64:
                raise TemplateLimitError("exponent too large")
        elif operator == "%" and isinstance(left, str) and _WIDE_FORMAT.search(left):
            raise TemplateLimitError("format width too large")
        return super().call_binop(context, operator, left, right)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """Sandbox ``str.format``/``format_map`` as Jinja does, refusing huge field widths."""
        wrapped = super().wrap_str_format(value)
        if wrapped is not None and (
            _WIDE_FORMAT.search(value.__self__) or _NESTED_SPEC.search(value.__self__)
        ):
            raise TemplateLimitError("format width too large (or taken from an argument)")
        return wrapped

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        """Call ``__obj`` in the sandbox, charging the budget and bounding padding widths."""
        charge()
        if getattr(__obj, "__name__", "") in _PADDING and isinstance(
            getattr(__obj, "__self__", None), str
        ):
            for value in (*args, *kwargs.values()):
                _check_size(value, __self.max_size)
        return super().call(__context, __obj, *args, **kwargs)

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        """Parse, then wrap each ``for`` loop's iterable so iterations charge the budget."""
        tree = super()._parse(source, name, filename)
        for loop in tree.find_all(nodes.For):
            call = nodes.Call(nodes.Name(ITER_NAME, "load"), [loop.iter], [], None, None)
            loop.iter = call.set_lineno(loop.lineno)
        return tree
