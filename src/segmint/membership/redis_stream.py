"""A Redis Stream carrying every membership change, fed from the change log.

Each change becomes one stream entry with string fields ``id``, ``segment``,
``profile_id``, ``change``, ``occurred_at`` (ISO 8601) and ``cause`` (JSON). The position
in the change log is kept in the store, so entries are published at least once, in order,
across restarts; consumers de-duplicate by ``id``.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import orjson
import redis

from segmint.membership.changes import MembershipChange, read_changes
from segmint.membership.cursor import start_cursor, write_cursor
from segmint.store import Store


class RedisChangeStream:
    """Publishes the change log to a Redis Stream.

    Args:
        store: The store holding ``membership_changes``.
        url: The Redis URL.
        stream: The stream key.
        maxlen: Trim the stream to about this many entries (None keeps everything).
        from_start: On first use, publish the whole history instead of only new changes.
    """

    def __init__(
        self,
        store: Store,
        url: str,
        stream: str = "segmint:changes",
        *,
        maxlen: int | None = 1_000_000,
        from_start: bool = False,
    ) -> None:
        self.store = store
        self.stream = stream
        self.maxlen = maxlen
        self._redis: redis.Redis[bytes] = redis.Redis.from_url(url)
        self._key = f"redis_stream:{stream}"
        self._lock = threading.Lock()
        start_cursor(store, self._key, from_start=from_start)

    def pump(self, batch: int = 1000) -> int:
        """Publish every change recorded since the last pump; return how many."""
        sent = 0
        with self._lock:
            while True:
                cursor = start_cursor(self.store, self._key, from_start=False)
                changes = read_changes(self.store, after_id=cursor, limit=batch)
                if not changes:
                    return sent
                self._publish(changes)
                write_cursor(self.store, self._key, int(changes[-1].id or cursor))
                sent += len(changes)

    def __call__(self, changes: Sequence[MembershipChange]) -> None:
        """Act as a hub subscriber: publish whatever is new."""
        self.pump()

    def _publish(self, changes: Sequence[MembershipChange]) -> None:
        pipe = self._redis.pipeline(transaction=False)
        for change in changes:
            pipe.xadd(self.stream, _fields(change), maxlen=self.maxlen, approximate=True)
        pipe.execute()

    def close(self) -> None:
        """Close the Redis connection."""
        self._redis.close()


def _fields(change: MembershipChange) -> dict[Any, Any]:
    return {
        "id": str(change.id),
        "segment": change.segment,
        "profile_id": change.profile_id,
        "change": change.change,
        "occurred_at": change.occurred_at.isoformat(),
        "cause": orjson.dumps(dict(change.cause)).decode(),
    }
