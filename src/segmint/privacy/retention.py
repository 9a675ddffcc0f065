"""Retention: events older than their type's period are deleted (``privacy.retention``).

``segmint privacy enforce --as-of`` runs it once; ``segmint serve`` runs it daily on its own
thread (:func:`start_daily`). Traits computed from deleted events change at the next batch
refresh (``segmint traits refresh``), like after any change to the events.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from segmint.clock import Clock
from segmint.privacy import audit
from segmint.privacy.protect import Privacy
from segmint.store import utcnow_naive

log = logging.getLogger(__name__)
DAY = timedelta(days=1)


def enforce(privacy: Privacy, *, as_of: datetime, actor: str = "cli") -> dict[str, int]:
    """Delete events past their retention at ``as_of``; return how many per event name."""
    store = privacy.store
    deleted: dict[str, int] = {}
    with store.transaction():
        # a real-time engine in this process checks the profiles it holds at its next write
        # (:meth:`segmint.store.duckdb.DuckDBStore.erasure_hint`): it saves no trait state
        # of a person whose every event is deleted
        note = getattr(store, "note_erasure", None)
        if note is not None:
            note()
        for event, keep in sorted(privacy.settings.retention.items()):
            cutoff = utcnow_naive(as_of - keep)
            params = [event, cutoff]
            where = "WHERE event = ? AND timestamp < ?"
            deleted[event] = int(
                store.fetchall(f"SELECT count(*) FROM events {where}", params)[0][0]
            )  # noqa: S608
            if deleted[event]:
                store.execute(f"DELETE FROM events {where}", params)  # noqa: S608
        if privacy.settings.retention:
            audit.append(store, "privacy.retention", actor=actor, at=as_of,
                         details={"as_of": as_of.isoformat(), "deleted": deleted})  # fmt: skip
    return deleted


def start_daily(
    privacy: Privacy,
    clock: Clock,
    *,
    every: timedelta = DAY,
    leading: Callable[[], bool] | None = None,
    poll: float = 1.0,
) -> Callable[[], None]:
    """Enforce retention now and then every ``every`` on a daemon thread; return a stopper.

    Args:
        privacy: The workspace's privacy settings and store.
        clock: The clock whose now retention is enforced at.
        every: Time between runs.
        leading: Whether this process runs the store's once-per-store duties (of several
            servers on one store, the leader); checked every ``poll`` seconds while it
            says no, and a process that becomes the leader runs at once. None: always.
        poll: Seconds between checks of ``leading``.
    """
    stop = threading.Event()

    def run() -> None:
        while True:
            wait = every.total_seconds()
            try:
                if leading is None or leading():
                    deleted = enforce(privacy, as_of=clock.now(), actor="serve")
                    if any(deleted.values()):
                        log.info("retention deleted %s", deleted)
                else:
                    wait = poll  # another process leads: ask again soon
            except Exception:
                log.exception("retention run failed; trying again in %s", every)
            if stop.wait(wait):
                return

    if privacy.settings.retention:
        threading.Thread(target=run, name="segmint-retention", daemon=True).start()
    return stop.set
