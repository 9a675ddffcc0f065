"""Column mappings: turn one row of an import file into a Segment-spec message.

A mapping (:class:`~segmint.config.model.ImportDef`, the workspace's ``imports:`` section)
says which column holds the user id, the time, the event name, and which columns become
traits (contacts, ``identify``) or properties (events, ``track``).

Rules applied to every row, so that two runs over the same file agree:

- An empty cell (``""``, whitespace or null) means "unknown": the trait or property is left
  out, never written as null (a CRM export with a blank phone must not erase a known one).
- ``traits`` of a ``track`` mapping go to ``context.traits`` (Segment's place for the
  identifying traits of whoever performed the event, such as the email on an order).
- A column listed in ``types`` is converted (``number``, ``integer``, ``boolean``,
  ``timestamp``, ``string``); a value that does not convert makes the row bad.
- The ``messageId`` comes from the mapping's ``message_id`` template (``shopify-order-{id}``,
  to coincide with events from another source), else is derived from the mapping name and
  the ``key`` columns, or from the whole row when ``key`` is empty, so re-running an import
  stores nothing twice. With a key,
  a changed row keeps its id (it *is* the same record); put an ``updated_at`` column in the
  key when a later export of the same record should count as new.
"""

from __future__ import annotations

import hashlib
import math
import string
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import orjson

from segmint.clock import ensure_utc, parse_instant
from segmint.common import did_you_mean
from segmint.config.model import ImportDef
from segmint.intake.errors import IntakeError

_TRUE = frozenset({"true", "t", "yes", "y", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "0"})


class MappingError(IntakeError, ValueError):
    """A mapping that cannot be applied to a file at all (unknown mapping or column)."""


@dataclass(frozen=True)
class BadCell:
    """One reason a row cannot be mapped: a cell that does not convert, or a missing one.

    Attributes:
        column: The column at fault, when one is.
        value: The cell's value as the file gave it (None when empty or missing).
        reason: What is wrong, without the column name.
    """

    column: str | None
    value: Any
    reason: str

    def describe(self) -> str:
        """The reason with the column named: ``column 'total': 'abc' is not a number``."""
        return f"column '{self.column}': {self.reason}" if self.column else self.reason

    def as_dict(self) -> dict[str, Any]:
        """Plain data for JSON (values that are not JSON scalars as text)."""
        value = self.value
        if not (value is None or isinstance(value, str | int | float | bool)):
            value = str(value)
        return {"column": self.column, "value": value, "reason": self.reason}


class RowError(IntakeError, ValueError):
    """One row that cannot be mapped; the import reports it and keeps going.

    Attributes:
        column: The (first) column at fault, when one is.
        cells: Every problem found in the row, each with its column, value and reason.
    """

    def __init__(
        self, message: str, column: str | None = None, *, cells: Iterable[BadCell] = ()
    ) -> None:
        self.column = column
        self.cells = tuple(cells) or (BadCell(column, None, message),)
        super().__init__(message)

    @classmethod
    def of(cls, cells: Iterable[BadCell]) -> RowError:
        """One error for a row with several bad cells (each reported once)."""
        unique = list(dict.fromkeys(cells))
        return cls("; ".join(c.describe() for c in unique), unique[0].column, cells=unique)

    @classmethod
    def cell(cls, column: str | None, value: Any, reason: str) -> RowError:
        """The error of one bad cell."""
        return cls.of([BadCell(column, value, reason)])


@dataclass(frozen=True)
class RowMapper:
    """A compiled mapping: ``mapper(row) -> message``.

    Attributes:
        name: The mapping's name in the workspace (part of every derived messageId).
        spec: The mapping definition.
        source: The source name recorded for the events.
    """

    name: str
    spec: ImportDef
    source: str
    _template: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Parsed once: the template is applied to every row.
        object.__setattr__(self, "_template", tuple(template_fields(self.spec.message_id)))

    @classmethod
    def from_workspace(cls, imports: Mapping[str, ImportDef], name: str) -> RowMapper:
        """Look up mapping ``name``, checking it is complete.

        Raises:
            MappingError: If there is no such mapping or it lacks what its kind needs.
        """
        if name not in imports:
            known = ", ".join(sorted(imports)) or "none defined"
            hint = did_you_mean(name, imports)
            raise MappingError(
                f"no import mapping '{name}' in the workspace (known: {known})"
                + (f"; {hint}" if hint else "")
            )
        spec = imports[name]
        if spec.kind == "track" and not (spec.event or spec.event_column):
            raise MappingError(f"import mapping '{name}' is 'track' but names no event")
        if not (spec.user_id or spec.anonymous_id):
            raise MappingError(f"import mapping '{name}' names no user_id or anonymous_id column")
        return cls(name=name, spec=spec, source=spec.source or name)

    def columns(self) -> set[str]:
        """Every column this mapping reads."""
        spec = self.spec
        single = (spec.event_column, spec.user_id, spec.anonymous_id, spec.timestamp)
        named = {c for c in single if c} | set(template_fields(spec.message_id))
        return named | set(spec.traits.values()) | set(spec.properties.values()) | set(spec.key)

    def check_columns(self, available: Iterable[str]) -> None:
        """Fail early when the file lacks a column the mapping reads.

        Raises:
            MappingError: Naming the first missing column and the nearest present one.
        """
        present = set(available)
        for column in sorted(self.columns() - present):
            hint = did_you_mean(column, present)
            [only] = present if len(present) == 1 else [""]
            if any(sep in only for sep in ",;\t|"):
                hint = f"the header reads as one column {only!r}: is --delimiter right?"
            raise MappingError(
                f"import mapping '{self.name}' reads column '{column}', which the file "
                "does not have" + (f"; {hint}" if hint else "")
            )

    def __call__(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """Map one row to a message dict.

        Raises:
            RowError: If the row lacks an identity or event, or values do not convert; it
                names every bad cell of the row, not only the first.
        """
        spec = self.spec
        bad: list[BadCell] = []
        message: dict[str, Any] = {"type": spec.kind}
        message_id = _collect(bad, self.message_id, row)
        if message_id is not None:
            message["messageId"] = message_id
        for key, column in (("userId", spec.user_id), ("anonymousId", spec.anonymous_id)):
            value = _collect(bad, self._value, row, column)
            if value is not None:
                message[key] = _identity(value)
        identity = {spec.user_id, spec.anonymous_id}
        unknown = "userId" not in message and "anonymousId" not in message
        if unknown and not any(c.column in identity for c in bad):
            other = (
                f" (and '{spec.anonymous_id}' too)" if spec.user_id and spec.anonymous_id else ""
            )
            bad.append(
                BadCell(spec.user_id or spec.anonymous_id, None, f"empty{other}: no user id")
            )
        stamp = _collect(bad, self._value, row, spec.timestamp)
        if stamp is not None:
            message["timestamp"] = _collect(bad, to_timestamp, stamp, spec.timestamp)
        if spec.kind == "track":
            message["event"] = _collect(bad, self._event, row)
            message["properties"] = self._fields(row, spec.properties, bad)
            if spec.traits:  # Segment's place for who-did-it traits on a track call
                message["context"] = {"traits": self._fields(row, spec.traits, bad)}
        else:
            message["traits"] = self._fields(row, spec.traits, bad)
        if bad:
            raise RowError.of(bad)
        return message

    def message_id(self, row: Mapping[str, Any]) -> str:
        """The stable messageId of a row.

        The mapping's ``message_id`` template when it has one, else a hash of the mapping
        name plus the row's key (or its whole content).

        Raises:
            RowError: If a column the template names is empty.
        """
        if self.spec.message_id:
            return self._templated(row, self.spec.message_id)
        if self.spec.key:
            basis: Any = [_canonical(row.get(c)) for c in self.spec.key]
        else:
            basis = {str(k): _canonical(v) for k, v in row.items()}
        raw = orjson.dumps([self.name, basis], option=orjson.OPT_SORT_KEYS, default=str)
        return f"imp-{hashlib.sha256(raw).hexdigest()[:32]}"

    def _templated(self, row: Mapping[str, Any], template: str) -> str:
        values = {}
        for column in self._template:
            value = self._value(row, column)
            if value is None:
                raise RowError.cell(
                    column, None, "empty: no message id (the message_id template needs it)"
                )
            values[column] = _identity(value)
        return template.format_map(values)

    def _event(self, row: Mapping[str, Any]) -> str:
        if self.spec.event_column is None:
            return str(self.spec.event)
        value = self._value(row, self.spec.event_column)
        if value is None:
            if self.spec.event:
                return self.spec.event
            column = self.spec.event_column
            raise RowError.cell(column, None, "empty: no event name")
        return str(value).strip()

    def _fields(
        self, row: Mapping[str, Any], names: Mapping[str, str], bad: list[BadCell]
    ) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, column in names.items():
            value = _collect(bad, self._value, row, column)
            if value is not None:
                out[name] = value
        return out

    def _value(self, row: Mapping[str, Any], column: str | None) -> Any:
        if column is None:
            return None
        value = row.get(column)
        if value is None:
            return None
        kind = self.spec.types.get(column)
        if type(value) is str:  # the common case (CSV): no conversion unless declared
            if not value or value.isspace():
                return None
            return convert(value, kind, column) if kind else value
        if kind:
            return convert(value, kind, column)
        return _plain(value, column)


def _collect(bad: list[BadCell], read: Callable[..., Any], *args: Any) -> Any:
    """``read(*args)``, or None with its bad cells added to ``bad``."""
    try:
        return read(*args)
    except RowError as exc:
        bad.extend(exc.cells)
        return None


def template_fields(template: str | None) -> list[str]:
    """The column names a ``message_id`` template reads (``{order_id}`` → ``order_id``)."""
    if not template:
        return []
    return [name for _, name, _, _ in string.Formatter().parse(template) if name]


def convert(value: Any, kind: str, column: str) -> Any:
    """Convert a non-empty cell to the declared type.

    Raises:
        RowError: If the value does not convert, naming the column.
    """
    try:
        if kind == "number":
            return _number(value)
        if kind == "integer":
            return _integer(value)
        if kind == "boolean":
            return _boolean(value)
        if kind == "timestamp":
            return to_timestamp(value, column)
    except (TypeError, ValueError, OverflowError) as exc:
        raise RowError.cell(column, value, str(exc)) from None
    return value.strip() if isinstance(value, str) else value


def to_timestamp(value: Any, column: str | None) -> str:
    """Render a time cell (ISO text, epoch seconds or ms, datetime, date) as ISO 8601 UTC.

    Raises:
        RowError: If the value is not a time.
    """
    try:
        instant = _instant(value)
    except (TypeError, ValueError, OverflowError, OSError):
        raise RowError.cell(column, value, f"{value!r} is not a timestamp") from None
    return instant.isoformat().replace("+00:00", "Z")


def _instant(value: Any) -> datetime:
    if isinstance(value, datetime):
        return ensure_utc(value)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = value / 1000 if abs(value) > 1e11 else value
        return datetime.fromtimestamp(seconds, tz=UTC)
    text = str(value).strip()
    # Shop exports write "2024-03-01 10:15:00 -0500": drop the space before the offset.
    if len(text) > 6 and text[-6] == " " and text[-5] in "+-":
        text = text[:-6] + text[-5:]
    return parse_instant(text)


def _number(value: Any) -> float | int:
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a number")
    if isinstance(value, int | float):
        number: float | int = value
    else:
        text = str(value).strip()
        try:
            number = float(text)
        except ValueError:
            comma = " (write the decimal point as '.')" if "," in text else ""
            raise ValueError(f"{value!r} is not a number{comma}") from None
    if isinstance(number, float) and not math.isfinite(number):
        raise ValueError(f"{value!r} is not a finite number")
    return number


def _integer(value: Any) -> int:
    number = _number(value)
    if isinstance(number, float) and not number.is_integer():
        raise ValueError(f"{value!r} is not a whole number")
    return int(number)


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"{value!r} is not a boolean (true/false, yes/no, 1/0)")


def _plain(value: Any, column: str) -> Any:
    """A JSON-ready form of an untyped cell (Parquet gives datetimes and decimals)."""
    if isinstance(value, datetime | date):
        return to_timestamp(value, column)
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes):
        raise RowError.cell(column, None, "binary values cannot be imported")
    return value


def _identity(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def _canonical(value: Any) -> Any:
    """A JSON-stable form of a cell: trimmed text, ISO times, everything else as it is."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value
