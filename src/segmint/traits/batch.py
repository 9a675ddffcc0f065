"""Batch refresh: run the trait query on the store and materialise its result.

:func:`refresh` computes every trait for every profile with events at ``as_of`` into the
wide table ``profile_traits`` (one quoted column per trait) and mirrors each row into
``trait_values`` as a JSON object (timestamps as ISO 8601 strings with ``Z``), which
:mod:`segmint.profiles` reads. Both tables are replaced in one transaction, which also
records the instant and the catalog they were computed for (:func:`materialised`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlglot import exp

from segmint.rules.sqlcompile import timestamp_literal
from segmint.store import Store, from_store_time, read_meta, write_meta
from segmint.traits.catalog import TraitCatalog
from segmint.traits.sqldialect import dialect_for
from segmint.traits.sqlgen import trait_query

TABLE = "profile_traits"
STAMP_KEY = "traits.profile_traits"
"""``meta`` key: the instant and catalog fingerprint ``profile_traits`` was computed for."""


@dataclass(frozen=True)
class RefreshResult:
    """What a batch refresh did.

    Attributes:
        profiles: Rows written to ``profile_traits`` and ``trait_values``.
        as_of: The instant the traits were computed at.
    """

    profiles: int
    as_of: datetime


def refresh(store: Store, catalog: TraitCatalog, as_of: datetime) -> RefreshResult:
    """Recompute ``profile_traits`` and ``trait_values`` for every profile at ``as_of``."""
    query = trait_query(catalog, store.dialect, as_of).sql(dialect=store.dialect)
    ident = exp.to_identifier(TABLE, quoted=True).sql(dialect=store.dialect)
    with store.transaction():
        store.execute(f"DROP TABLE IF EXISTS {ident}")
        store.execute(f"CREATE TABLE {ident} AS {query}")
        store.execute("DELETE FROM trait_values")
        store.execute(_mirror_sql(catalog, store.dialect, as_of))
        stamp = {"as_of": as_of.isoformat(), "fingerprint": catalog.fingerprint}
        write_meta(store, STAMP_KEY, orjson.dumps(stamp).decode())
    count = store.fetchall(f"SELECT count(*) FROM {ident}")[0][0]
    return RefreshResult(int(count), as_of)


def materialised(store: Store) -> tuple[datetime, str] | None:
    """When and for which catalog fingerprint ``profile_traits`` was last computed, or None."""
    raw = read_meta(store, STAMP_KEY)
    if raw is None:
        return None
    stamp = orjson.loads(raw)
    return datetime.fromisoformat(stamp["as_of"]), str(stamp["fingerprint"])


def _mirror_sql(catalog: TraitCatalog, dialect: str, as_of: datetime) -> str:
    d = dialect_for(dialect)
    pairs: list[tuple[str, exp.Expr]] = []
    for spec in catalog:
        column: exp.Expr = exp.column(spec.name, quoted=True)
        if spec.type == "timestamp":
            column = d.iso(column)
        pairs.append((spec.name, column))
    select = exp.select(exp.column("profile_id"), d.json_object(pairs), timestamp_literal(as_of))
    insert = exp.insert(
        select.from_(TABLE), "trait_values", columns=["profile_id", "values", "as_of"]
    )
    return insert.sql(dialect=dialect)


def read_values(
    store: Store, catalog: TraitCatalog, profile_ids: list[str] | None = None
) -> dict[str, dict[str, Any]]:
    """Read ``profile_traits`` back as Python values (aware datetimes, lists), by profile."""
    cols = ", ".join(
        exp.to_identifier(n, quoted=True).sql(dialect=store.dialect) for n in catalog.names
    )
    # The fingerprint keeps PostgreSQL from reusing a prepared plan of another table shape.
    sql = f"SELECT profile_id, {cols} FROM {TABLE} /* {catalog.fingerprint} */"
    params: list[Any] = []
    if profile_ids is not None:
        sql += f" WHERE profile_id IN ({', '.join('?' for _ in profile_ids)})"
        params = list(profile_ids)
    out: dict[str, dict[str, Any]] = {}
    for row in store.fetchall(sql, params):
        out[row[0]] = {
            spec.name: python_value(spec.type, value)
            for spec, value in zip(catalog, row[1:], strict=True)
        }
    return out


def python_value(kind: str, value: Any) -> Any:
    """A value read from SQL in its Python form (see ``docs/internals.md``)."""
    if value is None:
        return None
    if kind == "timestamp" and isinstance(value, datetime):
        return from_store_time(value)
    if kind == "list" and isinstance(value, str | bytes):
        return orjson.loads(value)
    if kind == "number" and not isinstance(value, int | float):
        return float(value)
    return value
