"""``segmint quality``: per-source data quality as of an instant.

For every source (configured in the workspace's ``sources:``, or seen in events or
quarantine) the report gives:

- **freshness**: the last event *received* against the source's SLA. Arrival, not the
  event's own timestamp, is what says a source still delivers (an import of last year's
  orders is fresh data about old events); the last event timestamp is reported beside it.
- **repeated messageIds**: intake drops a message whose ``messageId`` is already stored
  (a client retry, an import run twice) and counts each drop in ``meta``, in the same
  transaction, per source and day received (:func:`count_repeated_ids`).
- **identical events**: stored events identical in type, event, user, anonymous id,
  timestamp, properties and traits under *different* messageIds. They may be duplicates
  (a client that regenerates ids on retry) or genuine repeats, so they are reported apart.
- **quarantine**: open and replayed counts by reason.
- **ignored identifiers**: identifier traits (``email``, a ``phone``…) sent with a value that
  cannot name anyone (``"none"``, a blank, ``5`` as an email): the event is stored, but the
  value links no profiles (:mod:`segmint.intake.identifiers`). Intake counts them per source,
  kind and day received (:func:`count_ignored_identifiers`).
- **anomalies**: timestamps after ``as_of`` (beyond a tolerance) or implausibly old; negative
  amounts; and outlying amounts. Money is skewed (many small orders, a few large ones),
  so outliers are judged on a log scale, with Tukey's far-out fences: a positive amount is
  an outlier when ``ln x`` lies more than ``fence`` (3) interquartile ranges outside the
  quartiles of ``ln x``, the range counted as at least ``ln(min_spread)`` (quartiles a
  factor 2 apart) so that a source of near-identical prices does not flag every other
  price; and only with ``min_samples`` values to judge. Each outlier names the bounds it
  broke and how far from the median it lies.

Only events received at or before ``as_of`` count, so a report is reproducible. The SQL is
written once with ``?`` placeholders; the JSON number extraction is the only part that
differs by backend (:data:`_JSON_NUMBER`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from segmint.clock import ensure_utc
from segmint.config.model import WorkspaceDef
from segmint.intake.results import Submission
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
        fence: How many interquartile ranges (of ``ln x``) beyond the quartiles an amount
            must lie to be an outlier (Tukey's far-out fences: 3).
        min_spread: The smallest ratio between the quartiles that the fences assume.
        min_samples: The fewest positive amounts a source needs before outliers are judged.
        examples: How many example messageIds to list per anomaly.
    """

    future_tolerance: timedelta = timedelta(minutes=5)
    max_age: timedelta = timedelta(days=3650)
    amount_fields: tuple[str, ...] = ("total", "revenue", "value", "price")
    fence: float = 3.0
    min_spread: float = 2.0
    min_samples: int = 20
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
    repeated_message_ids: int = 0
    ignored_identifiers: dict[str, int] = field(default_factory=dict)
    identical_events: int = 0
    identical_rate: float | None = None
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
    "repeated ids: messages dropped at intake because their messageId was already stored "
    "(retries, imports run again), by day received up to the day of as_of",
    "identical: stored events with the same content under different messageIds (possible "
    "duplicates from clients that make new ids on retry, or genuine repeats)",
    "freshness compares the last event received with the source's SLA",
    "ignored identifiers: identifier traits sent with a value that cannot name anyone "
    "(blank, 'none', not an email or phone number); the events are kept, but such values "
    "link no profiles",
]
_REPEATED = "intake.repeated_ids."  # meta key prefix: + YYYY-MM-DD + "." + source
_IGNORED = "intake.ignored_ids."  # meta key prefix: + YYYY-MM-DD + "." + kind + "." + source


def count_repeated_ids(store: Store, dropped: Iterable[tuple[Submission, int]]) -> None:
    """Add messages dropped for a repeated messageId to durable per-source, per-day counters.

    Intake calls this inside the transaction that dropped them, so the counts are exact.

    Args:
        store: The store, inside the intake transaction.
        dropped: Each submission with the number of its messages dropped as repeats.
    """
    counts: dict[tuple[str, date], int] = {}
    for sub, n in dropped:
        if n and sub.messages:
            key = (sub.source, ensure_utc(sub.messages[0].received_at).date())
            counts[key] = counts.get(key, 0) + n
    for (source, day), n in sorted(counts.items()):
        store.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE "
            "SET value = CAST(CAST(meta.value AS BIGINT) + ? AS TEXT)",
            [f"{_REPEATED}{day.isoformat()}.{source}", str(n), n],
        )


def count_ignored_identifiers(store: Store, ignored: Iterable[tuple[str, datetime, str]]) -> None:
    """Add identifier values not used as identities to durable per-source counters.

    Intake calls this inside the transaction that stored their events, so the counts are exact.

    Args:
        store: The store, inside the intake transaction.
        ignored: ``(source, received_at, kind)`` for each value ignored in a stored event.
    """
    counts: dict[str, int] = {}
    for source, received_at, kind in ignored:
        key = f"{_IGNORED}{ensure_utc(received_at).date().isoformat()}.{kind}.{source}"
        counts[key] = counts.get(key, 0) + 1
    for key, n in sorted(counts.items()):
        store.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE "
            "SET value = CAST(CAST(meta.value AS BIGINT) + ? AS TEXT)",
            [key, str(n), n],
        )


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
    _repeated(store, as_of.date(), get)
    _ignored(store, as_of.date(), get)
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
        get(source).identical_events = int(extra or 0)


def _repeated(store: Store, last_day: date, get: Any) -> None:
    rows = store.fetchall("SELECT key, value FROM meta WHERE key LIKE ?", [_REPEATED + "%"])
    for key, value in rows:
        day, _, source = key.removeprefix(_REPEATED).partition(".")
        if date.fromisoformat(day) <= last_day:
            get(source).repeated_message_ids += int(value)


def _ignored(store: Store, last_day: date, get: Any) -> None:
    rows = store.fetchall("SELECT key, value FROM meta WHERE key LIKE ?", [_IGNORED + "%"])
    for key, value in rows:
        day, _, rest = key.removeprefix(_IGNORED).partition(".")
        kind, _, source = rest.partition(".")
        if date.fromisoformat(day) <= last_day:
            counts = get(source).ignored_identifiers
            counts[kind] = counts.get(kind, 0) + int(value)


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
        "WHERE received_at <= ?) "
        "SELECT src, sum(CASE WHEN x < 0 THEN 1 ELSE 0 END), "
        "count(CASE WHEN x > 0 THEN 1 END), "
        "percentile_cont(0.25) WITHIN GROUP (ORDER BY CASE WHEN x > 0 THEN ln(x) END), "
        "percentile_cont(0.5) WITHIN GROUP (ORDER BY CASE WHEN x > 0 THEN ln(x) END), "
        "percentile_cont(0.75) WITHIN GROUP (ORDER BY CASE WHEN x > 0 THEN ln(x) END) "
        "FROM v WHERE x IS NOT NULL GROUP BY src"
    )
    for source, negatives, n, q1, med, q3 in store.fetchall(sql, [cutoff]):
        item = get(source)
        if negatives:
            item.anomalies[f"negative_{name}"] = {"count": int(negatives)}
        if n < max(opts.min_samples, 1) or q1 is None:
            continue
        low, high = fences(float(q1), float(q3), opts)
        _outliers(store, cutoff, item, name, x, (low, math.exp(float(med)), high), opts)


def fences(q1: float, q3: float, opts: QualityOptions) -> tuple[float, float]:
    """The amounts below and above which a positive amount is an outlier.

    Args:
        q1: The first quartile of ``ln x``.
        q3: The third quartile of ``ln x``.
        opts: ``fence`` and ``min_spread``.

    Returns:
        ``(low, high)`` in the amount's own unit.
    """
    spread = max(q3 - q1, math.log(opts.min_spread))
    return math.exp(q1 - opts.fence * spread), math.exp(q3 + opts.fence * spread)


def _outliers(
    store: Store,
    cutoff: datetime,
    item: SourceQuality,
    name: str,
    x: str,
    bounds: tuple[float, float, float],
    opts: QualityOptions,
) -> None:
    low, median, high = bounds
    rows = store.fetchall(
        f"SELECT message_id, {x} FROM events WHERE COALESCE(source, '') = ? "
        f"AND received_at <= ? AND {x} > 0 AND ({x} < ? OR {x} > ?) ORDER BY message_id",
        [item.source, cutoff, low, high],
    )
    if rows:
        item.anomalies[f"outlying_{name}"] = {
            "count": len(rows),
            "median": round(median, 6),
            "low": round(low, 6),
            "high": round(high, 6),
            "rule": (
                f"outside [{_amount(low)}, {_amount(high)}]: more than {opts.fence:g} "
                "interquartile ranges beyond the quartiles, on a log scale"
            ),
            "examples": [
                {"message_id": m, name: v, "why": why(float(v), low, median, high)}
                for m, v in rows[: opts.examples]
            ],
        }


def why(value: float, low: float, median: float, high: float) -> str:
    """Say in words why ``value`` is an outlier: the bound it broke, and its ratio to the median.

    Returns:
        For example ``"above 1,937.65 (145,548x the median 100.49)"``.
    """
    if value > high:
        return f"above {_amount(high)} ({_ratio(value / median)} the median {_amount(median)})"
    return f"below {_amount(low)} (1/{_ratio(median / value)[:-1]} of the median {_amount(median)})"


def _amount(value: float) -> str:
    return f"{value:,.2f}" if value >= 0.01 else f"{value:.3g}"


def _ratio(value: float) -> str:
    return f"{value:,.0f}x" if value >= 10 else f"{value:.1f}x"


def _judge(item: SourceQuality, as_of: datetime) -> None:
    """Set the freshness status and list the source's issues in words."""
    if item.events:
        item.identical_rate = item.identical_events / item.events
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
    if item.repeated_message_ids:
        item.issues.append(f"{item.repeated_message_ids} repeated messageIds dropped")
    for kind, n in sorted(item.ignored_identifiers.items()):
        item.issues.append(f"{n} {kind} values not used to link profiles (blank or not valid)")
    if item.identical_events:
        item.issues.append(f"{item.identical_events} identical events under other messageIds")
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
