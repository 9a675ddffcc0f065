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
