"""Where the batch trait query reads events: segmint's ``events`` table or a warehouse's.

A warehouse keeps Segment-style events in a table of its own, with its own column names.
:class:`EventSource` names that table and maps each column the trait query reads
(:data:`EVENT_COLUMNS`) to a source column or a SQL expression over the source's columns
(``profile_id: coalesce(user_id, anonymous_id)``). The trait query then reads
``(SELECT <mapped> AS profile_id, … FROM <table>) AS events`` instead of ``events``.

:func:`check_columns` compares a mapping with the columns a table really has, and names the
traits that read a missing column, so a bad mapping fails before any SQL runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError

from segmint.common import did_you_mean
from segmint.traits.catalog import TraitCatalog
from segmint.traits.errors import EventColumnError

EVENT_COLUMNS = ("profile_id", "message_id", "timestamp", "type", "event", "properties", "traits")
"""The columns of ``events`` the trait query reads (Segment's names; ``traits`` is the JSON
of identify calls, ``properties`` that of track calls)."""


@dataclass(frozen=True)
class EventSource:
    """A table of Segment-style events and how its columns map to segmint's.

    Attributes:
        table: The table, optionally qualified (``analytics.tracks``).
        columns: Segmint column (one of :data:`EVENT_COLUMNS`) → a source column name or a
            SQL expression over the source's columns; unmapped columns keep their names.
    """

    table: str = "events"
    columns: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for key in self.columns:
            if key not in EVENT_COLUMNS:
                hint = did_you_mean(key, EVENT_COLUMNS) or f"one of {', '.join(EVENT_COLUMNS)}"
                raise EventColumnError(f"unknown events column '{key}' in the mapping; {hint}")

    @property
    def is_default(self) -> bool:
        """Whether this is segmint's own ``events`` table, unmapped."""
        return self.table == "events" and not self.columns

    def expression(self, column: str, dialect: str) -> exp.Expr:
        """The source expression for segmint column ``column``."""
        text = self.columns.get(column)
        if text is None:
            return exp.column(column, quoted=True)
        try:
            return sqlglot.parse_one(text, read=dialect)
        except ParseError as exc:
            raise EventColumnError(
                f"the mapping of events column '{column}' is not SQL for {dialect}: {text!r}"
            ) from exc

    def relation(self, dialect: str) -> exp.Expr:
        """What the trait query reads ``FROM``: the table itself, or a renaming subquery."""
        table = exp.to_table(self.table, dialect=dialect)
        if not self.columns:
            return table
        select = exp.select(
            *(exp.alias_(self.expression(c, dialect), c, quoted=True) for c in EVENT_COLUMNS)
        ).from_(table)
        return select.subquery("events")

    def reads(self, column: str, dialect: str) -> list[str]:
        """The source columns that segmint column ``column`` reads."""
        found = self.expression(column, dialect)
        names = [c.name for c in found.find_all(exp.Column)]
        return names or ([found.name] if isinstance(found, exp.Column) else [])


def readers(catalog: TraitCatalog, names: Sequence[str] | None = None) -> dict[str, list[str]]:
    """Segmint events column → the traits (of ``names``, default all) that read it."""
    out: dict[str, list[str]] = {c: [] for c in EVENT_COLUMNS}
    for spec in catalog:
        if (names is not None and spec.name not in names) or spec.expr is not None:
            continue
        for column in EVENT_COLUMNS[:5]:  # the trait query's one pass selects these always
            out[column].append(spec.name)
        if spec.column in ("properties", "traits"):
            out[spec.column].append(spec.name)
        if spec.where is not None and spec.name not in out["properties"]:
            out["properties"].append(spec.name)
    return out


def check_columns(
    source: EventSource,
    available: Iterable[str],
    catalog: TraitCatalog,
    dialect: str,
    names: Sequence[str] | None = None,
) -> None:
    """Raise if the source lacks a column the traits read.

    Args:
        source: The table and mapping.
        available: The columns the table has.
        catalog: The traits.
        dialect: The dialect the SQL is for (named in the error).
        names: Only these traits (default: all).

    Raises:
        EventColumnError: Naming the missing column, the traits that read it and the dialect.
    """
    have = {c.lower() for c in available}
    for column, traits in readers(catalog, names).items():
        if not traits:
            continue
        for name in source.reads(column, dialect):
            if name.lower() not in have:
                mapped = f" (mapped from '{column}')" if column in source.columns else ""
                shown = ", ".join(f"'{t}'" for t in traits[:5]) + (" …" if len(traits) > 5 else "")
                who = f"trait {shown} reads" if len(traits) == 1 else f"traits {shown} read"
                hint = did_you_mean(name, sorted(have)) or f"it has {', '.join(sorted(have))}"
                raise EventColumnError(
                    f"column '{name}'{mapped} is not in table '{source.table}' ({dialect}); "
                    f"{who} it; {hint}"
                )
