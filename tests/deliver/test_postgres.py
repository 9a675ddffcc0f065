"""A campaign run with its store on PostgreSQL: ledger, gate, group commit, events."""

from __future__ import annotations

from datetime import timedelta

import pytest

from segmint.clock import FixedClock
from segmint.deliver.ledger import SendLedger
from segmint.deliver.retry import RetryPolicy
from segmint.deliver.service import send_campaign

from .conftest import T0, Shop  # type: ignore[import-not-found]

pytestmark = pytest.mark.postgres


def test_campaign_on_postgresql(pg_shop: Shop) -> None:
    shop = pg_shop
    assert shop.workspace.store.dialect == "postgres"
    shop.add_many([f"p{i}" for i in range(12)])
    shop.add("no", consent=False)
    shop.server.handler.rcpt_replies["p3@example.com"] = ["451 later"]
    shop.server.handler.rcpt_replies["p4@example.com"] = ["550 unknown"]
    stuck = shop.profiles["p5"]
    ledger = SendLedger(shop.workspace.store, "lifecycle_update", FixedClock(T0))
    ledger.plan([stuck])
    ledger.claim(stuck, "p5@example.com", "<dead-run@example.com>")  # a run died here

    clock = FixedClock(T0 + timedelta(minutes=1))
    fast = RetryPolicy(base_delay=0.01)
    report = send_campaign(shop.workspace, "lifecycle_update", clock=clock, retry=fast)

    assert report.sent == 10 and report.retries == 1 and report.uncertain == 1
    assert dict(report.failed) == {"hard_bounce:550": 1}
    assert dict(report.skipped) == {"no_consent": 1}
    received = shop.server.handler.by_recipient()
    assert len(received) == 10 and set(received.values()) == {1}
    assert "p5@example.com" not in received and "p4@example.com" not in received
    store = shop.workspace.store
    assert store.fetchall("SELECT count(*) FROM events WHERE event = 'Email Delivered'")[0][0] == 10
    assert store.fetchall("SELECT address FROM suppressions") == [("p4@example.com",)]

    again = send_campaign(shop.workspace, "lifecycle_update", clock=clock, retry=fast)
    assert again.sent == 0 and again.already_sent == 10
    assert dict(again.skipped) == {"no_consent": 1, "suppressed_bounce": 1}
