"""One resolver for every id a person types, and the one walk of ``merged_into`` chains."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segmint.intake import Intake
from segmint.intake.errors import AmbiguousPersonError, PersonRefError, UnknownPersonError
from segmint.intake.identity import (
    follow_merges,
    merge_chains,
    merge_roots,
    resolve_person,
    survivor,
)
from segmint.store import Store
from segmint.store.duckdb import DuckDBStore
from segmint.workspace import Workspace

from .conftest import identify, track

AT = datetime(2026, 1, 1)


def seed(store: Store) -> None:
    store.executemany(
        "INSERT INTO profiles VALUES (?, ?, ?, ?)",
        [("p_1", AT, AT, None), ("p_old", AT, AT, "p_mid"), ("p_mid", AT, AT, "p_1")],
    )
    store.executemany(
        "INSERT INTO identities VALUES (?, ?, ?, ?)",
        [
            ("user_id", "42", "p_1", AT),
            ("email", "ada@example.com", "p_1", AT),
            ("anonymous_id", "a-9", "p_1", AT),
            ("anonymous_id", "a-old", "p_old", AT),  # not moved yet: still followed
            ("user_id", "urn:shop:7", "p_1", AT),
        ],
    )


def test_each_form_finds_the_profile(store: Store) -> None:
    seed(store)
    refs = (
        "p_1", "42", "ada@example.com", "ADA@Example.COM", " ada@example.com ", "a-9",
        "user_id:42", "userId:42", "email:Ada@Example.com", "anonymous_id:a-9",
        "profile_id:p_1", "profile:p_1", "urn:shop:7", "user_id:urn:shop:7",
    )  # fmt: skip
    for ref in refs:
        assert resolve_person(store, ref) == "p_1", ref


def test_merged_profiles_and_their_identities_lead_to_the_survivor(store: Store) -> None:
    seed(store)
    assert resolve_person(store, "p_old") == "p_1"  # two hops
    assert resolve_person(store, "p_mid") == "p_1"
    assert resolve_person(store, "a-old") == "p_1"
    assert survivor(store, "p_old") == "p_1" and survivor(store, "nobody") is None
    assert merge_roots(store) == {"p_old": "p_1", "p_mid": "p_1"}


def test_unknown_ids_say_what_was_tried(store: Store) -> None:
    seed(store)
    with pytest.raises(UnknownPersonError) as bare:
        resolve_person(store, "nobody@example.com", field="PERSON")
    assert str(bare.value) == (
        "no person matches 'nobody@example.com': "
        "tried it as profile id, user id, email and anonymous id"
    )
    assert bare.value.field == "PERSON" and isinstance(bare.value, LookupError)
    with pytest.raises(UnknownPersonError, match="no person has email '42'"):
        resolve_person(store, "email:42")
    with pytest.raises(UnknownPersonError, match="did you mean 'email:ada@example.com'"):
        resolve_person(store, "emial:ada@example.com")
    for ref in ("", "user_id:", "p_2"):
        with pytest.raises(UnknownPersonError):
            resolve_person(store, ref)
    with pytest.raises(UnknownPersonError, match="^no id given: name a person by"):
        resolve_person(store, " \t")
    with pytest.raises(UnknownPersonError, match="'42' .without the spaces around it. matches"):
        resolve_person(store, " 42 ")  # ids are kept as sent: asked, not assumed


def test_a_value_naming_two_people_asks_for_kind_value(store: Store) -> None:
    seed(store)
    store.execute("INSERT INTO profiles VALUES ('p_2', ?, ?, NULL)", [AT, AT])
    store.execute("INSERT INTO identities VALUES ('user_id', 'ada@example.com', 'p_2', ?)", [AT])
    assert resolve_person(store, "Ada@example.com") == "p_1"  # user ids keep their case
    with pytest.raises(AmbiguousPersonError, match="KIND:VALUE") as exact:
        resolve_person(store, "ada@example.com")
    assert exact.value.matches == {"email:ada@example.com": "p_1", "user_id:ada@example.com": "p_2"}
    assert resolve_person(store, "user_id:ada@example.com") == "p_2"
    assert resolve_person(store, "email:ada@example.com") == "p_1"


def test_workspace_identifiers_are_kinds_too(store: Store) -> None:
    seed(store)
    store.execute("INSERT INTO identities VALUES ('phone', '+4912345', 'p_1', ?)", [AT])
    assert resolve_person(store, "phone:+4912345", ("email", "phone")) == "p_1"
    assert resolve_person(store, " +4912345", ("email", "phone")) == "p_1"
    with pytest.raises(PersonRefError):
        resolve_person(store, "+4912345")  # phone is no identifier of this workspace


def test_intake_merges_are_followed(ws: Workspace, intake: Intake) -> None:
    intake.submit([track("m1", anonymousId="phone")], source="web")
    gone = str(ws.store.fetchall("SELECT profile_id FROM events")[0][0])
    intake.submit([identify("m2", userId="u1", traits={"email": "Bo@Example.com"})], source="web")
    intake.submit([identify("m3", userId="u1", anonymousId="phone")], source="web")
    kept = resolve_person(ws.store, "u1")
    assert gone != kept
    for ref in (gone, "phone", "BO@example.com", f"profile_id:{gone}"):
        assert resolve_person(ws.store, ref) == kept, ref


# --- the merge walk ----------------------------------------------------------------------

chains = st.lists(st.integers(0, 30), max_size=40).map(
    lambda hops: {f"p{i}": f"p{i + 1 + h}" for i, h in enumerate(hops)}
)


def _walk(merged: dict[str, str], pid: str) -> str:
    """The plain walk (acyclic input only)."""
    while pid in merged:
        pid = merged[pid]
    return pid


@given(chains)
def test_follow_merges_ends_at_a_profile_never_merged(merged: dict[str, str]) -> None:
    roots = merge_chains(merged)
    assert set(roots) == set(merged)
    for gone, root in roots.items():
        assert root not in merged and root == _walk(merged, gone)
        assert follow_merges(merged, root) == root


@given(st.dictionaries(st.sampled_from("abcdef"), st.sampled_from("abcdef"), max_size=6))
def test_follow_merges_stops_on_cycles(merged: dict[str, str]) -> None:
    for pid in "abcdef":
        end = follow_merges(merged, pid)
        assert end == pid or end in merged.values()


@settings(max_examples=25, deadline=None)
@given(
    st.from_regex(r"[a-z0-9]{1,8}@[a-z]{1,6}\.(com|org)", fullmatch=True),
    st.lists(st.booleans(), min_size=1, max_size=30),
    st.sampled_from(["", " ", "  \t"]),
    st.booleans(),
)
def test_an_email_resolves_in_any_case_and_spacing(
    tmp_path_factory: pytest.TempPathFactory,
    address: str,
    upper: list[bool],
    pad: str,
    prefixed: bool,
) -> None:
    store = DuckDBStore(Path(tmp_path_factory.mktemp("r")) / "s.duckdb")
    try:
        store.execute("INSERT INTO profiles VALUES ('p_1', ?, ?, NULL)", [AT, AT])
        store.execute("INSERT INTO identities VALUES ('email', ?, 'p_1', ?)", [address, AT])
        typed = "".join(c.upper() if upper[i % len(upper)] else c for i, c in enumerate(address))
        ref = f"{'email:' if prefixed else ''}{pad}{typed}{pad}"
        assert resolve_person(store, ref) == "p_1"
    finally:
        store.close()


def test_a_profile_known_only_by_its_events_or_trait_values_is_found(store: Store) -> None:
    store.execute(
        'INSERT INTO trait_values (profile_id, "values", as_of) VALUES (?, ?, ?)',
        ["bulk-1", "{}", AT],
    )
    assert resolve_person(store, "bulk-1") == "bulk-1"
    with pytest.raises(UnknownPersonError):
        resolve_person(store, "bulk-2")
