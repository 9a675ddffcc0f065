"""A server's engine rebuilds a profile from exactly the events its change feed delivered.

On PostgreSQL ``seq`` order is not commit order: a writer may draw a ``seq``, and commit
after another writer drew a higher one and committed. When the engine first meets a
profile (no stored trait state) it folds the profile's stored events; those must be the
events the feed has delivered (and the engine applied), decided by the feed's commit-order
position, never "every event up to the batch's top ``seq``": that folds an event committed
after the feed's read, which the feed then delivers and the engine applies a second time.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.membership.conftest import live_views, stored_views
from tests.membership.views import NOW, YAML, insert, server

from segmint.clock import FixedClock
from segmint.membership.feed import FeedBatch
from segmint.membership.follow import Follower
from segmint.membership.service import Membership
from segmint.store import Store


def _after_each_read(follower: Follower, then: Callable[[FeedBatch], None]) -> None:
    """Run ``then`` right after each read of the follower's feed (before it is applied)."""
    read = follower.feed.read

    def reading() -> FeedBatch:
        batch = read()
        then(batch)
        return batch

    follower.feed.read = reading  # type: ignore[method-assign]


@pytest.mark.postgres
def test_an_event_committed_after_the_feeds_read_is_not_folded_into_a_rebuild(
    pg_store: Store, tmp_path: Path, make_workspace: Any
) -> None:
    """A writer draws seq 1 for a new profile and commits late: after another writer's
    seq 2 was committed and read by the feed, before the engine rebuilds the profile."""
    ws = make_workspace(tmp_path, YAML, pg_store)
    engine, follower = server(ws, pg_store, recover=True)
    late = pg_store.reopen()  # type: ignore[attr-defined]
    drawn, release, done = threading.Event(), threading.Event(), threading.Event()

    def slow_writer() -> None:
        with late.transaction():
            insert(late, "late", "p")
            drawn.set()
            release.wait(10)
        done.set()

    writer = threading.Thread(target=slow_writer)
    writer.start()
    assert drawn.wait(10)
    with pg_store.transaction():
        insert(pg_store, "early", "p")  # a higher seq, committed first

    def commit_the_late_one(batch: FeedBatch) -> None:
        if [e.message_id for e in batch.events] == ["early"]:
            release.set()
            assert done.wait(10)

    _after_each_read(follower, commit_the_late_one)
    try:
        assert follower.step() == 1  # "early": the profile is rebuilt from the store
        assert follower.step() == 1  # "late", delivered now
        assert follower.step() == 0
        engine.checkpoint(NOW)
        assert live_views(ws) == stored_views(ws) == {"p": 2}
    finally:
        writer.join()
        follower.close()
        late.close()


@pytest.mark.postgres
def test_an_event_committing_during_the_leaders_catch_up_is_applied(
    pg_store: Store, tmp_path: Path, make_workspace: Any
) -> None:
    """A server takes the lead while a writer holds seq 1 open and seq 2 is committed: its
    catch-up applies seq 2, and seq 1, committed after, comes through the feed (a ``seq``
    floor at the catch-up's top skipped it)."""
    ws = make_workspace(tmp_path, YAML, pg_store)
    Membership(ws).realtime(FixedClock(NOW)).catch_up(NOW)  # an engine ran here before
    late = pg_store.reopen()  # type: ignore[attr-defined]
    drawn, release = threading.Event(), threading.Event()

    def slow_writer() -> None:
        with late.transaction():
            insert(late, "late", "p")
            drawn.set()
            release.wait(10)

    writer = threading.Thread(target=slow_writer)
    writer.start()
    assert drawn.wait(10)
    with pg_store.transaction():
        insert(pg_store, "early", "p")
    try:
        engine, follower = server(ws, pg_store, recover=True)  # catches up on "early"
        release.set()
        writer.join()
        assert follower.step() == 1  # "late"
        engine.checkpoint(NOW)
        assert live_views(ws) == stored_views(ws) == {"p": 2}
    finally:
        release.set()
        writer.join()
        follower.close()
        late.close()


def _writer(
    store: Store, name: str, rng: random.Random, profiles: list[str], rounds: int
) -> Callable[[], None]:
    """Transactions that write a few events to new and known profiles and commit late."""

    def run() -> None:
        for n in range(rounds):
            with store.transaction():
                for i in range(rng.randint(1, 3)):
                    fresh = rng.random() < 0.5 or not profiles
                    profile = f"{name}-{n}" if fresh else rng.choice(profiles[-6:])
                    profiles.append(profile)
                    insert(store, f"{name}-{n}-{i}", profile)
                time.sleep(rng.random() * 0.03)

    return run


@pytest.mark.postgres
@pytest.mark.parametrize("seed", [1, 2])
def test_concurrent_late_writers_leave_every_profile_folded_once(
    pg_store: Store, tmp_path: Path, make_workspace: Any, seed: int
) -> None:
    """Writers on connections of their own commit out of ``seq`` order while the server's
    engine applies the feed (slowly, so commits land between its read and its rebuild)."""
    ws = make_workspace(tmp_path, YAML, pg_store)
    engine, follower = server(ws, pg_store, recover=True)
    _after_each_read(follower, lambda batch: time.sleep(0.01))
    rng = random.Random(seed)
    stores = [pg_store.reopen() for _ in range(4)]  # type: ignore[attr-defined]
    profiles: list[str] = []
    threads = [
        threading.Thread(target=_writer(s, f"w{i}", random.Random(rng.random()), profiles, 12))
        for i, s in enumerate(stores)
    ]
    for thread in threads:
        thread.start()
    try:
        while any(t.is_alive() for t in threads):
            follower.step()
        while follower.step():
            pass
        engine.checkpoint(NOW)
        assert live_views(ws) == stored_views(ws)
    finally:
        for thread in threads:
            thread.join()
        follower.close()
        for s in stores:
            s.close()
