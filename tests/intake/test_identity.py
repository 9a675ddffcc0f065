from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from segmint.clock import FixedClock
from segmint.config import WorkspaceDef
from segmint.intake import Intake
from segmint.store.duckdb import DuckDBStore
from segmint.workspace import Workspace

from .conftest import NOW, identify, scalar, track


def profile_of(ws: Workspace, mid: str) -> str:
    return str(scalar(ws, "SELECT profile_id FROM events WHERE message_id = ?", [mid]))


def owner(ws: Workspace, kind: str, value: str) -> str:
    return str(
        scalar(ws, "SELECT profile_id FROM identities WHERE kind = ? AND value = ?", [kind, value])
    )


def test_anonymous_then_identify_is_one_profile(ws: Workspace, intake: Intake) -> None:
    intake.submit([track("m1", anonymousId="a1")], source="web")
    intake.submit([identify("m2", anonymousId="a1", userId="u1")], source="web")
    assert profile_of(ws, "m1") == profile_of(ws, "m2") == owner(ws, "user_id", "u1")
    assert scalar(ws, "SELECT count(*) FROM profile_merges") == 0


def test_identify_merges_two_devices_and_reattributes_events(ws: Workspace, intake: Intake) -> None:
    intake.submit([track("m1", anonymousId="phone")], source="web")
    intake.submit([track("m2", anonymousId="laptop")], source="web")
    assert profile_of(ws, "m1") != profile_of(ws, "m2")
    intake.submit([identify("m3", anonymousId="phone", userId="u1")], source="web")
    result = intake.submit([identify("m4", anonymousId="laptop", userId="u1")], source="web")
    survivor = owner(ws, "user_id", "u1")
    assert {profile_of(ws, m) for m in ("m1", "m2", "m3", "m4")} == {survivor}
    assert [(m.into_profile, m.reason) for m in result.merges] == [
        (survivor, "identify shares anonymous_id")
    ]
    gone = result.merges[0].from_profile
    assert scalar(ws, "SELECT merged_into FROM profiles WHERE profile_id = ?", [gone]) == survivor
    assert scalar(ws, "SELECT count(*) FROM profile_merges WHERE from_profile = ?", [gone]) == 1


def test_email_links_profiles_case_insensitively(ws: Workspace, intake: Intake) -> None:
    intake.submit(
        [identify("m1", anonymousId="a1", traits={"email": "Ann@Example.com "})], source="crm"
    )
    intake.submit(
        [track("m2", anonymousId="a2", context={"traits": {"email": "ann@example.com"}})],
        source="web",
    )
    assert profile_of(ws, "m1") == profile_of(ws, "m2") == owner(ws, "email", "ann@example.com")


def test_anonymous_id_claimed_by_two_users_stays_with_the_first(
    ws: Workspace, intake: Intake
) -> None:
    intake.submit([identify("m1", anonymousId="shared", userId="u1")], source="web")
    result = intake.submit([identify("m2", anonymousId="shared", userId="u2")], source="web")
    first, second = owner(ws, "user_id", "u1"), owner(ws, "user_id", "u2")
    assert first != second
    assert owner(ws, "anonymous_id", "shared") == first
    assert profile_of(ws, "m2") == second
    assert result.merges == ()
    rows = ws.store.fetchall(
        "SELECT kind, value, owner_profile, claimant_profile, message_id FROM identity_conflicts"
    )
    assert rows == [("anonymous_id", "shared", first, second, "m2")]
    # Later anonymous traffic on the shared device still goes to the first user.
    intake.submit([track("m3", anonymousId="shared")], source="web")
    assert profile_of(ws, "m3") == first


def test_email_shared_by_two_users_never_merges_them(ws: Workspace, intake: Intake) -> None:
    intake.submit([identify("m1", userId="u1", traits={"email": "desk@corp.com"})], source="crm")
    intake.submit([identify("m2", userId="u2", traits={"email": "desk@corp.com"})], source="crm")
    assert owner(ws, "user_id", "u1") != owner(ws, "user_id", "u2")
    assert owner(ws, "email", "desk@corp.com") == owner(ws, "user_id", "u1")
    assert scalar(ws, "SELECT count(*) FROM profile_merges") == 0


def test_alias_merges_known_users_explicitly(ws: Workspace, intake: Intake) -> None:
    intake.submit([identify("m1", userId="old-id")], source="crm")
    intake.submit([identify("m2", userId="new-id")], source="crm")
    result = intake.submit(
        [{"type": "alias", "messageId": "m3", "userId": "new-id", "previousId": "old-id"}],
        source="crm",
    )
    assert owner(ws, "user_id", "old-id") == owner(ws, "user_id", "new-id") == profile_of(ws, "m1")
    assert [m.reason for m in result.merges] == ["alias"]


def test_alias_of_an_unknown_previous_id_links_it(ws: Workspace, intake: Intake) -> None:
    intake.submit(
        [{"type": "alias", "messageId": "m1", "userId": "u1", "previousId": "anon-9"}],
        source="web",
    )
    intake.submit([track("m2", anonymousId="anon-9")], source="web")
    assert profile_of(ws, "m2") == owner(ws, "user_id", "u1")


def test_merges_within_one_batch_reach_every_event(ws: Workspace, intake: Intake) -> None:
    result = intake.submit(
        [
            track("m1", anonymousId="a1"),
            track("m2", anonymousId="a2"),
            identify("m3", anonymousId="a1", userId="u1"),
            identify("m4", anonymousId="a2", userId="u1"),
        ],
        source="web",
    )
    survivor = owner(ws, "user_id", "u1")
    assert {e.profile_id for e in result.events} == {survivor}
    assert {profile_of(ws, m) for m in ("m1", "m2", "m3", "m4")} == {survivor}
    assert len(result.merges) == 1


def test_identify_traits_most_recent_wins_after_merge(ws: Workspace, intake: Intake) -> None:
    from segmint.intake.identity import identify_traits

    intake.submit(
        [identify("m1", anonymousId="a1", traits={"first_name": "Ann", "plan": "free"},
                  timestamp="2026-01-02T00:00:00Z")],
        source="web",
    )  # fmt: skip
    intake.submit(
        [identify("m2", userId="u1", traits={"first_name": "Anne"},
                  timestamp="2026-01-01T00:00:00Z")],
        source="crm",
    )  # fmt: skip
    intake.submit([identify("m3", anonymousId="a1", userId="u1")], source="web")
    traits = identify_traits(ws.store, owner(ws, "user_id", "u1"))
    assert traits == {"first_name": "Ann", "plan": "free"}  # the later identify wins


def test_a_second_intake_sees_the_first_ones_links(ws: Workspace, clock: FixedClock) -> None:
    first, second = Intake(ws, clock), Intake(ws, clock)
    second.submit([track("m0", anonymousId="warm")], source="web")  # second caches the graph
    first.submit([identify("m1", anonymousId="a1", userId="u1")], source="web")
    second.submit([track("m2", anonymousId="a1")], source="web")
    assert profile_of(ws, "m2") == profile_of(ws, "m1")


ids = st.sampled_from(["a1", "a2", "a3", "a4"])
users = st.sampled_from(["u1", "u2", "u3"])
emails = st.sampled_from(["x@e.com", "y@e.com"])


@st.composite
def messages(draw: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i in range(draw(st.integers(1, 12))):
        kind = draw(st.sampled_from(["track", "identify", "identify", "alias"]))
        msg: dict[str, Any] = {"type": kind, "messageId": f"m{i}"}
        if kind == "alias":
            msg |= {"userId": draw(users), "previousId": draw(st.one_of(ids, users))}
        else:
            if draw(st.booleans()):
                msg["anonymousId"] = draw(ids)
            if draw(st.booleans()) or "anonymousId" not in msg:
                msg["userId"] = draw(users)
            if kind == "identify" and draw(st.booleans()):
                msg["traits"] = {"email": draw(emails)}
            if kind == "track":
                msg["event"] = "E"
        out.append(msg)
    return out


def snapshot(ws: Workspace) -> tuple[list[Any], list[Any]]:
    events = ws.store.fetchall("SELECT message_id, profile_id FROM events ORDER BY message_id")
    idents = ws.store.fetchall("SELECT kind, value, profile_id FROM identities ORDER BY 1, 2")
    return events, idents


_STORES: list[DuckDBStore] = []
_TABLES = ("events", "profiles", "identities", "profile_merges", "identity_conflicts")


def _fresh_workspaces() -> tuple[Workspace, Workspace]:
    """Two empty in-memory workspaces, reused across examples (migrating is the slow part)."""
    if not _STORES:
        _STORES.extend(DuckDBStore(":memory:") for _ in range(2))
    for store in _STORES:
        for table in _TABLES:
            store.execute(f"DELETE FROM {table}")
    one, many = (Workspace(Path("unused"), WorkspaceDef(name="t"), _store=s) for s in _STORES)
    return one, many


@settings(max_examples=30, deadline=None)
@given(batch=messages())
def test_one_commit_or_one_per_message_agree(batch: list[dict[str, Any]]) -> None:
    """Resolving a stream in one transaction or message by message gives the same graph."""
    clock = FixedClock(NOW)
    one, many = _fresh_workspaces()
    Intake(one, clock).submit(batch, source="t")
    sequential = Intake(many, clock)
    for message in batch:
        sequential.submit([message], source="t")
    assert snapshot(one) == snapshot(many)
    # Every event sits on a live profile.
    live = one.store.fetchall(
        "SELECT count(*) FROM events e JOIN profiles p USING (profile_id) "
        "WHERE p.merged_into IS NULL"
    )[0][0]
    assert live == len({m["messageId"] for m in batch})
    # Each userId is on exactly one profile, and it is a live one.
    dead = one.store.fetchall(
        "SELECT count(*) FROM identities i JOIN profiles p USING (profile_id) "
        "WHERE p.merged_into IS NOT NULL"
    )[0][0]
    assert dead == 0
