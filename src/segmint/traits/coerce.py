"""The one coercion rule for event properties and identify traits of mixed types.

Events come from many clients: a total may arrive as ``42``, ``42.5``, ``"42.5"``, ``null``,
``true`` or not at all. Every trait reads a value through exactly one *value kind*, and the
same rule is applied by the Python functions below (incremental path) and by the SQL that
:mod:`segmint.traits.sqlgen` emits (batch path), so the two can never disagree:

================  =============================================================  ==========
kind              a JSON value is taken when it is                               else
================  =============================================================  ==========
``number``        a number (not a boolean), or a string matching                 NULL
                  :data:`segmint.rules.semantics.NUMBER_PATTERN`
``boolean``       ``true``/``false``, or the strings ``true``/``false`` in any   NULL
                  case
``text``          a string (as is), a boolean (``true``/``false``), or an        NULL
                  integer of at most 18 digits (its decimal text); never a
                  float, an object or an array
``timestamp``     a string ``YYYY-MM-DDTHH:MM:SS[.ffffff][Z|+00:00]`` (UTC)      NULL
``list``          an array (kept as is)                                          NULL
================  =============================================================  ==========

``number`` and ``boolean`` are the rule language's own coercions of dynamic values
(:mod:`segmint.rules.semantics`), so a ``where`` filter and an aggregate read a property
the same way. ``text`` is stricter than the rule language's (it refuses floats), because
engines spell floats differently (``1e20`` vs ``100000000000000000000.0``) and a trait
value must not depend on the engine.

NULL means "no value": aggregates skip it exactly as SQL aggregates skip NULL (a ``sum``
over no values is NULL, a ``count: events`` still counts the event). A missing property
and a JSON ``null`` are the same. Nothing here ever raises on odd input.

Known limits, the same on every path unless said: a number string beyond the range of a
double (``1e400``) is infinite in Python and refused by PostgreSQL; an integer written in
exponent form (``1e2``) is text ``100`` on PostgreSQL only; a timestamp string with an
impossible date (``2024-02-30``) is refused by PostgreSQL at query time. Send real values.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final, Literal

from segmint.rules import semantics

ValueKind = Literal["number", "text", "boolean", "timestamp", "list"]
VALUE_KINDS: Final = ("number", "text", "boolean", "timestamp", "list")

INTEGER_PATTERN: Final = r"^-?[0-9]{1,18}$"
TIMESTAMP_PATTERN: Final = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}([.][0-9]{1,6})?(Z|[+]00:00)?$"
)
_TIMESTAMP = re.compile(TIMESTAMP_PATTERN)
_INT_LIMIT = 10**18


def to_number(value: Any) -> float | None:
    """Coerce a JSON value to a float under the ``number`` rule."""
    if type(value) is str and "\n" in value:
        return None  # Python's "$" matches before a final newline; SQL's does not
    try:
        return semantics.to_number(value)
    except OverflowError:
        return None


def to_boolean(value: Any) -> bool | None:
    """Coerce a JSON value to a bool under the ``boolean`` rule."""
    return semantics.to_boolean(value)


def to_text(value: Any) -> str | None:
    """Coerce a JSON value to a string under the ``text`` rule."""
    kind = type(value)
    if kind is str:
        return value  # type: ignore[no-any-return]
    if kind is bool:
        return "true" if value else "false"
    if kind is int and -_INT_LIMIT < value < _INT_LIMIT:
        return str(value)
    return None


def to_timestamp(value: Any) -> datetime | None:
    """Coerce a JSON value to an aware UTC datetime under the ``timestamp`` rule."""
    if type(value) is not str or not _TIMESTAMP.fullmatch(value):
        return None
    text = value.removesuffix("Z").removesuffix("+00:00")
    try:
        return datetime.fromisoformat(text).replace(tzinfo=UTC)
    except ValueError:
        return None


def to_list(value: Any) -> list[Any] | None:
    """Coerce a JSON value to a list under the ``list`` rule."""
    return value if type(value) is list else None


COERCERS: Final[Mapping[str, Callable[[Any], Any]]] = {
    "number": to_number,
    "text": to_text,
    "boolean": to_boolean,
    "timestamp": to_timestamp,
    "list": to_list,
}


def lookup(data: Mapping[str, Any] | None, path: Sequence[str]) -> Any:
    """Return the value at ``path`` inside nested JSON objects, or None when absent."""
    node: Any = data
    for key in path:
        if type(node) is not dict:
            return None
        node = node.get(key)
    return node
