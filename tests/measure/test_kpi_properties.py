"""KPIs: the SQL equals a plain recount of generated records, and groupings add up."""

from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segmint.config.model import WorkspaceDef
from segmint.measure.kpis import campaign_kpis, kpi_report
from segmint.store import utcnow_naive
from segmint.store.duckdb import DuckDBStore

from .conftest import T0

CAMPAIGNS = ("c1", "c2", "c3", "c4")
PEOPLE = ("p1", "p2", "p3", "p4", "p5")
KINDS = ("Email Opened", "Email Link Clicked", "Email Unsubscribed")

sends = st.lists(
    st.tuples(
        st.sampled_from(CAMPAIGNS),
        st.sampled_from(PEOPLE),
        st.integers(0, 20),
        st.sampled_from(["sent", "bounced", "failed", "skipped"]),
        st.sampled_from([None, None, "tx", "ty"]),  # sent another template (an arm's)
    ),  # fmt: skip
    max_size=25,
    unique_by=lambda s: (s[0], s[1]),
)
events = st.lists(
    st.tuples(
        st.sampled_from(CAMPAIGNS),
        st.sampled_from(PEOPLE),
        st.integers(0, 20),
        st.sampled_from(KINDS),
        st.booleans(),
    ),  # fmt: skip
    max_size=40,
)


def at(hours: int) -> Any:
    return utcnow_naive(T0 + timedelta(hours=hours))


def load(store: DuckDBStore, sent: list[Any], engaged: list[Any]) -> None:
    store.execute("DELETE FROM sends")
    store.execute("DELETE FROM events")
    for campaign, pid, hour, status, template in sent:
        bounced = at(hour) if status == "bounced" else None
        store.execute(
            "INSERT INTO sends (send_key, campaign, profile_id, status, created_at, updated_at, "
            "sent_at, bounced_at, template) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [f"{campaign}:{pid}", campaign, pid, "failed" if status == "bounced" else status,
             at(0), at(0), at(hour) if status == "sent" else None, bounced, template],
        )  # fmt: skip
    for i, (campaign, pid, hour, kind, machine) in enumerate(engaged):
        flag = "machine_open" if kind == "Email Opened" else "machine_click"
        store.execute(
            "INSERT INTO events (message_id, type, event, profile_id, timestamp, received_at, "
            "properties) VALUES (?, 'track', ?, ?, ?, ?, ?)",
            [f"m{i}", kind, pid, at(hour), at(hour),
             json.dumps({"campaign": campaign, flag: machine})],
        )  # fmt: skip


def recount(
    sent: list[Any], engaged: list[Any], lo: int, hi: int, key: Any = None
) -> dict[str, Counter[str]]:
    """Count by campaign, or by ``key(campaign, profile)`` (each message's group)."""
    key = key or (lambda campaign, _pid: campaign)
    out: dict[str, Counter[str]] = {}
    for campaign, pid, hour, status, _template in sent:
        if status in ("sent", "bounced") and lo < hour <= hi:
            c = out.setdefault(key(campaign, pid), Counter())
            c["sent"] += 1
            c["delivered"] += status == "sent"
            c["bounced"] += status == "bounced"
    seen: set[tuple[str, str, str]] = set()
    for campaign, pid, hour, kind, machine in engaged:
        if not lo < hour <= hi:
            continue
        figure = {"Email Opened": "machine_opened" if machine else "opened",
                  "Email Link Clicked": None if machine else "clicked",
                  "Email Unsubscribed": "unsubscribed"}[kind]  # fmt: skip
        if figure and (campaign, pid, figure) not in seen:
            seen.add((campaign, pid, figure))
            out.setdefault(key(campaign, pid), Counter())[figure] += 1
        else:
            out.setdefault(key(campaign, pid), Counter())
    return out


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Any:
    s = DuckDBStore(Path(tmp_path_factory.mktemp("kpi")) / "s.duckdb")
    yield s
    s.close()


@settings(max_examples=40, deadline=None)
@given(sends, events, st.integers(-1, 10), st.integers(5, 21), st.data())
def test_kpis_equal_a_recount_and_groupings_add_up(
    store: DuckDBStore, sent: list[Any], engaged: list[Any], lo: int, hi: int,
    data: st.DataObject,
) -> None:  # fmt: skip
    load(store, sent, engaged)
    start = None if lo < 0 else T0 + timedelta(hours=lo)
    got = campaign_kpis(store, start, T0 + timedelta(hours=hi))
    expected = recount(sent, engaged, lo if lo >= 0 else -(10**6), hi)
    figures = ("sent", "delivered", "bounced", "opened", "machine_opened", "clicked",
               "unsubscribed")  # fmt: skip
    assert {c: {f: getattr(k, f) for f in figures} for c, k in got.items()} == {
        c: {f: e[f] for f in figures} for c, e in expected.items()
    }
    segments = data.draw(st.lists(st.sampled_from(["s1", "s2", "s3"]), min_size=3, max_size=3))
    defn = WorkspaceDef.model_validate({
        "name": "p",
        "segments": {s: {"rule": "event_count > 0"} for s in ("s1", "s2", "s3")},
        "campaigns": {c: {"segment": s, "template": f"t{i}", "from": "a@b.c"}
                      for i, (c, s) in enumerate(zip(CAMPAIGNS, segments, strict=False))},
    })  # fmt: skip  # c4 stays undefined
    end = T0 + timedelta(hours=hi)
    # by template: a message counts for the template it was sent (its row's, else its
    # campaign's), and so do its opens, clicks and unsubscribes
    own = {c: f"t{i}" for i, c in enumerate(CAMPAIGNS[:3])}
    rows = {(c, p): t for c, p, _, _, t in sent if t is not None}
    by_template = recount(sent, engaged, lo if lo >= 0 else -(10**6), hi,
                          lambda c, p: rows.get((c, p)) or own.get(c, "(undefined)"))  # fmt: skip
    report = kpi_report(store, defn, "template", start, end)
    assert {t: {f: getattr(k, f) for f in figures} for t, k in report.rows.items()} == {
        t: {f: e[f] for f in figures} for t, e in by_template.items()
    }
    for by in ("campaign", "template", "segment"):
        report = kpi_report(store, defn, by, start, end)
        for figure in figures:
            assert sum(getattr(k, figure) for k in report.rows.values()) == getattr(
                report.total, figure
            )
            assert getattr(report.total, figure) == sum(e[figure] for e in expected.values())
