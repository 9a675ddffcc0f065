"""Hard bounces are recorded on the ledger with their suppression and announced from it.

A run that dies after some bounces must not lose their ``Email Bounced`` events: a later run
announces each of them, and each exactly once.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest

from segmint.clock import FixedClock
from segmint.deliver.errors import HardBounce
from segmint.deliver.fake import FakeTransport
from segmint.deliver.ledger import SendLedger
from segmint.deliver.retry import RetryPolicy
from segmint.deliver.service import build_run

from .conftest import T0, Shop  # type: ignore[import-not-found]

CAMPAIGN = "lifecycle_update"


def run_once(shop: Shop, transport: FakeTransport, at: Any, announced: list[dict[str, Any]]) -> Any:
    """One campaign run, one message at a time, recording every announced message."""
    run = build_run(shop.workspace, CAMPAIGN, clock=FixedClock(at), transport=transport,
                    retry=RetryPolicy(max_attempts=2, base_delay=0.0))  # fmt: skip
    run.concurrency = 1  # in profile id order, so the crash comes after known bounces
    submit = run.announce
    assert submit is not None

    def recording(messages: list[dict[str, Any]]) -> object:
        announced.extend(messages)
        return submit(messages)

    run.announce = recording
    return asyncio.run(run.run())


def bounced_events(shop: Shop) -> Counter[str]:
    rows = shop.workspace.store.fetchall(
        "SELECT profile_id FROM events WHERE event = 'Email Bounced'"
    )
    return Counter(r[0] for r in rows)


def test_bounces_of_a_run_that_dies_are_announced_once_by_the_next(shop: Shop) -> None:
    pids = sorted(shop.add_many([f"u{i}" for i in range(6)]))
    address = {pid: f"{user}@example.com" for user, pid in shop.profiles.items()}
    crash_at = pids[3]
    first = FakeTransport(script={address[p]: [HardBounce("550 no such user", code=550)]
                                  for p in pids if p != crash_at})  # fmt: skip
    first.script[address[crash_at]] = [RuntimeError("the process dies mid-send")]
    announced: list[dict[str, Any]] = []
    with pytest.raises(RuntimeError, match="dies"):
        run_once(shop, first, T0, announced)
    assert announced == []  # the run died before its end
    store = shop.workspace.store
    suppressed = {r[0] for r in store.fetchall("SELECT address FROM suppressions")}
    assert suppressed == {address[p] for p in pids[:3]}
    ledger = SendLedger(store, CAMPAIGN, FixedClock(T0))
    assert [b[0] for b in ledger.unannounced_bounces()] == pids[:3]

    later = T0 + timedelta(hours=1)
    second = FakeTransport(script={address[p]: [HardBounce("550 gone", code=550)]
                                   for p in pids[4:]})  # fmt: skip
    report = run_once(shop, second, later, announced)
    assert report.recovered == 1  # the row the dead run held: uncertain, not re-sent
    assert dict(report.failed) == {"hard_bounce:550": 2}
    run_once(shop, FakeTransport(), later + timedelta(hours=1), announced)  # nothing new

    by_profile = Counter(
        shop.profiles[m["userId"]] for m in announced if m["event"] == "Email Bounced"
    )
    expected = {p: 1 for p in pids if p != crash_at}
    assert by_profile == expected
    assert bounced_events(shop) == expected
    first_bounce = next(m for m in announced if m["userId"] == "u0")
    assert first_bounce["timestamp"] == T0.isoformat()  # when it bounced, not when announced
    assert first_bounce["properties"] == {"campaign": CAMPAIGN, "code": 550, "type": "hard"}
    assert ledger.unannounced_bounces() == []


def test_a_bounce_is_recorded_with_its_suppression_on_the_ledger_row(shop: Shop) -> None:
    pid = shop.add("ann")
    transport = FakeTransport(script={"ann@example.com": [HardBounce("550 x", code=550)]})
    announced: list[dict[str, Any]] = []
    run_once(shop, transport, T0, announced)
    row = shop.workspace.store.fetchall(
        "SELECT status, reason, bounce_code, bounce_announced FROM sends WHERE profile_id = ?",
        [pid],
    )
    assert row == [("failed", "hard_bounce:550", 550, True)]
    assert [m["event"] for m in announced] == ["Email Bounced"]


def test_a_dry_run_records_and_announces_no_bounce(shop: Shop) -> None:
    shop.add("ann")
    transport = FakeTransport(script={"ann@example.com": [HardBounce("550 x", code=550)]})
    run = build_run(shop.workspace, CAMPAIGN, clock=FixedClock(T0), transport=transport,
                    dry_run=True)  # fmt: skip
    report = asyncio.run(run.run())
    assert dict(report.failed) == {"hard_bounce:550": 1}
    store = shop.workspace.store
    assert store.fetchall("SELECT count(*) FROM suppressions") == [(0,)]
    assert store.fetchall("SELECT count(*) FROM sends") == [(0,)]
