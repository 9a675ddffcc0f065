from __future__ import annotations

from datetime import timedelta
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


def test_anomalies_future_old_negative_and_outlying(ws: Workspace, intake: Intake) -> None:
    totals = [40, 42, 45, 47, 50, 52, 55, 58, 60, 44, 5000, -12]
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
    assert [e["message_id"] for e in outliers["examples"]] == ["o-10", "o-11"]  # 5000 and -12
    assert item.last_event_at is not None and item.last_event_at <= NOW
    assert item.status == "fresh"


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
    assert item.content_duplicates == 1
    assert item.duplicate_rate == pytest.approx(1 / 3)
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
@given(st.lists(st.integers(min_value=-1000, max_value=100_000), min_size=8, max_size=30))
def test_outliers_agree_with_a_python_robust_z(
    duck_ws_intake: tuple[Workspace, Intake], totals: list[int]
) -> None:
    """The SQL median/MAD rule flags exactly what the textbook formula in Python flags."""
    ws, intake = duck_ws_intake
    ws.store.execute("DELETE FROM events")
    intake.submit([order(i, t) for i, t in enumerate(totals)], source="p", received_at=NOW)
    found = by_source(ws, options=QualityOptions(min_samples=8))["p"].anomalies
    flagged = {
        int(e["message_id"][2:]) for e in found.get("outlying_total", {}).get("examples", [])
    }
    count = found.get("outlying_total", {}).get("count", 0)
    expected = python_outliers(totals)
    assert count == len(expected)
    assert flagged <= expected


def python_outliers(values: list[int]) -> set[int]:
    import statistics

    med = statistics.median(values)
    mad = statistics.median(abs(v - med) for v in values)
    scale = 1.4826 * mad if mad else 1.253314 * statistics.fmean(abs(v - med) for v in values)
    if not scale:
        return set()
    return {i for i, v in enumerate(values) if abs(v - med) > 3.5 * scale}
