"""The hash-chained audit log: appends verify; edits, removals and reorders are caught."""

from __future__ import annotations

from datetime import timedelta

import pytest

from segmint.privacy import audit
from segmint.privacy.errors import AuditChainBroken
from segmint.store import Store

from .conftest import T0


def _fill(store: Store, n: int = 4) -> None:
    for i in range(n):
        audit.append(store, f"test.action{i}", actor="test", at=T0 + timedelta(minutes=i),
                     subject=f"p_{i}", details={"i": i, "note": "ok"})  # fmt: skip


def test_an_untouched_chain_verifies(store: Store) -> None:
    _fill(store)
    result = audit.verify(store)
    assert result.entries == 4 and result.ok
    assert [e.action for e in audit.entries(store)] == [f"test.action{i}" for i in range(4)]


def test_an_edited_entry_fails_loudly(store: Store) -> None:
    _fill(store)
    store.execute("UPDATE audit_log SET subject = 'p_someone_else' WHERE action = 'test.action1'")
    with pytest.raises(AuditChainBroken, match="was edited") as caught:
        audit.verify(store)
    assert "test.action1" in caught.value.problems[0]


def test_edited_details_fail(store: Store) -> None:
    _fill(store)
    store.execute("UPDATE audit_log SET details = ? WHERE action = 'test.action2'", ['{"i": 2}'])
    with pytest.raises(AuditChainBroken, match="test.action2"):
        audit.verify(store)


def test_a_removed_entry_fails(store: Store) -> None:
    _fill(store)
    store.execute("DELETE FROM audit_log WHERE action = 'test.action1'")
    with pytest.raises(AuditChainBroken, match="removed or reordered") as caught:
        audit.verify(store)
    assert "test.action2" in caught.value.problems[0]


def test_a_removed_last_entry_fails(store: Store) -> None:
    _fill(store)
    store.execute("DELETE FROM audit_log WHERE action = 'test.action3'")
    with pytest.raises(AuditChainBroken, match="removed from the end"):
        audit.verify(store)


def test_reordered_entries_fail(store: Store) -> None:
    _fill(store)
    ids = [e.id for e in audit.entries(store)]
    # swap the positions of entries 1 and 2 by swapping their ids
    store.execute("UPDATE audit_log SET id = -1 WHERE id = ?", [ids[1]])
    store.execute("UPDATE audit_log SET id = ? WHERE id = ?", [ids[1], ids[2]])
    store.execute("UPDATE audit_log SET id = ? WHERE id = -1", [ids[2]])
    with pytest.raises(AuditChainBroken, match="reordered"):
        audit.verify(store)


def test_cli_audit_verify_exits_1_on_tampering(workspace, cli) -> None:  # type: ignore[no-untyped-def]
    ws = workspace
    _fill(ws.store)
    ws.close()
    ok = cli("--workspace", str(ws.path), "audit", "verify", "--format", "json")
    assert ok.returncode == 0, ok.stderr
    from segmint.workspace import Workspace

    with Workspace.open(ws.path) as again:
        again.store.execute("UPDATE audit_log SET actor = 'nobody' WHERE action = 'test.action0'")
    bad = cli("--workspace", str(ws.path), "audit", "verify")
    assert bad.returncode == 1
    assert "TAMPERED" in bad.stderr and "test.action0" in bad.stderr


class _Counted:
    """The store, counting the rows its queries return (what a read of the log costs)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.rows = 0

    def fetchall(self, sql: str, params: object = ()) -> list[tuple[object, ...]]:
        found = self._store.fetchall(sql, params)  # type: ignore[arg-type]
        self.rows += len(found)
        return found

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)


def test_the_latest_entries_read_only_as_many_rows(store: Store) -> None:
    _fill(store, 30)
    counted = _Counted(store)
    latest = audit.entries(counted, limit=3)  # type: ignore[arg-type]
    assert [e.action for e in latest] == ["test.action27", "test.action28", "test.action29"]
    assert counted.rows == 3
    assert audit.entries(store, limit=100) == audit.entries(store)  # fewer than asked: all
    assert audit.entries(store, limit=10**20) == audit.entries(store)  # past BIGINT: all too


def test_filters_combine_with_the_limit(store: Store) -> None:
    for i in range(12):
        audit.append(store, "privacy.export" if i % 3 else "privacy.erase", actor=f"a{i % 2}",
                     at=T0 + timedelta(minutes=i), subject=f"p_{i % 4}")  # fmt: skip
    counted = _Counted(store)
    erases = audit.entries(counted, action="privacy.erase", limit=2)  # type: ignore[arg-type]
    assert [(e.action, e.subject) for e in erases] == [("privacy.erase", "p_2"),
                                                       ("privacy.erase", "p_1")]  # fmt: skip
    assert counted.rows == 2
    both = audit.entries(store, action="privacy.export", subject="p_1", limit=5)
    assert [e.occurred_at.minute for e in both] == [1, 5]
    by = audit.entries(store, actor="a0", subject="p_2", limit=1)
    assert [e.occurred_at.minute for e in by] == [10]
    either = audit.entries(store, subject=["p_1", "p_3"], limit=3)  # a person's profile ids
    assert [e.occurred_at.minute for e in either] == [7, 9, 11]
    assert audit.entries(store, subject=[], limit=3) == []


def test_cli_audit_list_shows_the_newest_in_order(workspace, cli) -> None:  # type: ignore[no-untyped-def]
    import json

    ws = workspace
    _fill(ws.store, 6)
    ws.close()
    listed = cli("-w", str(ws.path), "audit", "list", "--limit", "2", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    assert [e["action"] for e in json.loads(listed.stdout)] == ["test.action4", "test.action5"]
    one = cli("-w", str(ws.path), "audit", "list", "--limit", "5", "--action", "test.action2",
              "--format", "json")  # fmt: skip
    assert [(e["action"], e["subject"]) for e in json.loads(one.stdout)] == [
        ("test.action2", "p_2")
    ]
    mine = cli("-w", str(ws.path), "audit", "list", "--subject", "p_3", "--format", "json")
    assert [e["subject"] for e in json.loads(mine.stdout)] == ["p_3"]
    typo = cli("-w", str(ws.path), "audit", "list", "--action", "test.acton2")
    assert typo.returncode == 0 and "no audit entry has action 'test.acton2'" in typo.stderr
    assert "did you mean 'test.action2'" in typo.stderr


def test_every_action_written_is_listed() -> None:
    """``audit.ACTIONS`` (what ``audit list --action`` suggests from) names every action."""
    import re
    from pathlib import Path

    import segmint

    source = "\n".join(p.read_text() for p in Path(segmint.__file__).parent.rglob("*.py"))
    written = set(re.findall(r'"([a-z_]+\.[a-z_.]+)",\s*actor=', source))  # append(…)'s
    assert written == set(audit.ACTIONS), written ^ set(audit.ACTIONS)
