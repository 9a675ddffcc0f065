"""The real-time engine's schedule rows: what it holds in memory is what the table holds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from segmint.membership.live import FEW_MOVES, Live, save_schedule
from segmint.store.duckdb import DuckDBStore
from segmint.traits import TraitState

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _rows(store: DuckDBStore) -> dict[str, datetime]:
    rows = store.fetchall("SELECT profile_id, due_at FROM schedule ORDER BY profile_id")
    return {pid: due.replace(tzinfo=UTC) for pid, due in rows}


def _live(due: datetime | None, stored: datetime | None) -> Live:
    return Live(TraitState([]), due=due, stored_due=stored)


@pytest.mark.parametrize("count", [1, FEW_MOVES, FEW_MOVES + 3])
def test_moved_entries_are_written_whatever_the_table_holds(tmp_path, count):
    store = DuckDBStore(tmp_path / "s.duckdb")
    try:
        with store.transaction():
            store.executemany(
                "INSERT INTO schedule (profile_id, due_at) VALUES (?, ?)",
                [(f"kept{i}", T0.replace(tzinfo=None)) for i in range(count)]
                + [(f"gone{i}", T0.replace(tzinfo=None)) for i in range(count)],
            )
        later = T0 + timedelta(days=1)
        lives = {
            **{f"kept{i}": _live(later, T0) for i in range(count)},  # moved in place
            **{f"gone{i}": _live(None, T0) for i in range(count)},  # nothing due any more
            # held as stored, but another process deleted the row meanwhile
            **{f"lost{i}": _live(later, T0) for i in range(count)},
            **{f"new{i}": _live(later, None) for i in range(count)},
        }
        with store.transaction():
            save_schedule(store, lives)
        expected = {pid: later for pid in lives if not pid.startswith("gone")}
        assert _rows(store) == dict(sorted(expected.items()))
        assert all(live.stored_due == live.due for live in lives.values())
    finally:
        store.close()
