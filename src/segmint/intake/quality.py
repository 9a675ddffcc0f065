"""``segmint quality``: per-source data quality as of an instant.

For every source (configured in the workspace's ``sources:``, or seen in events or
quarantine) the report gives:

- **freshness**: the last event *received* against the source's SLA. Arrival, not the
  event's own timestamp, is what says a source still delivers (an import of last year's
  orders is fresh data about old events); the last event timestamp is reported beside it.
- **duplicates**: the pipeline drops a repeated ``messageId`` before storing and does not
  count the drops, so that rate cannot be measured from the store. What is measured is the
  rate of *content duplicates*: stored events identical in type, event, user, anonymous id,
  timestamp, properties and traits under different messageIds (a client that regenerates
  ids on retry).
- **quarantine**: open and replayed counts by reason.
- **anomalies**: timestamps after ``as_of`` (beyond a tolerance) or implausibly old; negative
  amounts; and amounts whose robust z-score ``|x - median| / (1.4826 * MAD)`` exceeds a
  threshold (3.5, Iglewicz and Hoaglin), falling back to the mean absolute deviation when
  the MAD is zero, and only with enough values to judge.

Only events received at or before ``as_of`` count, so a report is reproducible. The SQL is
written once with ``?`` placeholders; the JSON number extraction is the only part that
differs by backend (:data:`_JSON_NUMBER`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from segmint.clock import ensure_utc
from segmint.config.model import WorkspaceDef
from segmint.store import Store, from_store_time, utcnow_naive

_JSON_NUMBER = {
    "duckdb": (
        "CASE WHEN json_type(properties, '$.{f}') IN ('BIGINT', 'UBIGINT', 'DOUBLE') "
        "THEN CAST(json_extract(properties, '$.{f}') AS DOUBLE) END"
    ),
    "postgres": (
        "CASE WHEN jsonb_typeof(properties -> '{f}') = 'number' "
        "THEN CAST(properties ->> '{f}' AS DOUBLE PRECISION) END"
    ),
}
_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class QualityOptions:
    """Thresholds of the anomaly checks.

    Attributes:
        future_tolerance: How far past ``as_of`` a timestamp may be before it is anomalous.
        max_age: Timestamps older than ``as_of - max_age`` are implausibly old.
        amount_fields: Properties checked for negative and outlying amounts.
        z_threshold: The robust z-score beyond which an amount is an outlier.
        min_samples: The fewest amounts a source needs before outliers are judged.
        examples: How many example messageIds to list per anomaly.
    """

    future_tolerance: timedelta = timedelta(minutes=5)
    max_age: timedelta = timedelta(days=3650)
    amount_fields: tuple[str, ...] = ("total", "revenue", "value", "price")
    z_threshold: float = 3.5
    min_samples: int = 8
    examples: int = 5


@dataclass
class SourceQuality:
    """The quality of one source at ``as_of``."""

    source: str
    kind: str | None = None
    freshness_sla: timedelta | None = None
    status: str = "no_data"
    events: int = 0
    last_received_at: datetime | None = None
    last_event_at: datetime | None = None
    lag: timedelta | None = None
    content_duplicates: int = 0
    duplicate_rate: float | None = None
    quarantine: dict[str, dict[str, int]] = field(default_factory=dict)
    anomalies: dict[str, Any] = field(default_factory=dict)
    issues: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Plain data for JSON; durations in seconds."""
        data = {k: getattr(self, k) for k in self.__dataclass_fields__}
        for key in ("freshness_sla", "lag"):
            value = data[key]
            data[key] = None if value is None else value.total_seconds()
        return data


@dataclass
class QualityReport:
    """The report over all sources."""

    as_of: datetime
    sources: list[SourceQuality]
    notes: list[str]

    def as_dict(self) -> dict[str, Any]:
        """Plain data for ``--format json``."""
        return {
            "as_of": self.as_of,
            "sources": [s.as_dict() for s in self.sources],
            "notes": self.notes,
        }


NOTES = [
    "duplicate_rate counts stored events with identical content under different messageIds; "
    "repeated messageIds are dropped by the pipeline before storage and are not counted",
    "freshness compares the last event received with the source's SLA",
]


def quality_report(
    store: Store, definition: WorkspaceDef, as_of: datetime, options: QualityOptions | None = None
) -> QualityReport:
    """Measure each source's freshness, duplicates, quarantine and anomalies at ``as_of``."""
    opts = options or QualityOptions()
    as_of = ensure_utc(as_of)
    cutoff = utcnow_naive(as_of)
    sources: dict[str, SourceQuality] = {}

    def get(name: str | None) -> SourceQuality:
        key = name or ""
        if key not in sources:
            sources[key] = SourceQuality(source=key)
        return sources[key]

    for name, spec in definition.sources.items():
        item = get(name)
        item.kind, item.freshness_sla = spec.kind, spec.freshness
    _activity(store, cutoff, as_of, opts, get)
    _duplicates(store, cutoff, get)
    _quarantine(store, cutoff, get)
    for amount in opts.amount_fields:
        _amounts(store, cutoff, amount, opts, get)
    for item in sources.values():
        _judge(item, as_of)
    return QualityReport(as_of, sorted(sources.values(), key=lambda s: s.source), list(NOTES))


def _activity(
    store: Store, cutoff: datetime, as_of: datetime, opts: QualityOptions, get: Any
) -> None:
    future = utcnow_naive(as_of + opts.future_tolerance)
    old = utcnow_naive(as_of - opts.max_age)
    rows = store.fetchall(
        "SELECT COALESCE(source, ''), count(*), max(received_at), "
        "max(CASE WHEN timestamp <= ? THEN timestamp END), "
        "sum(CASE WHEN timestamp > ? THEN 1 ELSE 0 END), "
        "sum(CASE WHEN timestamp < ? THEN 1 ELSE 0 END) "
        "FROM events WHERE received_at <= ? GROUP BY COALESCE(source, '')",
        [future, future, old, cutoff],
    )
    for source, n, received, last, n_future, n_old in rows:
        item = get(source)
        item.events = int(n)
        item.last_received_at = from_store_time(received)
        item.last_event_at = from_store_time(last)
        for name, value, cond in (
            ("future_timestamps", n_future, "timestamp > ?"),
            ("too_old_timestamps", n_old, "timestamp < ?"),
        ):
            if value:
                bound = future if name == "future_timestamps" else old
                examples = _examples(store, source, cond, [bound], cutoff, opts.examples)
                item.anomalies[name] = {"count": int(value), "examples": examples}


def _examples(
    store: Store, source: str, cond: str, params: list[Any], cutoff: datetime, limit: int
) -> list[str]:
    rows = store.fetchall(
        f"SELECT message_id FROM events WHERE COALESCE(source, '') = ? AND received_at <= ? "
        f"AND {cond} ORDER BY message_id LIMIT {int(limit)}",
        [source, cutoff, *params],
    )
    return [r[0] for r in rows]


def _duplicates(store: Store, cutoff: datetime, get: Any) -> None:
    rows = store.fetchall(
        "SELECT src, sum(n - 1) FROM (SELECT COALESCE(source, '') AS src, count(*) AS n "
        "FROM events WHERE received_at <= ? GROUP BY COALESCE(source, ''), type, event, "
        "user_id, anonymous_id, timestamp, CAST(properties AS TEXT), CAST(traits AS TEXT)) g "
        "GROUP BY src",
        [cutoff],
    )
    for source, extra in rows:
        get(source).content_duplicates = int(extra or 0)


def _quarantine(store: Store, cutoff: datetime, get: Any) -> None:
    rows = store.fetchall(
        "SELECT COALESCE(source, ''), reason, "
        "sum(CASE WHEN replayed_at IS NULL THEN 1 ELSE 0 END), "
        "sum(CASE WHEN replayed_at IS NULL THEN 0 ELSE 1 END) "
        "FROM quarantine WHERE received_at <= ? GROUP BY COALESCE(source, ''), reason",
        [cutoff],
    )
    for source, reason, open_, replayed in rows:
        get(source).quarantine[reason] = {"open": int(open_), "replayed": int(replayed)}


def _amounts(store: Store, cutoff: datetime, name: str, opts: QualityOptions, get: Any) -> None:
    """Count negative and outlying values of ``properties.<name>`` per source."""
    if not _FIELD.match(name):
        raise ValueError(f"amount field {name!r} must be a plain property name")
    x = _JSON_NUMBER["postgres" if store.dialect == "postgres" else "duckdb"].format(f=name)
    sql = (
        f"WITH v AS (SELECT COALESCE(source, '') AS src, {x} AS x FROM events "
        "WHERE received_at <= ?), "
        "vv AS (SELECT src, x FROM v WHERE x IS NOT NULL), "
        "m AS (SELECT src, count(*) AS n, "
        "percentile_cont(0.5) WITHIN GROUP (ORDER BY x) AS med FROM vv GROUP BY src), "
        "d AS (SELECT vv.src, percentile_cont(0.5) WITHIN GROUP (ORDER BY abs(vv.x - m.med)) "
        "AS mad, avg(abs(vv.x - m.med)) AS meanad FROM vv JOIN m ON vv.src = m.src "
        "GROUP BY vv.src) "
        "SELECT m.src, m.n, m.med, d.mad, d.meanad, "
        "(SELECT count(*) FROM vv WHERE vv.src = m.src AND vv.x < 0) "
        "FROM m JOIN d ON m.src = d.src"
    )
    for source, n, med, mad, meanad, negatives in store.fetchall(sql, [cutoff]):
        item = get(source)
        if negatives:
            item.anomalies[f"negative_{name}"] = {"count": int(negatives)}
        scale = 1.4826 * mad if mad else 1.253314 * (meanad or 0.0)
        if n < opts.min_samples or not scale:
            continue
        _outliers(store, cutoff, item, name, x, float(med), float(scale), opts)


def _outliers(
    store: Store,
    cutoff: datetime,
    item: SourceQuality,
    name: str,
    x: str,
    med: float,
    scale: float,
    opts: QualityOptions,
) -> None:
    rows = store.fetchall(
        f"SELECT message_id, {x} FROM events WHERE COALESCE(source, '') = ? "
        f"AND received_at <= ? AND abs({x} - ?) > ? ORDER BY message_id",
        [item.source, cutoff, med, opts.z_threshold * scale],
    )
    if rows:
        item.anomalies[f"outlying_{name}"] = {
            "count": len(rows),
            "median": med,
            "threshold": opts.z_threshold,
            "examples": [{"message_id": m, name: v} for m, v in rows[: opts.examples]],
        }


def _judge(item: SourceQuality, as_of: datetime) -> None:
    """Set the freshness status and list the source's issues in words."""
    if item.events:
        item.duplicate_rate = item.content_duplicates / item.events
    if item.last_received_at is not None:
        item.lag = as_of - item.last_received_at
    if item.last_received_at is None:
        item.status = "no_data"
    elif item.freshness_sla is None:
        item.status = "no_sla"
    else:
        assert item.lag is not None
        item.status = "fresh" if item.lag <= item.freshness_sla else "stale"
    if item.freshness_sla is not None and item.status in ("stale", "no_data"):
        sla = human_duration(item.freshness_sla)
        item.issues.append(f"{item.status}: nothing received in the last {sla}")
    if item.content_duplicates:
        item.issues.append(f"{item.content_duplicates} content duplicates")
    open_total = sum(v["open"] for v in item.quarantine.values())
    if open_total:
        item.issues.append(f"{open_total} quarantined")
    item.issues.extend(f"{v['count']} {k.replace('_', ' ')}" for k, v in item.anomalies.items())


def human_duration(value: timedelta) -> str:
    """A short form of a duration: ``7d``, ``1h``, ``30h 5m``, ``45s``."""
    seconds = int(value.total_seconds())
    if seconds and seconds % 86400 == 0:
        return f"{seconds // 86400}d"
    parts = [(seconds // 3600, "h"), (seconds % 3600 // 60, "m"), (seconds % 60, "s")]
    text = " ".join(f"{n}{unit}" for n, unit in parts if n)
    return text or "0s"
