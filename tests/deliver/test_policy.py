"""The delivery policy: no generated history ever breaks a cap, quiet hours or consent.

Messages are generated (profiles with time zones and consent, due instants, topics,
priorities, skip-or-delay) and run through :class:`DeliveryPolicy` the way the journey
engine does: in due order, a delayed message decided again, in full, at its new instant.
The gate is the real :class:`ConsentGate` over a real store.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segmint.config.journeys import DeliveryDef, FrequencyCap, QuietHours
from segmint.config.model import ConsentDef
from segmint.deliver.consent import record_consent, suppress
from segmint.deliver.gate import ConsentGate
from segmint.deliver.policy import (
    DeliveryPolicy,
    Message,
    SendHistory,
    SendTimes,
    in_quiet_hours,
    profile_zone,
    quiet_end,
)
from segmint.profiles import Profile
from segmint.store import Store, open_store

T0 = datetime(2026, 3, 28, 0, tzinfo=UTC)  # a daylight-saving change in Europe tomorrow
CONSENT = ConsentDef(policy="opt_in", topics=("newsletter", "offers"))
ZONES = ("UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Pacific/Auckland", "Nope/X")
PEOPLE = {  # profile -> (consent statement for every topic, suppressed)
    "granted": ("granted", False),
    "denied": ("denied", False),
    "unsubscribed": ("unsubscribed", False),
    "silent": (None, False),
    "bounced": ("granted", True),
    "offers_only": ("offers", False),
}


@pytest.fixture(scope="module")
def consent_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    path: Path = tmp_path_factory.mktemp("policy") / "s.duckdb"
    store = open_store(f"duckdb:{path}")
    early = T0 - timedelta(days=30)
    for pid, (status, suppressed) in PEOPLE.items():
        if status == "offers":
            record_consent(store, pid, "offers", "granted", source="test", at=early)
        elif status is not None:
            record_consent(store, pid, "*", status, source="test", at=early)  # type: ignore[arg-type]
        if suppressed:
            suppress(store, f"{pid}@example.com", "bounce", source="test", at=early)
    yield store
    store.close()


def gates(store: Store) -> dict[str, ConsentGate]:
    at = T0 + timedelta(days=60)
    return {t: ConsentGate(store, CONSENT, t, at, "email") for t in CONSENT.topics}


caps = st.lists(
    st.builds(
        FrequencyCap,
        max=st.integers(0, 3),
        per=st.sampled_from([timedelta(hours=1), timedelta(days=1), timedelta(days=7)]),
        topic=st.sampled_from([None, "newsletter", "offers"]),
    ),
    max_size=3,
)
quiet = st.one_of(
    st.none(),
    st.builds(
        QuietHours,
        start=st.sampled_from([time(21), time(22, 30), time(0), time(9)]),
        end=st.sampled_from([time(8), time(6, 15), time(9), time(17)]),
    ),
)
messages = st.lists(
    st.tuples(
        st.sampled_from(sorted(PEOPLE)),
        st.sampled_from(ZONES),
        st.integers(0, 14 * 24 * 60),  # minutes after T0
        st.sampled_from(CONSENT.topics),
        st.integers(0, 3),  # priority
        st.sampled_from(["delay", "skip"]),
    ),
    max_size=25,
)


def simulate(policy: DeliveryPolicy, generated: list[Any]) -> list[tuple[Message, datetime]]:
    """Decide every message, delayed ones again at their instant; return what was sent."""
    heap: list[tuple[datetime, int, int, Message]] = []
    for n, (pid, zone, minutes, topic, priority, capped) in enumerate(generated):
        profile = Profile(pid, {"email": f"{pid}@example.com", "timezone": zone})
        due = T0 + timedelta(minutes=minutes)
        heapq.heappush(heap, (due, -priority, n, Message(profile, topic, due, priority,
                                                         when_capped=capped)))  # fmt: skip
    sent: list[tuple[Message, datetime]] = []
    for _ in range(10_000):
        if not heap:
            return sent
        due, prio, n, message = heapq.heappop(heap)
        decision = policy.decide(message)
        if decision.action == "send":
            sent.append((message, decision.at))
        elif decision.action == "delay":
            assert decision.at > due, "a delay must move the message forward"
            moved = Message(message.profile, message.topic, decision.at, message.priority,
                            when_capped=message.when_capped)  # fmt: skip
            heapq.heappush(heap, (decision.at, prio, n, moved))
    raise AssertionError("messages kept being delayed")


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(caps=caps, quiet=quiet, generated=messages)
def test_no_history_breaks_a_cap_quiet_hours_or_consent(
    consent_store: Store, caps: list[FrequencyCap], quiet: QuietHours | None, generated: list[Any]
) -> None:
    delivery = DeliveryDef(caps=tuple(caps), quiet_hours=quiet)
    gate = gates(consent_store)
    policy = DeliveryPolicy(delivery, gate, SendHistory(), default_zone="UTC")
    sent = simulate(policy, generated)
    for message, at in sent:
        assert gate[message.topic].check(message.profile) is None, "sent without consent"
        if quiet is not None:
            zone = profile_zone(message.profile, "timezone", "UTC")
            assert not in_quiet_hours(at, zone, quiet), f"sent at {at.astimezone(zone)}"
    for cap in caps:
        for message, at in sent:
            pid = message.profile.profile_id
            window = [
                a for m, a in sent
                if m.profile.profile_id == pid and (cap.topic is None or m.topic == cap.topic)
                and at - cap.per < a <= at
            ]  # fmt: skip
            assert len(window) <= cap.max, f"{len(window)} messages within {cap.per} of {at}"


def test_a_message_due_at_2am_local_goes_at_the_windows_start(consent_store: Store) -> None:
    delivery = DeliveryDef(quiet_hours=QuietHours(start=time(21), end=time(8)))
    policy = DeliveryPolicy(delivery, gates(consent_store), SendHistory())
    ann = Profile("granted", {"email": "granted@example.com", "timezone": "Europe/Berlin"})
    due = datetime(2026, 1, 15, 1, 0, tzinfo=UTC)  # 02:00 in Berlin (UTC+1)
    decision = policy.decide(Message(ann, "offers", due))
    assert (decision.action, decision.reason) == ("delay", "quiet_hours")
    assert decision.at == datetime(2026, 1, 15, 7, 0, tzinfo=UTC)  # 08:00 in Berlin
    assert policy.decide(Message(ann, "offers", decision.at)).action == "send"
    assert policy.counts == {"delay:quiet_hours": 1, "send": 1}


def test_the_higher_priority_message_wins_the_last_slot(consent_store: Store) -> None:
    delivery = DeliveryDef(caps=(FrequencyCap(max=1, per=timedelta(days=1)),))
    policy = DeliveryPolicy(delivery, gates(consent_store), SendHistory())
    ann = Profile("granted", {"email": "granted@example.com"})
    low = Message(ann, "offers", T0, priority=1)
    high = Message(ann, "newsletter", T0, priority=9)
    from segmint.deliver.policy import by_priority

    decided = [(m.priority, policy.decide(m).action) for m in by_priority([low, high])]
    assert decided == [(9, "send"), (1, "skip")]


def test_capped_message_is_delayed_to_the_instant_a_send_leaves_the_window(
    consent_store: Store,
) -> None:
    delivery = DeliveryDef(caps=(FrequencyCap(max=2, per=timedelta(days=7)),))
    history = SendHistory()
    history.add("granted", T0, "offers")
    history.add("granted", T0 + timedelta(days=2), "newsletter")
    policy = DeliveryPolicy(delivery, gates(consent_store), history)
    ann = Profile("granted", {"email": "granted@example.com"})
    decision = policy.decide(Message(ann, "offers", T0 + timedelta(days=3), when_capped="delay"))
    assert (decision.action, decision.at) == ("delay", T0 + timedelta(days=7))


def test_quiet_end_steps_over_a_daylight_saving_gap() -> None:
    from zoneinfo import ZoneInfo

    berlin = ZoneInfo("Europe/Berlin")
    window = QuietHours(start=time(1), end=time(2, 30))  # 02:30 does not exist on 29 March
    at = datetime(2026, 3, 29, 0, 15, tzinfo=UTC)  # 01:15 local
    end = quiet_end(at, berlin, window)
    assert end > at and not in_quiet_hours(end, berlin, window)


def test_send_time_follows_the_profile_else_the_workspace() -> None:
    monday_9 = datetime(2026, 3, 2, 9, tzinfo=UTC)
    opens = [("ann", monday_9 + timedelta(weeks=w)) for w in range(3)]
    opens += [("bob", monday_9 + timedelta(hours=10))] * 1
    opens += [(f"x{i}", monday_9 + timedelta(days=2, hours=5)) for i in range(12)]
    times = SendTimes(opens, prior=5.0)
    assert times.best_hour("ann") == 9  # her own habit beats the prior (3 > 5 × 12/16)
    assert times.best_hour("new") == 2 * 24 + 14  # no history: the workspace's best
    since = datetime(2026, 3, 9, 6, 30, tzinfo=UTC)  # a Monday, before ann's hour
    assert times.next_slot("ann", since) == datetime(2026, 3, 9, 9, tzinfo=UTC)
    assert SendTimes([], prior=5.0).next_slot("ann", since) == since  # nothing known: now


def test_send_time_prior_is_the_segments_smoothed_toward_the_workspace() -> None:
    monday_9 = datetime(2026, 3, 2, 9, tzinfo=UTC)
    friday_22 = 4 * 24 + 22
    opens = [(f"x{i}", monday_9 + timedelta(days=2, hours=5)) for i in range(12)]
    opens += [(f"o{i}", monday_9 + timedelta(days=4, hours=13)) for i in range(4)]
    opens += [("bob", monday_9 + timedelta(hours=10))]
    members = {"night_owls": ["o0", "o1", "o2", "o3", "new"], "tiny": ["bob", "new"]}
    times = SendTimes(opens, prior=5.0, segments=members)
    # no history of its own: a night owl follows its segment, not the workspace
    assert times.best_hour("new", "night_owls") == friday_22
    assert times.best_hour("new") == 2 * 24 + 14  # no segment: the workspace's hour
    assert times.best_hour("new", "unknown") == 2 * 24 + 14  # nobody engaged: the workspace
    # one open is little evidence: the segment's shares lean on the workspace's
    assert times.best_hour("new", "tiny") == 2 * 24 + 14
    shares = times.shares("night_owls")
    assert abs(sum(shares.values()) - 1.0) < 1e-9
    since = datetime(2026, 3, 9, 6, 30, tzinfo=UTC)
    assert times.next_slot("new", since, "night_owls") == datetime(2026, 3, 13, 22, tzinfo=UTC)
