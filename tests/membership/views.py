"""A one-trait workspace (``views``) for the change feed and catch-up position tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from segmint.clock import FixedClock
from segmint.membership.feed import ChangeFeed
from segmint.membership.follow import Follower
from segmint.membership.service import Membership
from segmint.store import Store
from segmint.workspace import Workspace

NOW = datetime(2026, 11, 1, tzinfo=UTC)
AT = datetime(2026, 10, 30)
YAML = """
name: views
traits:
  views: {count: events, event: Viewed}
segments:
  regular: {rule: "views >= 3"}
"""


def insert(store: Store, message_id: str, profile: str = "p") -> None:
    """Store one 'Viewed' event directly (as another writer would), outside intake."""
    store.execute(
        "INSERT INTO events (message_id, type, event, profile_id, timestamp, received_at) "
        "VALUES (?, 'track', 'Viewed', ?, ?, ?)",
        [message_id, profile, AT, AT],
    )


def server(
    ws: Workspace, store: Store, checkpoint_every: float = 0.0, *, recover: bool = False
) -> tuple[Any, Follower]:
    """A leading server's engine and follower, wired as ``serve`` wires them."""
    clock = FixedClock(NOW)
    engine = Membership(ws).realtime(clock, checkpoint_every, recover=recover)
    feed = ChangeFeed(store.reopen(), owned=True)  # type: ignore[attr-defined]
    follower = Follower(engine, feed, clock)
    assert follower.lead(NOW)
    return engine, follower
