"""Catching up after a real-time engine stopped without saving (a crash, ``kill -9``).

A server writes memberships with every engine step, but trait state and ``trait_values``
only every second and when it stops; until then ``meta`` marks the state unsaved
(:data:`segmint.traits.UNSAVED_KEY`). Events it acknowledged may also still wait for the
engine when the process dies. So ``serve`` marks its whole run
(:data:`segmint.traits.SERVING_KEY`, :func:`serving`) and clears the mark after its final
save. After an unsaved stop, ``trait_values`` and memberships lag behind the events, and a
command reading them (a template preview, a campaign) would see another profile than
``profile show`` (computed from the events). :func:`catch_up_unsaved` closes that gap the
way a starting server does: it runs the real-time engine's catch-up on the events stored
since the last save, then saves. The CLI calls it when it opens a store
(:class:`segmint.cli.recovering.RecoveringWorkspace`).

It only does so when no engine is running: a DuckDB file opened for writing is held by
this process alone; on PostgreSQL each running server holds a shared advisory lock
(taken by :func:`serving`) and the catch-up needs the exclusive one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from segmint.clock import FixedClock
from segmint.store import Store, write_meta
from segmint.store.errors import StoreLocked
from segmint.traits import SERVING_KEY, stopped_unsaved
from segmint.workspace import Workspace

log = logging.getLogger(__name__)
_LOCK = "hashtext('segmint.realtime'), hashtext(current_schema())"
"""The advisory lock's two keys: one per store schema (tests share a database)."""


def catch_up_unsaved(workspace: Workspace, as_of: datetime) -> int | None:
    """Apply the events an engine stopped without saving, if no engine runs now.

    Args:
        workspace: The workspace (its store is opened).
        as_of: The instant the catch-up decides memberships at (the command's now).

    Returns:
        How many stored events were applied, or None when nothing was to be done (the
        state was saved, or a running server holds it).
    """
    store = workspace.store
    if not stopped_unsaved(store):
        return None
    if store.dialect != "postgres":
        from segmint.store.duckdb import DuckDBStore

        # Only a DuckDB file this process opened for writing is free of a running server
        # (reads served by the server holding the file, or a read-only open, are not).
        if not isinstance(store, DuckDBStore) or getattr(store, "read_only", False):
            return None
        return _catch_up(workspace, as_of)
    if not store.fetchall(f"SELECT pg_try_advisory_lock({_LOCK})")[0][0]:
        return None  # a server runs: its state is current
    try:
        return _catch_up(workspace, as_of)
    finally:
        store.fetchall(f"SELECT pg_advisory_unlock({_LOCK})")


@contextmanager
def serving(store: Store) -> Iterator[None]:
    """Mark the block as a real-time engine's run on ``store``; cleared once it saved.

    On PostgreSQL the process also holds a shared advisory lock on the store's connection
    until it disconnects (several servers may share one store): other processes leave the
    running engines' unsaved state alone. DuckDB needs no lock: a file opened for writing
    is held by one process. A process that dies inside the block leaves the mark set.
    """
    if store.dialect == "postgres":
        store.fetchall(f"SELECT pg_advisory_lock_shared({_LOCK})")
    with store.transaction():
        write_meta(store, SERVING_KEY, "1")
    yield
    with store.transaction():
        write_meta(store, SERVING_KEY, "0")


@contextmanager
def without_servers(store: Store, command: str) -> Iterator[None]:
    """Run the block only while no real-time server runs on ``store`` (PostgreSQL).

    For a command that replaces what a running engine holds in memory and saves every
    second (``segmint rebuild``): beside one, its reads and the engine's saves of trait
    state conflict (a serialisation failure half-way), or the engine's next save writes
    over the rebuilt rows. Holds the exclusive advisory lock for the block, so that a
    server starting meanwhile waits for it. DuckDB needs none: a command beside a server
    runs through it, one writer at a time.

    Raises:
        StoreLocked: When a server holds the shared lock (:func:`serving`).
    """
    if store.dialect != "postgres":
        yield
        return
    if not store.fetchall(f"SELECT pg_try_advisory_lock({_LOCK})")[0][0]:
        raise StoreLocked(
            f"a real-time server ('segmint serve') is running on this PostgreSQL store: "
            f"'{command}' replaces the trait state it holds in memory and saves every "
            "second; stop the servers, run it, and start them again (they catch up from "
            "the rebuilt state)",
            holder="a running 'segmint serve'",
        )
    try:
        yield
    finally:
        store.fetchall(f"SELECT pg_advisory_unlock({_LOCK})")


def _catch_up(workspace: Workspace, as_of: datetime) -> int:
    from segmint.membership.service import Membership

    engine = Membership(workspace).realtime(FixedClock(as_of))  # drops the stale state
    done = engine.catch_up(as_of)
    engine.close()
    with workspace.store.transaction():
        write_meta(workspace.store, SERVING_KEY, "0")
    if done:
        log.warning("applied %d events the real-time engine had not saved when it stopped", done)
    return done
