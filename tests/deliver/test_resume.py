"""Kill ``segmint campaign send`` mid-send, run it again, count what the SMTP server got.

The rule under test (see ``segmint.deliver.ledger``): nobody receives a message twice; a
message interrupted between the server's acceptance and the ledger's ``sent`` mark is
reported ``uncertain`` and not re-sent (at most once), so such a recipient got one message
or none; every other recipient gets exactly one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import timedelta

from segmint.clock import FixedClock
from segmint.deliver.ledger import SendLedger
from segmint.deliver.service import send_campaign

from .conftest import SECRET, T0, Shop, configure  # type: ignore[import-not-found]

PEOPLE = 60
KILL_AFTER = 15


def cli(shop: Shop, *args: str) -> subprocess.Popen[str]:
    env = os.environ | {"SEGMINT_SECRET": SECRET}
    return subprocess.Popen(
        [sys.executable, "-m", "segmint", "-w", str(shop.path), "campaign", "send",
         "lifecycle_update", "--as-of", T0.isoformat(), "--format", "json", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip


def test_kill_and_resume_sends_nobody_twice(shop: Shop) -> None:
    configure(shop.path, shop.server.port, pool=3, rate=40.0)
    shop.reopen()
    shop.add_many([f"p{i:03d}" for i in range(PEOPLE)])
    shop.workspace.close()  # DuckDB allows one writing process: the CLI's
    handler = shop.server.handler

    first = cli(shop)
    deadline = time.monotonic() + 60
    while handler.count() < KILL_AFTER and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    first.kill()
    _, first_err = first.communicate()
    assert first.returncode == -9, first_err  # killed mid-send, not finished
    received_before = handler.count()
    assert KILL_AFTER <= received_before < PEOPLE

    second = cli(shop)
    out, err = second.communicate(timeout=60)
    assert second.returncode == 0, err
    report = json.loads(out)

    counts = handler.by_recipient()
    assert max(counts.values()) == 1, "someone received the campaign twice"
    statuses = shop.reopen() and shop.statuses()
    uncertain = {u for u, (s, _) in statuses.items() if s == "uncertain"}
    # at most the pool's in-flight sends plus sent marks waiting for the next commit
    assert report["recovered"] == report["uncertain"] == len(uncertain) <= 2 * 3
    for user, (status, _) in statuses.items():
        got = counts.get(f"{user}@example.com", 0)
        assert (status, got) in {("sent", 1), ("uncertain", 0), ("uncertain", 1)}, user
    assert sum(1 for s, _ in statuses.values() if s == "sent") >= PEOPLE - len(uncertain)
    assert report["sent"] + report["already_sent"] + len(uncertain) == PEOPLE


def test_uncertain_rows_are_resent_only_when_asked(shop: Shop) -> None:
    ann = shop.add("ann")
    shop.add("bob")
    ledger = SendLedger(shop.workspace.store, "lifecycle_update", FixedClock(T0))
    ledger.plan([ann])
    assert ledger.claim(ann, "ann@example.com", "<from-dead-run@example.com>")  # then "crash"

    later = FixedClock(T0 + timedelta(minutes=5))
    report = send_campaign(shop.workspace, "lifecycle_update", clock=later)
    assert (report.recovered, report.uncertain, report.sent) == (1, 1, 1)
    assert shop.server.handler.by_recipient() == {"bob@example.com": 1}

    report = send_campaign(shop.workspace, "lifecycle_update", clock=later, retry_uncertain=True)
    assert report.sent == 1
    assert shop.server.handler.by_recipient() == {"bob@example.com": 1, "ann@example.com": 1}
    assert shop.statuses()["ann"] == ("sent", None)
