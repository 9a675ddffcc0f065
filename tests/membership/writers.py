"""Writers that commit out of ``seq`` order, for the change feed's and the relay's tests."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from datetime import datetime

from segmint.store import Store


class _Rollback(Exception):
    pass


def late_writer(
    store: Store,
    name: str,
    rng: random.Random,
    committed: list[str],
    *,
    rounds: int,
    at: datetime,
    merges: float = 0.0,
) -> Callable[[], None]:
    """Transactions that draw ``seq`` values, sleep before committing, or roll back.

    They write events directly (as model scores do, not through intake's serialised
    transactions), so a later draw often commits first. Each committed round adds its
    events' message ids (and ``merge:<id>`` for a merge, written with probability
    ``merges``) to ``committed``; about one round in seven rolls back.
    """

    def run() -> None:
        for n in range(rounds):
            ids = [f"{name}-{n}-{i}" for i in range(rng.randint(1, 4))]
            keep = rng.random() > 0.15
            try:
                with store.transaction():
                    for mid in ids:
                        store.execute(
                            "INSERT INTO events (message_id, type, event, profile_id, "
                            "timestamp, received_at) VALUES (?, 'track', 'Viewed', ?, ?, ?)",
                            [mid, f"p{rng.randint(1, 20)}", at, at],
                        )
                        time.sleep(rng.random() * 0.01)
                    if merges and rng.random() < merges:
                        found = store.fetchall(
                            "INSERT INTO profile_merges (from_profile, into_profile, "
                            "occurred_at, reason) VALUES (?, ?, ?, 'test') RETURNING id",
                            [f"{name}-gone-{n}", "p1", at],
                        )
                        ids.append(f"merge:{found[0][0]}")
                    time.sleep(rng.random() * 0.05)  # a late commit: others pass it by
                    if not keep:
                        raise _Rollback
            except _Rollback:
                continue
            committed.extend(ids)

    return run
