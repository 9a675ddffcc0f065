from __future__ import annotations

import math
from datetime import timedelta
from statistics import NormalDist
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segmint.intake import Intake
from segmint.intake.quality import QualityOptions, SourceQuality, quality_report
from segmint.intake.quarantine import quarantine_row
from segmint.intake.results import Submission
from segmint.workspace import Workspace

from .conftest import NOW


def order(
    i: int, total: Any, *, ts: str = "2026-10-14T10:00:00Z", user: str = "u1"
) -> dict[str, Any]:
    return {
        "type": "track",
        "event": "Order Completed",
        "userId": user,
        "messageId": f"o-{i}",
        "timestamp": ts,
        "properties": {"total": total},
    }


def by_source(ws: Workspace, **kw: Any) -> dict[str, SourceQuality]:
    report = quality_report(ws.store, ws.definition, NOW, **kw)
    return {s.source: s for s in report.sources}


def test_freshness_against_the_sla(ws: Workspace, intake: Intake) -> None:
    intake.submit([order(1, 10)], source="shopify", received_at=NOW - timedelta(hours=30))
    intake.submit([order(2, 12)], source="http", received_at=NOW - timedelta(minutes=10))
    intake.submit([order(3, 12)], source="adhoc", received_at=NOW - timedelta(days=40))
    # Received after as_of: invisible to this report.
    intake.submit([order(4, 12)], source="crm", received_at=NOW + timedelta(minutes=1))
    sources = by_source(ws)
    assert sources["shopify"].status == "stale"  # SLA 1d, last received 30h ago
    assert sources["shopify"].lag == timedelta(hours=30)
    assert sources["http"].status == "fresh"  # SLA 1h
    assert sources["adhoc"].status == "no_sla" and sources["adhoc"].kind is None
    assert sources["crm"].status == "no_data" and sources["crm"].events == 0
    assert any("stale" in issue for issue in sources["shopify"].issues)
    assert sources["http"].issues == []


def lognormal(n: int, median: float = 80.0, sigma: float = 0.8) -> list[float]:
    """``n`` evenly spaced quantiles of a log-normal distribution: skewed like real prices."""
    dist = NormalDist(math.log(median), sigma)
    return [round(math.exp(dist.inv_cdf((i + 0.5) / n)), 2) for i in range(n)]


def test_anomalies_future_old_negative_and_outlying(ws: Workspace, intake: Intake) -> None:
    totals: list[float] = [*lognormal(40, median=50), 5000 * 100, -12]
    messages = [order(i, t) for i, t in enumerate(totals)]
    messages.append(order(100, 50, ts="2026-10-16T12:00:00Z"))  # a day ahead of as_of
    messages.append(order(101, 50, ts="1970-01-02T00:00:00Z"))
    messages.append(order(102, "n/a"))  # not a number: not an amount at all
    intake.submit(messages, source="shopify", received_at=NOW - timedelta(minutes=5))
    item = by_source(ws)["shopify"]
    assert item.anomalies["future_timestamps"] == {"count": 1, "examples": ["o-100"]}
    assert item.anomalies["too_old_timestamps"] == {"count": 1, "examples": ["o-101"]}
    assert item.anomalies["negative_total"] == {"count": 1}
    outliers = item.anomalies["outlying_total"]
    assert [e["message_id"] for e in outliers["examples"]] == ["o-40"]  # 500,000
    assert outliers["examples"][0]["why"].startswith(f"above {outliers['high']:,.2f} (")
    assert outliers["low"] < 50 < outliers["high"]
    assert item.last_event_at is not None and item.last_event_at <= NOW
    assert item.status == "fresh"


def test_skewed_prices_are_not_outliers(ws: Workspace, intake: Intake) -> None:
    """Prices spread like a shop's (a long right tail) give no outliers; a slip of x100 does."""
    prices = lognormal(400, median=79, sigma=0.9)
    messages = [order(i, p) for i, p in enumerate(prices)]
    intake.submit(messages, source="shop", received_at=NOW)
    assert "outlying_total" not in by_source(ws)["shop"].anomalies
    slips = [order(1000, prices[200] * 100), order(1001, prices[200] / 100)]
    intake.submit(slips, source="shop", received_at=NOW)
    found = by_source(ws)["shop"].anomalies["outlying_total"]
    assert found["count"] == 2
    above, below = found["examples"]
    assert above["message_id"] == "o-1000" and above["why"].startswith("above ")
    assert below["message_id"] == "o-1001" and below["why"].startswith("below ")
    assert "100x the median" in above["why"]


def test_near_identical_prices_do_not_flag_every_other_price(ws: Workspace, intake: Intake) -> None:
    prices = [9.99] * 30 + [12.99, 14.99, 7.99]
    intake.submit([order(i, p) for i, p in enumerate(prices)], source="shop", received_at=NOW)
    assert "outlying_total" not in by_source(ws)["shop"].anomalies


def test_repeated_message_ids_are_counted_per_source(ws: Workspace, intake: Intake) -> None:
    """Intake drops a repeated messageId; the drop is counted durably, by day received."""
    intake.submit([order(1, 10), order(2, 11)], source="http", received_at=NOW)
    result = intake.submit(
        [order(1, 10), order(2, 11), order(3, 12)], source="http", received_at=NOW
    )
    assert result.duplicates == 2
    intake.submit([order(1, 10)], source="crm", received_at=NOW + timedelta(days=1))
    item = by_source(ws)["http"]
    assert item.repeated_message_ids == 2
    assert item.identical_events == 0
    assert "2 repeated messageIds dropped" in item.issues
    assert by_source(ws)["crm"].repeated_message_ids == 0  # received the day after as_of
    later = quality_report(ws.store, ws.definition, NOW + timedelta(days=1))
    assert {s.source: s.repeated_message_ids for s in later.sources}["crm"] == 1


def test_few_values_are_not_judged_outliers(ws: Workspace, intake: Intake) -> None:
    intake.submit([order(1, 10), order(2, 11), order(3, 99999)], source="http", received_at=NOW)
    assert "outlying_total" not in by_source(ws)["http"].anomalies


def test_content_duplicates_and_quarantine_by_reason(ws: Workspace, intake: Intake) -> None:
    first = order(1, 10)
    again = {**first, "messageId": "o-1-retry"}  # same event, regenerated id
    intake.submit([first, again, order(2, 11)], source="http", received_at=NOW)
    at = NOW - timedelta(minutes=1)
    rows = [
        quarantine_row(at, "http", {"x": i}, "poison record: invalid JSON", None) for i in range(3)
    ]
    rows.append(quarantine_row(at, "http", {"y": 1}, "malformed: type: bad", "type"))
    intake.commit([Submission([], "http", quarantine=rows)])
    item = by_source(ws)["http"]
    assert item.identical_events == 1
    assert item.identical_rate == pytest.approx(1 / 3)
    assert item.repeated_message_ids == 0
    assert "1 identical events under other messageIds" in item.issues
    assert item.quarantine == {
        "poison record: invalid JSON": {"open": 3, "replayed": 0},
        "malformed: type: bad": {"open": 1, "replayed": 0},
    }
    assert "4 quarantined" in item.issues


def test_report_is_plain_data(ws: Workspace, intake: Intake) -> None:
    intake.submit([order(1, 10)], source="http", received_at=NOW - timedelta(minutes=2))
    data = quality_report(ws.store, ws.definition, NOW).as_dict()
    http = next(s for s in data["sources"] if s["source"] == "http")
    assert http["freshness_sla"] == 3600 and http["lag"] == 120
    assert data["notes"]


@settings(max_examples=20, deadline=None)
@given(
    st.lists(st.integers(min_value=-1000, max_value=100_000), min_size=20, max_size=40),
    st.floats(min_value=1.5, max_value=4.0),
)
def test_outliers_agree_with_python_log_fences(
    duck_ws_intake: tuple[Workspace, Intake], totals: list[int], fence: float
) -> None:
    """The SQL quartiles flag exactly what the textbook rule, computed in Python, flags."""
    ws, intake = duck_ws_intake
    ws.store.execute("DELETE FROM events")
    intake.submit([order(i, t) for i, t in enumerate(totals)], source="p", received_at=NOW)
    options = QualityOptions(min_samples=20, fence=fence)
    found = by_source(ws, options=options)["p"].anomalies
    flagged = {
        int(e["message_id"][2:]) for e in found.get("outlying_total", {}).get("examples", [])
    }
    count = found.get("outlying_total", {}).get("count", 0)
    expected = python_outliers(totals, options)
    assert count == len(expected)
    assert flagged <= expected


def python_outliers(values: list[int], opts: QualityOptions) -> set[int]:
    logs = sorted(math.log(v) for v in values if v > 0)
    if len(logs) < opts.min_samples:
        return set()
    q1, q3 = (quantile(logs, q) for q in (0.25, 0.75))
    spread = max(q3 - q1, math.log(opts.min_spread))
    low, high = q1 - opts.fence * spread, q3 + opts.fence * spread
    return {i for i, v in enumerate(values) if v > 0 and not low <= math.log(v) <= high}


def quantile(ordered: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (SQL's percentile_cont)."""
    position = q * (len(ordered) - 1)
    lower = math.floor(position)
    upper = min(lower + 1, len(ordered) - 1)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower)
