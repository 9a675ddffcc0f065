"""What models read from the store: order histories and trait snapshots, both at an instant.

Everything here takes an explicit instant and reads only events with ``timestamp <= at``,
so a frame built for a training cut-off cannot see what happened after it (the leakage test
in ``tests/models/test_propensity.py`` holds this).

Order data preparation (CLV and its documentation): orders are the track events named by the
model's ``event``; orders of one profile on the same UTC day are merged into one purchase
(their values summed), as in the BG/NBD literature; the time unit is the week.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from segmint.store import Store

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from segmint.traits.catalog import TraitCatalog

    Floats = npt.NDArray[np.float64]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)
WEEK_DAYS = 7.0
"""The time unit of the CLV models: recency, age and horizons are in weeks."""


def day_number(at: datetime) -> float:
    """Days (fractional) since 1970-01-01 UTC."""
    return (at - EPOCH) / DAY


@dataclass(frozen=True)
class OrderHistory:
    """One row per profile with at least one order at the instant read.

    Attributes:
        profile_ids: The profiles.
        first_day: Day number of the first purchase day.
        last_day: Day number of the last purchase day.
        days: Distinct purchase days (1 for a one-time buyer).
        repeat_spend: Total value of the purchase days after the first (0 without repeats).
        spend: Total value of every order.
    """

    profile_ids: list[str]
    first_day: Floats
    last_day: Floats
    days: Floats
    repeat_spend: Floats
    spend: Floats

    def __len__(self) -> int:
        return len(self.profile_ids)


def _day_expr(dialect: str) -> str:
    if dialect == "postgres":
        return "(CAST(timestamp AS DATE) - DATE '1970-01-01')"
    return "date_diff('day', DATE '1970-01-01', CAST(timestamp AS DATE))"


def order_history(
    store: Store, event: str, value: str, at: datetime, profile_ids: Sequence[str] | None = None
) -> OrderHistory:
    """Every profile's purchase days up to ``at`` (same-day orders merged, values summed).

    Args:
        store: The store.
        event: The order event name.
        value: The property path of an order's value (``properties.total``); a value that
            is not a number counts as 0.
        at: The instant; later events are not read.
        profile_ids: Only these profiles (default: all).
    """
    import numpy as np

    from segmint.common import in_lists

    if profile_ids is not None:
        parts = [_order_rows(store, event, value, at, marks, chunk)
                 for marks, chunk in in_lists(sorted(profile_ids))]  # fmt: skip
        rows = sorted(r for part in parts for r in part)
    else:
        rows = _order_rows(store, event, value, at, None, ())
    cols: list[Any] = list(zip(*rows, strict=True)) if rows else [[] for _ in range(6)]
    floats = [np.asarray(c, dtype=np.float64) for c in cols[1:]]
    return OrderHistory([str(p) for p in cols[0]], *floats)


def _order_rows(
    store: Store, event: str, value: str, at: datetime, marks: str | None, ids: Sequence[str]
) -> list[tuple[Any, ...]]:
    from segmint.store import utcnow_naive
    from segmint.traits.sqldialect import dialect_for

    path = tuple(value.split(".")[1:]) if value.startswith("properties.") else (value,)
    amount = dialect_for(store.dialect).coerce("properties", path, "number")
    amount_sql = amount.sql(dialect=store.dialect)
    sql = f"""
        WITH d AS (
          SELECT profile_id, {_day_expr(store.dialect)} AS day,
                 SUM(COALESCE({amount_sql}, 0)) AS spend
          FROM events
          WHERE type = 'track' AND event = ? AND timestamp <= ? AND profile_id IS NOT NULL
          {"" if marks is None else f"AND profile_id IN ({marks})"}
          GROUP BY profile_id, day),
        f AS (SELECT profile_id, MIN(day) AS first_day FROM d GROUP BY profile_id)
        SELECT d.profile_id, MIN(d.day), MAX(d.day), COUNT(*),
               SUM(CASE WHEN d.day > f.first_day THEN d.spend ELSE 0 END), SUM(d.spend)
        FROM d JOIN f ON d.profile_id = f.profile_id
        GROUP BY d.profile_id ORDER BY d.profile_id
    """
    return store.fetchall(sql, [event, utcnow_naive(at), *ids])


@dataclass(frozen=True)
class TraitFrame:
    """Numeric trait values of every profile with events at an instant.

    Attributes:
        profile_ids: The profiles, sorted.
        names: The feature names (a timestamp trait ``t`` appears as ``days_since(t)``).
        values: A (profiles × features) matrix; NaN where a trait is NULL.
    """

    profile_ids: list[str]
    names: tuple[str, ...]
    values: Floats


def feature_name(trait: str, kind: str) -> str:
    """The feature a trait becomes: its value, or for a timestamp ``days_since(trait)``."""
    return f"days_since({trait})" if kind == "timestamp" else trait


def numeric_traits(catalog: TraitCatalog) -> list[str]:
    """Traits usable as features: number, boolean and timestamp traits from events.

    Model outputs and the implicit traits of rules are left out (a model never learns from
    its own or another model's scores).
    """
    usable = ("number", "boolean", "timestamp")
    return [s.name for s in catalog if s.type in usable and s.kind not in ("model", "implicit")]


def trait_frame(
    store: Store, catalog: TraitCatalog, names: Sequence[str], at: datetime
) -> TraitFrame:
    """The traits ``names`` of every profile at ``at``, computed by the batch trait SQL.

    The query reads only events with ``timestamp <= at`` (``segmint.traits.sqlgen``).
    """
    import numpy as np

    from segmint.traits.sqlgen import trait_query

    query = trait_query(catalog, store.dialect, at, names=list(names))
    index = {n: i for i, n in enumerate(query.named_selects)}
    rows = store.fetchall(f"SELECT * FROM ({query.sql(dialect=store.dialect)}) q ORDER BY 1")
    types = catalog.types()
    values = np.full((len(rows), len(names)), np.nan)
    for j, name in enumerate(names):
        values[:, j] = [_number(r[index[name]], types[name], at) for r in rows]
    labels = tuple(feature_name(n, types[n]) for n in names)
    return TraitFrame([str(r[0]) for r in rows], labels, values)


def _number(value: Any, kind: str, at: datetime) -> float:
    if value is None:
        return float("nan")
    if kind == "timestamp":
        from segmint.store import from_store_time

        when = from_store_time(value) if isinstance(value, datetime) else None
        return float((at - when) / DAY) if when is not None else float("nan")
    return float(value)
