"""A person erased by another process stays erased: a running engine writes nothing back.

A server's engine saves trait state and values once a second, not with every event: when
``segmint privacy erase`` runs beside it, the engine may hold the person's state unsaved
(their email among the values). Its next save, or the save before it forgets its cache on
hearing of the other process's write, must not put the erased person back.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from segmint.clock import FixedClock
from segmint.intake.identity import resolve_person
from segmint.intake.pipeline import Intake
from segmint.membership.service import Membership
from segmint.privacy.erase import erase
from segmint.store import Store

from .conftest import T0, erasure_rig, held


def _held(store: Store, pid: str) -> dict[str, int]:
    return held(store, pid, ("trait_state", "trait_values", "memberships", "schedule"))


def test_an_erasure_beside_the_engine_is_not_written_back(
    tmp_path: Path, store: Store, make_workspace: Any, shop_yaml: str, track: Any
) -> None:
    ws = make_workspace(tmp_path, shop_yaml, store)
    engine, intake = erasure_rig(ws, track, total=1200)
    intake.submit([track("ada", "Email Opened", T0)], source="test")  # held unsaved
    pid = resolve_person(ws.store, "ada")
    assert _held(ws.store, pid)["trait_values"] == 1
    erase(ws.privacy, "ada@example.com", at=T0)  # another process
    engine.invalidate()  # what a server does when told another process wrote derived rows
    engine.checkpoint()
    engine.advance(T0 + timedelta(days=400))
    assert _held(ws.store, pid) == dict.fromkeys(_held(ws.store, pid), 0)
    bob = resolve_person(ws.store, "bob")
    assert _held(ws.store, bob)["trait_values"] == 1  # the others are saved as before


@pytest.mark.postgres
def test_a_save_waits_for_an_erasure_under_way(
    tmp_path: Path, pg_store: Store, make_workspace: Any, shop_yaml: str, track: Any
) -> None:
    """PostgreSQL: an erasure that has deleted the person's rows and not yet committed
    (its deletes are invisible to the engine) holds the profile's lock; the engine's save
    waits for it, then finds no events left and writes nothing."""
    ws = make_workspace(tmp_path, shop_yaml, pg_store)
    engine = Membership(ws).realtime(FixedClock(T0), checkpoint_every=3600)
    intake = Intake(ws, FixedClock(T0))
    intake.add_listener(engine)
    intake.submit([track("ada", "Order Completed", T0, total=1200)], source="test")  # unsaved
    pid = resolve_person(ws.store, "ada")
    other = pg_store.reopen()  # type: ignore[attr-defined]
    deleted = threading.Event()

    def erasing() -> None:  # the order of privacy.erase: lock the profiles, then delete
        with other.transaction():
            other.fetchall("SELECT 1 FROM profiles WHERE profile_id = ? FOR UPDATE", [pid])
            for table in (
                "events",
                "trait_values",
                "trait_state",
                "memberships",
                "schedule",
                "profiles",
            ):
                other.execute(f"DELETE FROM {table} WHERE profile_id = ?", [pid])
            deleted.set()
            time.sleep(1.0)  # the engine saves now

    thread = threading.Thread(target=erasing)
    thread.start()
    try:
        assert deleted.wait(10)
        engine.checkpoint()
    finally:
        thread.join()
        other.close()
    assert _held(ws.store, pid) == dict.fromkeys(_held(ws.store, pid), 0)
