"""Consent and suppression: recording, identify traits, and the gate under both policies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segmint.clock import FixedClock
from segmint.config.model import ConsentDef
from segmint.deliver.consent import (
    consent_history,
    current_consents,
    record_address_consent,
    record_consent,
    suppress,
    sync_trait_consents,
    trait_consents,
    unsuppress,
)
from segmint.deliver.errors import CampaignError
from segmint.deliver.gate import ConsentGate
from segmint.deliver.subjects import ConsentSubject, consent_subject
from segmint.intake.errors import UnknownPersonError
from segmint.profiles import Profile
from segmint.store import Store
from segmint.workspace import Workspace

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
OPT_IN = ConsentDef(policy="opt_in", topics=("newsletter", "offers"))
OPT_OUT = ConsentDef(policy="opt_out", topics=("newsletter", "offers"))


def person(pid: str, email: str | None = None) -> Profile:
    return Profile(pid, {"email": email if email is not None else f"{pid}@example.com"})


def gate(
    store: Store, consent: ConsentDef, topic: str = "offers", at: datetime = T0
) -> ConsentGate:
    return ConsentGate(store, consent, topic, at, "email")


def test_opt_in_needs_a_grant_and_opt_out_needs_no_refusal(store: Store) -> None:
    record_consent(store, "yes", "offers", "granted", source="api", at=T0 - timedelta(days=1))
    record_consent(store, "no", "offers", "denied", source="api", at=T0 - timedelta(days=1))
    opt_in, opt_out = gate(store, OPT_IN), gate(store, OPT_OUT)
    assert [opt_in.check(person(p)) for p in ("yes", "no", "silent")] == [
        None,
        "no_consent",
        "no_consent",
    ]
    assert [opt_out.check(person(p)) for p in ("yes", "no", "silent")] == [
        None,
        "no_consent",
        None,
    ]


def test_latest_change_wins_per_topic_and_star_covers_all(store: Store) -> None:
    record_consent(store, "p", "*", "granted", source="signup", at=T0 - timedelta(days=3))
    record_consent(store, "p", "offers", "unsubscribed", source="link", at=T0 - timedelta(days=1))
    assert gate(store, OPT_IN, "newsletter").check(person("p")) is None
    assert gate(store, OPT_IN, "offers").check(person("p")) == "unsubscribed"
    # A change after as_of does not count yet.
    record_consent(store, "p", "offers", "granted", source="api", at=T0 + timedelta(hours=1))
    assert gate(store, OPT_IN, "offers").check(person("p")) == "unsubscribed"
    assert gate(store, OPT_IN, "offers", T0 + timedelta(hours=2)).check(person("p")) is None
    history = consent_history(store, "p")
    assert [(c.topic, c.status, c.source) for c in history] == [
        ("*", "granted", "signup"),
        ("offers", "unsubscribed", "link"),
        ("offers", "granted", "api"),
    ]
    assert history[0].occurred_at == T0 - timedelta(days=3)


def test_suppressions_override_consent_with_their_own_reason(store: Store) -> None:
    for pid in ("b", "c", "m"):
        record_consent(store, pid, "*", "granted", source="api", at=T0)
    suppress(store, "B@Example.com", "bounce", source="smtp", at=T0)
    suppress(store, "c@example.com", "complaint", source="fbl", at=T0)
    suppress(store, "m@example.com", "manual", source="cli", at=T0)
    g = gate(store, OPT_OUT)
    assert [g.check(person(p)) for p in ("b", "c", "m")] == [
        "suppressed_bounce",
        "complained",
        "suppressed",
    ]
    assert unsuppress(store, "b@example.com") and not unsuppress(store, "b@example.com")
    assert gate(store, OPT_OUT).check(person("b")) is None


def test_profiles_without_a_deliverable_address_are_skipped(duck_store: Store) -> None:
    g = gate(duck_store, OPT_OUT)
    for email in ("", "not-an-address", "a@b", "a b@c.d", 42):
        assert g.check(Profile("p", {"email": email})) == "no_email", email
    assert g.check(Profile("p", {})) == "no_email"
    assert g.check(Profile("p", {"email": " p@example.com "})) is None


def test_trait_consent_shapes() -> None:
    assert trait_consents({"email_consent": True}, OPT_IN) == [("*", "granted")]
    assert trait_consents({"email_consent": {"offers": False, "newsletter": True}}, OPT_IN) == [
        ("offers", "denied"),
        ("newsletter", "granted"),
    ]
    assert trait_consents({"email_consent_offers": False, "email_consent": "yes"}, OPT_IN) == [
        ("offers", "denied")
    ]
    assert trait_consents({"email_consent": True}, ConsentDef(trait=None)) == []


def test_identify_traits_become_consent_changes_once(workspace: Workspace) -> None:
    from segmint.intake import Intake

    intake = Intake(workspace, FixedClock(T0))
    result = intake.submit(
        [
            {
                "type": "identify",
                "userId": "u1",
                "traits": {"email_consent": True},
                "timestamp": "2026-02-01T00:00:00Z",
            },
            {
                "type": "identify",
                "userId": "u2",
                "traits": {"email_consent_offers": False},
                "timestamp": "2026-02-02T00:00:00Z",
            },
            {"type": "identify", "userId": "u3", "traits": {"first_name": "Ann"}},
        ],
        source="import:crm",
    )
    pids = {e.user_id: e.profile_id for e in result.events}
    store = workspace.store
    assert sync_trait_consents(store, workspace.definition.consent) == 2
    assert sync_trait_consents(store, workspace.definition.consent) == 0
    [change] = consent_history(store, pids["u1"])
    assert (change.topic, change.status, change.source) == ("*", "granted", "identify:import:crm")
    assert change.occurred_at == datetime(2026, 2, 1, tzinfo=UTC)
    g = gate(store, workspace.definition.consent)
    assert g.check(person(pids["u1"])) is None
    assert g.check(person(pids["u2"])) == "no_consent"


def test_unknown_status_is_refused(store: Store) -> None:
    with pytest.raises(CampaignError, match="unknown consent status"):
        record_consent(store, "p", "offers", "maybe", source="api", at=T0)  # type: ignore[arg-type]


def test_repeated_identify_traits_do_not_undo_an_unsubscribe(workspace: Workspace) -> None:
    from segmint.intake import Intake

    intake = Intake(workspace, FixedClock(T0))
    store, consent = workspace.store, workspace.definition.consent

    def identify(value: bool, day: int) -> str:
        result = intake.submit(
            [{"type": "identify", "userId": "u1", "traits": {"email_consent": value},
              "timestamp": f"2026-02-{day:02d}T00:00:00Z"}],
            source="app",
        )  # fmt: skip
        return result.events[0].profile_id

    pid = identify(True, 1)
    assert sync_trait_consents(store, consent) == 1
    record_consent(store, pid, "offers", "unsubscribed", source="link", at=T0 - timedelta(days=20))
    identify(True, 15)  # the app repeats its traits: not a change
    assert sync_trait_consents(store, consent) == 0
    assert gate(store, consent).check(person(pid)) == "unsubscribed"
    identify(False, 16)
    identify(True, 17)  # the person ticked the box again in the app: a real change
    assert sync_trait_consents(store, consent) == 2
    assert gate(store, consent).check(person(pid)) is None
    assert [c.source for c in consent_history(store, pid)] == [
        "identify:app", "link", "identify:app", "identify:app"
    ]  # fmt: skip


def test_an_unsubscribe_under_a_profile_merged_away_holds_for_the_survivor(store: Store) -> None:
    rows = [("old", T0, T0, "mid"), ("mid", T0, T0, "new"), ("new", T0, T0, None)]
    store.executemany(
        "INSERT INTO profiles (profile_id, created_at, updated_at, merged_into) "
        "VALUES (?, ?, ?, ?)",
        [(p, c.replace(tzinfo=None), u.replace(tzinfo=None), m) for p, c, u, m in rows],
    )
    record_consent(store, "new", "offers", "granted", source="api", at=T0 - timedelta(days=3))
    # a link in an email sent to the old profile, clicked after the merges
    record_consent(
        store, "old", "offers", "unsubscribed", source="unsubscribe_link", at=T0 - timedelta(days=1)
    )
    assert gate(store, OPT_IN).check(person("new")) == "unsubscribed"
    record_consent(store, "mid", "offers", "granted", source="api", at=T0 - timedelta(hours=1))
    assert gate(store, OPT_IN).check(person("new")) is None  # the latest statement wins
    assert [(c.subject, c.status) for c in consent_history(store, "new")] == [
        ("new", "granted"),
        ("old", "unsubscribed"),
        ("mid", "granted"),
    ]


def test_an_address_statement_counts_for_whoever_sends_to_or_owns_the_address(
    store: Store,
) -> None:
    record_address_consent(store, " Zoe@Example.com", "offers", "denied", source="cli",
                           at=T0 - timedelta(days=1))  # fmt: skip
    assert store.fetchall("SELECT address FROM address_consents") == [("zoe@example.com",)]
    # the address campaigns send to, in any case
    assert gate(store, OPT_OUT).check(person("p", "ZOE@example.com ")) == "no_consent"
    assert gate(store, OPT_OUT, "newsletter").check(person("p", "zoe@example.com")) is None
    # an email identity of the profile, though it is sent to another address
    store.execute("INSERT INTO profiles VALUES ('p', ?, ?, NULL)", [T0.replace(tzinfo=None)] * 2)
    store.execute(
        "INSERT INTO identities VALUES ('email', 'zoe@example.com', 'p', ?)",
        [T0.replace(tzinfo=None)],
    )
    assert gate(store, OPT_OUT).check(person("p", "work@example.com")) == "no_consent"
    assert current_consents(store, "offers", T0) == {"p": "denied"}
    assert [(c.subject, c.status) for c in consent_history(store, "p")] == [
        ("email:zoe@example.com", "denied")
    ]


def test_statements_about_profile_and_address_compete_by_time_the_stricter_on_a_tie(
    store: Store,
) -> None:
    day = timedelta(days=1)
    record_consent(store, "p", "offers", "granted", source="api", at=T0 - 2 * day)
    record_address_consent(store, "p@example.com", "offers", "denied", source="cli", at=T0 - day)
    assert gate(store, OPT_IN).check(person("p")) == "no_consent"
    record_consent(store, "p", "offers", "granted", source="api", at=T0 - day)  # same instant
    assert gate(store, OPT_IN).check(person("p")) == "no_consent"
    record_consent(store, "p", "*", "granted", source="api", at=T0 - day / 2)
    assert gate(store, OPT_IN).check(person("p")) is None
    record_address_consent(store, "p@example.com", "*", "unsubscribed", source="link", at=T0)
    assert gate(store, OPT_IN).check(person("p")) == "unsubscribed"
    # a run at an earlier instant: the unsubscribe was not made yet then, but the message
    # would go out now, when it is stored: it stops it (a grant made later would not count)
    assert gate(store, OPT_IN, at=T0 - day / 4).check(person("p")) == "unsubscribed"
    assert gate(store, OPT_IN, at=T0 - 3 * day).check(person("p")) == "no_consent"


def test_a_withdrawal_stored_after_the_runs_instant_stops_the_message(store: Store) -> None:
    """A run ``--as-of`` an earlier instant read consent as it was then: a person who had
    unsubscribed since was mailed now. A grant made since still does not count."""
    day = timedelta(days=1)
    record_consent(store, "p", "offers", "granted", source="api", at=T0 - 2 * day)
    record_consent(store, "q", "offers", "denied", source="api", at=T0 - 2 * day)
    record_consent(store, "p", "*", "unsubscribed", source="link", at=T0 + day)
    record_consent(store, "q", "offers", "granted", source="api", at=T0 + day)
    record_consent(store, "r", "offers", "granted", source="api", at=T0 - 2 * day)
    record_address_consent(store, "r@example.com", "offers", "denied", source="cli", at=T0 + day)
    earlier = gate(store, OPT_IN, at=T0)
    assert earlier.check(person("p")) == "unsubscribed"
    assert earlier.check(person("q")) == "no_consent"  # its grant came after the instant
    assert earlier.check(person("r")) == "no_consent"  # about its address, stored since


def test_a_consent_subject_is_a_profile_or_an_address_never_a_guess(store: Store) -> None:
    at = T0.replace(tzinfo=None)
    store.execute("INSERT INTO profiles VALUES ('p_1', ?, ?, NULL)", [at, at])
    store.execute("INSERT INTO identities VALUES ('email', 'ann@example.com', 'p_1', ?)", [at])
    assert consent_subject(store, "ANN@example.com") == ConsentSubject(profile_id="p_1")
    assert consent_subject(store, "email:New@Example.com") == ConsentSubject(
        address="new@example.com"
    )
    assert consent_subject(store, " new@example.com") == ConsentSubject(address="new@example.com")
    for ref in ("nobody", "user_id:new@example.com", "email:nobody", "emial:new@example.com"):
        with pytest.raises(UnknownPersonError):
            consent_subject(store, ref)


statements = st.lists(
    st.tuples(
        st.sampled_from(["profile", "address"]),
        st.sampled_from(["offers", "newsletter", "*"]),
        st.sampled_from(["granted", "denied", "unsubscribed"]),
        st.integers(0, 4),
    ),
    max_size=8,
)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(statements, st.integers(0, 5), st.sampled_from(["opt_in", "opt_out"]))
def test_the_gate_takes_the_latest_statement_of_profile_or_address(
    duck_store: Store, made: list[tuple[str, str, str, int]], now: int, policy: str
) -> None:
    store = duck_store
    store.execute("DELETE FROM consents")
    store.execute("DELETE FROM address_consents")
    day = timedelta(days=1)
    for target, topic, status, when in made:
        at = T0 + when * day
        if target == "profile":
            record_consent(store, "p", topic, status, source="t", at=at)  # type: ignore[arg-type]
        else:
            record_address_consent(store, "P@example.com", topic, status, source="t", at=at)  # type: ignore[arg-type]
    # the spec: per kind the last statement made by as_of (in recording order on a tie);
    # between the two kinds the later, or the stricter when made at the same instant
    latest: dict[str, tuple[int, str]] = {}
    for target, topic, status, when in made:
        counts = topic in ("offers", "*") and when <= now
        if counts and (target not in latest or when >= latest[target][0]):
            latest[target] = (when, status)
    strict = {"granted": 0, "denied": 1, "unsubscribed": 2}
    final = max(latest.values(), key=lambda s: (s[0], strict[s[1]]), default=None)
    expected = {"unsubscribed": "unsubscribed", "denied": "no_consent", "granted": None}
    want = expected[final[1]] if final else ("no_consent" if policy == "opt_in" else None)
    # and a withdrawal stored since as_of, the last of all statements, stops a message too
    stored: dict[str, tuple[int, str]] = {}
    for target, topic, status, when in made:
        if topic in ("offers", "*") and (target not in stored or when >= stored[target][0]):
            stored[target] = (when, status)
    last = max(stored.values(), key=lambda s: (s[0], strict[s[1]]), default=None)
    if want is None and last is not None and last[1] != "granted":
        want = expected[last[1]]
    consent = ConsentDef(policy=policy, topics=("newsletter", "offers"))  # type: ignore[arg-type]
    assert gate(store, consent, "offers", T0 + now * day).check(person("p")) == want


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "c", "d"]),
            st.sampled_from(["offers", "*"]),
            st.sampled_from(["granted", "denied", "unsubscribed"]),
            st.integers(0, 4),
        ),
        max_size=10,
    ),
    st.sets(st.sampled_from(["a", "b", "c", "d"])),
)
def test_a_gate_for_some_people_decides_them_as_the_full_gate_does(
    duck_store: Store, made: list[tuple[str, str, str, int]], asked: set[str]
) -> None:
    store = duck_store
    store.execute("DELETE FROM consents")
    store.execute("DELETE FROM profiles")
    # 'b' was merged into 'a': its statements count for 'a' (a journey round asks about 'a')
    store.executemany(
        "INSERT INTO profiles (profile_id, created_at, updated_at, merged_into) "
        "VALUES (?, ?, ?, ?)",
        [(p, T0.replace(tzinfo=None), T0.replace(tzinfo=None), m)
         for p, m in (("a", None), ("b", "a"), ("c", None), ("d", None))],
    )  # fmt: skip
    for pid, topic, status, when in made:
        at = T0 + when * timedelta(days=1)
        record_consent(store, pid, topic, status, source="t", at=at)  # type: ignore[arg-type]
    at = T0 + timedelta(days=5)
    full = ConsentGate(store, OPT_IN, "offers", at, "email")
    some = ConsentGate(store, OPT_IN, "offers", at, "email", profile_ids=sorted(asked))
    for pid in sorted(asked):
        assert some.check(person(pid)) == full.check(person(pid)), pid
