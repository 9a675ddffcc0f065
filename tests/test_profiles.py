"""Profile references: profile ids, KIND:VALUE and bare identities resolve to one profile."""

from __future__ import annotations

from datetime import datetime

from segmint.profiles import resolve_profile_ref
from segmint.store import Store

AT = datetime(2026, 1, 1)


def seed(store: Store) -> None:
    store.execute("INSERT INTO profiles VALUES ('p_1', ?, ?, NULL)", [AT, AT])
    store.executemany(
        "INSERT INTO identities VALUES (?, ?, 'p_1', ?)",
        [("user_id", "42", AT), ("email", "ada@example.com", AT), ("anonymous_id", "a-9", AT)],
    )


def test_each_form_finds_the_profile(store: Store) -> None:
    seed(store)
    for ref in ("p_1", "42", "ada@example.com", "a-9", "user_id:42", "email:ada@example.com"):
        assert resolve_profile_ref(store, ref) == "p_1", ref


def test_unknown_or_mismatched_kind_is_none(store: Store) -> None:
    seed(store)
    assert resolve_profile_ref(store, "nobody@example.com") is None
    assert resolve_profile_ref(store, "email:42") is None
