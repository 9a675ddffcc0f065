"""In-process fan-out of membership changes to subscribers (campaigns, streams, webhooks).

Subscribers are called after the changes are durably committed, in subscription order.
A failing subscriber is logged and does not stop the others: the changes are already
recorded, and durable consumers (the Redis stream, webhooks) catch up from the store.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

from segmint.membership.changes import MembershipChange

Subscriber = Callable[[Sequence[MembershipChange]], None]
"""Receives each committed batch of changes."""

log = logging.getLogger(__name__)


class ChangeHub:
    """A list of subscribers that receive every committed batch of changes."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []
        self._lock = threading.Lock()

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Add a subscriber; return a function that removes it again."""
        with self._lock:
            self._subscribers.append(subscriber)

        def unsubscribe() -> None:
            with self._lock:
                if subscriber in self._subscribers:
                    self._subscribers.remove(subscriber)

        return unsubscribe

    def publish(self, changes: Sequence[MembershipChange]) -> None:
        """Hand ``changes`` to every subscriber (nothing happens for an empty batch)."""
        if not changes:
            return
        with self._lock:
            subscribers = list(self._subscribers)
        for subscriber in subscribers:
            try:
                subscriber(changes)
            except Exception:
                log.exception("membership subscriber %r failed", subscriber)
