"""Kill ``segmint journeys run`` mid-send (kill -9), run it again: nobody twice, nobody lost.

The rule is the campaign ledger's (``segmint.deliver.ledger``): a message interrupted
between the server's acceptance and the ledger's mark is ``uncertain`` and not re-sent, so
its recipient got one message or none; everyone else gets exactly one, and every instance
moves on past the step.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import timedelta

from .conftest import SECRET, T0, Shop, deliver  # type: ignore[import-not-found]

PEOPLE = 60
KILL_AFTER = 15
UNTIL = T0 + timedelta(hours=2, minutes=1)


def run(shop: Shop) -> subprocess.Popen[str]:
    env = os.environ | {"SEGMINT_SECRET": SECRET}
    return subprocess.Popen(
        [sys.executable, "-m", "segmint", "-w", str(shop.path), "journeys", "run",
         "--until", UNTIL.isoformat(), "--format", "json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip


def test_kill_and_resume_sends_nobody_twice_and_loses_no_one(shop: Shop) -> None:
    deliver.configure(shop.path, shop.server.port, pool=3, rate=40.0)
    shop.reopen()
    users = [f"p{i:03d}" for i in range(PEOPLE)]
    shop.people(users)
    shop.submit([{"type": "track", "userId": u, "event": "Cart Abandoned",
                  "timestamp": T0.isoformat()} for u in users])  # fmt: skip
    shop.workspace.close()  # DuckDB allows one writing process: the CLI's
    handler = shop.server.handler

    first = run(shop)
    deadline = time.monotonic() + 60
    while handler.count() < KILL_AFTER and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    first.kill()
    _, err = first.communicate()
    assert first.returncode == -9, err
    assert KILL_AFTER <= handler.count() < PEOPLE

    second = run(shop)
    out, err = second.communicate(timeout=60)
    assert second.returncode == 0, err
    report = json.loads(out)

    counts = handler.by_recipient()
    assert max(counts.values()) == 1, "someone received the reminder twice"
    store = shop.reopen().store
    rows = dict(store.fetchall(
        "SELECT profile_id, status FROM sends WHERE campaign = 'journey:abandoned_cart:reminder:1'"
    ))  # fmt: skip
    assert len(rows) == PEOPLE
    uncertain = {p for p, s in rows.items() if s == "uncertain"}
    assert len(uncertain) <= 2 * 3  # at most the claimed, unmarked chunk
    for user in users:
        pid = shop.profiles[user]
        got = counts.get(f"{user}@example.com", 0)
        assert (rows[pid], got) in {("sent", 1), ("uncertain", 0), ("uncertain", 1)}, user
    steps = dict(store.fetchall(
        "SELECT step, count(*) FROM journey_instances WHERE journey = 'abandoned_cart' "
        "AND status = 'active' GROUP BY step"
    ))  # fmt: skip
    assert steps == {"one_day": PEOPLE}, "an instance was lost or stuck on the reminder"
    resumed = store.fetchall(
        "SELECT count(*) FROM journey_history WHERE step = 'reminder' AND reason = 'resumed'"
    )[0][0]
    assert resumed >= len(uncertain)
    assert report["sent"] + resumed == PEOPLE
