r"""What a rule means: NULL semantics and dynamic coercion, written down once.

Both compilers (:mod:`segmint.rules.pycompile` and :mod:`segmint.rules.sqlcompile`)
implement exactly this, and the golden and property tests hold them to it.

**NULL is SQL's three-valued logic.** In Python, UNKNOWN/NULL is ``None``.

- A missing trait is NULL. A profile is a member only when its rule is TRUE.
- ``a and b``: FALSE if any operand is FALSE, else NULL if any is NULL, else TRUE.
  ``a or b``: TRUE if any is TRUE, else NULL if any is NULL, else FALSE.
  ``not a``: NULL when ``a`` is NULL. So ``not (x > 5)`` is not true when ``x`` is NULL, and
  ``x != 'a'`` excludes profiles where ``x`` is NULL unless the rule adds ``or x is null``.
- Comparisons, arithmetic, ``like``, ``contains``/``starts_with``/``ends_with``, ``between``,
  ``within`` and ``days_since`` are NULL when any operand is NULL. Division by zero is NULL.
- ``x in (a, b)``: TRUE if ``x`` equals an item; else NULL if ``x`` or any item is NULL;
  else FALSE. ``not in`` is its negation (so ``x not in (1, null)`` is never TRUE).
- ``x between lo and hi`` is ``x >= lo and x <= hi``.
- ``x is null`` / ``x is not null`` are never NULL.
- ``'v' in list_trait``: NULL if the value or the list is NULL, else whether the list holds
  it (lists hold no NULL elements).
- ``in_segment('s')`` is never NULL: TRUE for members, else FALSE.
- ``performed(...)`` compares a count, which is 0 (never NULL) without matching events.
  ``last_performed('E')`` is NULL when the profile never performed ``E``.

**Time.** ``now()`` is ``as_of``. ``within(ts, d)`` is ``now() - d < ts <= now()``: the lower
edge is excluded, as in every event window (a trait's ``within:``, ``performed(within => …)``).
``days_since(ts)`` is the fractional number of days ``(now() - ts) / 86400 seconds``
(a float; 36 hours is 1.5). Python values are aware UTC datetimes; SQL columns are naive UTC
``TIMESTAMP`` and ``now()`` becomes the naive UTC literal of ``as_of``.

**Text.** ``like``/``ilike``: ``%`` matches any run, ``_`` one character, ``\\`` escapes the
next character; ``ilike`` and the ``i``-functions compare lower-cased text. Python orders
strings by code point; SQL by the column's collation (the same for ASCII under ``C``).

**Numbers** are doubles in SQL (number literals are cast to ``DOUBLE``) and int or float in
Python.

**Dynamic values** (event properties in ``where`` filters, untyped computed traits) are
coerced to the type of what they meet: the other side of a comparison, ``in`` list or
``between``; a number in arithmetic; text in text matching; a boolean as a condition
(under ``and``/``or``/``not``, or as the whole rule). Two
dynamic values compare as text.

- to number: an int or float (not a bool), or text matching :data:`NUMBER_PATTERN`; anything
  else is NULL. SQL: ``CASE WHEN x ~ pattern THEN CAST(x AS DOUBLE) END``.
- to text: text as is; ``true``/``false`` for booleans; numbers as JSON writes them.
- to boolean: a bool, or the text ``true``/``false`` in any case; anything else is NULL.

In SQL a dynamic value must be resolved to a *text* expression (e.g. ``properties->>'total'``
or ``json_extract_string(properties, '$.total')``).
"""

from __future__ import annotations

import functools
import re
from typing import Any

import orjson

NUMBER_PATTERN = r"^[-+]?([0-9]+([.][0-9]*)?|[.][0-9]+)([eE][-+]?[0-9]+)?$"
_NUMBER = re.compile(NUMBER_PATTERN)
SEGMENTS_KEY = "__segments__"
"""The row key holding the collection of segment names the profile belongs to."""


def to_number(value: Any) -> float | None:
    """Coerce a dynamic value to a number, or None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and _NUMBER.match(value):
        return float(value)
    return None


def to_text(value: Any) -> str | None:
    """Coerce a dynamic value to text, or None."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return orjson.dumps(value).decode()


def to_boolean(value: Any) -> bool | None:
    """Coerce a dynamic value to a boolean, or None."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.lower()
        if lowered in ("true", "false"):
            return lowered == "true"
    return None


@functools.lru_cache(maxsize=1024)
def like_regex(pattern: str, case_insensitive: bool = False) -> re.Pattern[str]:
    r"""Translate a LIKE pattern (``%``, ``_``, ``\\`` escape) to a compiled regex."""
    out: list[str] = []
    chars = iter(pattern.lower() if case_insensitive else pattern)
    for char in chars:
        if char == "\\":
            out.append(re.escape(next(chars, "\\")))
        elif char == "%":
            out.append(".*")
        elif char == "_":
            out.append(".")
        else:
            out.append(re.escape(char))
    return re.compile("".join(out), re.DOTALL)


def like(value: str, pattern: str, case_insensitive: bool) -> bool:
    """SQL ``LIKE``/``ILIKE`` of two non-NULL strings."""
    subject = value.lower() if case_insensitive else value
    return like_regex(pattern, case_insensitive).fullmatch(subject) is not None


def plain_like(pattern: str) -> tuple[str, str] | None:
    """A LIKE pattern that is a plain equality, prefix, suffix or infix test, else None."""
    if "_" in pattern or "\\" in pattern:
        return None
    core = pattern.strip("%")
    if "%" in core or not core:
        return None
    starts, ends = pattern.startswith("%"), pattern.endswith("%")
    if starts and ends:
        return "infix", core
    if ends:
        return "prefix", core
    if starts:
        return "suffix", core
    return "=", core


def in_list(value: Any, items: tuple[Any, ...]) -> bool | None:
    """``value in (items)`` of a non-NULL value, three-valued."""
    unknown = False
    for item in items:
        if item is None:
            unknown = True
        elif item == value:
            return True
    return None if unknown else False


def not_in_list(value: Any, items: tuple[Any, ...]) -> bool | None:
    """``value not in (items)`` of a non-NULL value, three-valued."""
    found = in_list(value, items)
    return None if found is None else not found


def between(value: Any, low: Any, high: Any) -> bool | None:
    """``value between low and high`` of a non-NULL value, three-valued."""
    above = None if low is None else value >= low
    below = None if high is None else value <= high
    if above is False or below is False:
        return False
    return None if above is None or below is None else True


def not_between(value: Any, low: Any, high: Any) -> bool | None:
    """``value not between low and high`` of a non-NULL value, three-valued."""
    inside = between(value, low, high)
    return None if inside is None else not inside
