"""Invariants: sealing round-trips any JSON value; any single edit of the audit log is caught."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segmint.privacy import audit
from segmint.privacy.errors import AuditChainBroken
from segmint.privacy.keys import Keyring, Vault, decode_master_key, generate_master_key
from segmint.store import Store

from .conftest import T0

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=40)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12,
)  # fmt: skip


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=JSON, pid=st.from_regex(r"p_[0-9a-f]{8}", fullmatch=True))
def test_seal_then_unseal_is_the_identity(tmp_path: Path, value: object, pid: str) -> None:
    ring = _ring(tmp_path)
    sealed = ring.seal(pid, value)
    assert sealed.startswith(f"enc:{pid}:")
    assert ring.unseal(sealed) == value
    assert ring.seal(pid, value) != sealed  # a fresh nonce each time


_RINGS: dict[Path, Keyring] = {}


def _ring(tmp_path: Path) -> Keyring:
    if tmp_path not in _RINGS:
        key = decode_master_key(generate_master_key(), "test")
        _RINGS[tmp_path] = Keyring(key, Vault(tmp_path / "vault.sqlite"))
    return _RINGS[tmp_path]


EDITS = st.sampled_from(("actor", "action", "subject", "details", "occurred_at", "delete"))


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(position=st.integers(0, 5), edit=EDITS)
def test_any_single_edit_is_caught(duck_store: Store, position: int, edit: str) -> None:
    store = duck_store
    store.execute("DELETE FROM audit_log")
    store.execute("DELETE FROM meta WHERE key = 'audit_head'")
    for i in range(6):
        audit.append(store, f"a{i}", actor="t", at=T0 + timedelta(seconds=i),
                     subject=f"s{i}", details={"i": i})  # fmt: skip
    audit.verify(store)
    target = audit.entries(store)[position].id
    sets = {
        "actor": "actor = 'x'", "action": "action = 'x'", "subject": "subject = NULL",
        "details": "details = '{\"i\": -1}'", "occurred_at": "occurred_at = occurred_at + 1",
    }  # fmt: skip
    if edit == "delete":
        store.execute("DELETE FROM audit_log WHERE id = ?", [target])
    elif edit == "occurred_at":
        store.execute(
            "UPDATE audit_log SET occurred_at = occurred_at + INTERVAL 1 SECOND WHERE id = ?",
            [target],
        )
    else:
        store.execute(f"UPDATE audit_log SET {sets[edit]} WHERE id = ?", [target])  # noqa: S608
    try:
        audit.verify(store)
    except AuditChainBroken as exc:
        assert exc.problems
    else:
        raise AssertionError(f"{edit} of entry {position} went unnoticed")
