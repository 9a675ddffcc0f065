"""The change feed returns every committed event once, whatever order writers commit in.

Writers on connections of their own draw ``seq`` values, sleep a random time inside their
transaction (so later draws commit first), and commit or roll back; a reader polls the feed
all along. Every committed event must come out exactly once and no rolled-back one.
"""

from __future__ import annotations

import random
import threading
import time
from datetime import datetime

import pytest
from tests.membership.writers import late_writer

from segmint.membership.feed import ChangeFeed
from segmint.store import Store
from segmint.store.postgres import PostgresStore

AT = datetime(2026, 11, 1)


def _write(store: Store, message_id: str, profile: str) -> None:
    store.execute(
        "INSERT INTO events (message_id, type, event, profile_id, timestamp, received_at) "
        "VALUES (?, 'track', 'Viewed', ?, ?, ?)",
        [message_id, profile, AT, AT],
    )


def _drain(feed: ChangeFeed, seen: list[str], stop: threading.Event) -> None:
    while not stop.is_set():
        seen.extend(e.message_id for e in feed.read().events)
        time.sleep(0.002)


@pytest.mark.postgres
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_concurrent_writers_with_late_commits_reach_the_feed_once(
    pg_store: Store, seed: int
) -> None:
    assert isinstance(pg_store, PostgresStore)
    rng = random.Random(seed)
    _write(pg_store, "before", "p0")  # stored before the feed starts: not returned
    feed = ChangeFeed(pg_store.reopen(), chunk=7, owned=True)  # small chunks: many reads
    feed.start()
    writers = [pg_store.reopen() for _ in range(6)]
    committed: list[str] = []
    threads = [
        threading.Thread(
            target=late_writer(s, f"w{i}", random.Random(rng.random()), committed, rounds=15, at=AT)
        )
        for i, s in enumerate(writers)
    ]
    seen: list[str] = []
    stop = threading.Event()
    reader = threading.Thread(target=_drain, args=(feed, seen, stop))
    reader.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stop.set()
    reader.join()
    while True:  # the rest, after every writer finished
        batch = feed.read()
        seen.extend(e.message_id for e in batch.events)
        if not batch.events and not batch.more:
            break
    for store in writers:
        store.close()
    feed.close()
    assert len(seen) == len(set(seen)), "an event came out twice"
    assert set(seen) == set(committed), "an event was skipped (or a rolled-back one read)"
    assert len(committed) > 50


@pytest.mark.postgres
def test_a_transaction_open_across_many_reads_is_not_skipped(pg_store: Store) -> None:
    assert isinstance(pg_store, PostgresStore)
    feed = ChangeFeed(pg_store.reopen(), chunk=3, owned=True)
    feed.start()
    slow = pg_store.reopen()
    fast = pg_store.reopen()
    try:
        with slow.transaction():
            _write(slow, "slow", "p1")  # draws the smaller seq
            for n in range(10):  # more rows than a read returns, all behind the open one
                with fast.transaction():
                    _write(fast, f"fast{n}", "p2")
            read: list[str] = []
            for _ in range(6):  # reads page past the rows they returned before
                read += [e.message_id for e in feed.read().events]
            assert read == [f"fast{n}" for n in range(10)]
            assert feed.read().events == []
        later = [e.message_id for e in feed.read().events]
        assert later == ["slow"]
        assert feed.read().events == []
        slow_seq = slow.fetchall("SELECT seq FROM events WHERE message_id = 'slow'")[0][0]
        fast_seq = slow.fetchall("SELECT seq FROM events WHERE message_id = 'fast0'")[0][0]
        assert slow_seq < fast_seq  # seq order would have skipped it
    finally:
        slow.close()
        fast.close()
        feed.close()


def test_duckdb_feed_reads_in_seq_order_once(duck_store: Store) -> None:
    _write(duck_store, "before", "p0")
    feed = ChangeFeed(duck_store, chunk=3)
    feed.start()
    for n in range(8):
        with duck_store.transaction():
            _write(duck_store, f"e{n}", "p1")
    first = feed.read()
    assert [e.message_id for e in first.events] == ["e0", "e1", "e2"] and first.more
    rest: list[str] = []
    while batch := feed.read().events:
        rest.extend(e.message_id for e in batch)
    assert rest == [f"e{n}" for n in range(3, 8)]


def test_merges_come_through_the_feed(store: Store) -> None:
    source = store.reopen() if isinstance(store, PostgresStore) else store
    feed = ChangeFeed(source, owned=source is not store)
    feed.start()
    with store.transaction():
        store.execute(
            "INSERT INTO profile_merges (from_profile, into_profile, occurred_at, reason) "
            "VALUES ('a', 'b', ?, 'test')",
            [AT],
        )
    batch = feed.read()
    assert [(m.from_profile, m.into_profile) for m in batch.merges] == [("a", "b")]
    assert feed.read().merges == []
    feed.close()


@pytest.mark.postgres
def test_a_commit_of_events_wakes_the_feed(pg_store: Store) -> None:
    import pyarrow as pa

    from segmint.store.schema import EVENT_SCHEMA

    assert isinstance(pg_store, PostgresStore)
    feed = ChangeFeed(pg_store.reopen(), owned=True)
    feed.start()
    assert feed.listening and not feed.wait(0.05)  # nothing committed: the wait times out
    row = {"message_id": "n1", "type": "track", "event": "Viewed", "profile_id": "p1",
           "user_id": None, "anonymous_id": None, "timestamp": AT, "received_at": AT,
           "source": "t", "properties": "{}", "traits": None, "context": None}  # fmt: skip
    pg_store.append_events(pa.Table.from_pylist([row], schema=EVENT_SCHEMA))
    assert feed.wait(10)
    assert [e.message_id for e in feed.read().events] == ["n1"]
    feed.close()
