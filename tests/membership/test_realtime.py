from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from segmint.membership.changes import all_members, read_changes
from segmint.membership.schedule import Schedule

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
US = timedelta(microseconds=1)
DAY = timedelta(days=1)


def members(rig) -> dict[str, set[str]]:
    return all_members(rig.ws.store)


def pid_of(rig, user: str) -> str:
    rows = rig.ws.store.fetchall(
        "SELECT profile_id FROM identities WHERE kind = 'user_id' AND value = ?", [user]
    )
    return rows[0][0]


def test_an_event_enters_segments_with_rule_and_trait_cause(rig, track):
    rig.send(track("u1", "Order Completed", T0, total=1200))
    pid = pid_of(rig, "u1")
    assert members(rig)[pid] == {"recent_buyer", "vip", "big_recent"}
    changes = {c.segment: c for c in read_changes(rig.ws.store)}
    vip = changes["vip"]
    assert vip.change == "enter" and vip.occurred_at == T0
    assert vip.cause["source"] == "event" and vip.cause["rule"] == "lifetime_value >= 1000"
    assert vip.cause["traits"] == ["lifetime_value"]
    assert vip.cause["message_id"].startswith("m")


def test_exclusive_group_and_default_in_real_time(rig, track):
    rig.send(track("u1", "Page Viewed", T0))
    pid = pid_of(rig, "u1")
    assert members(rig)[pid] == {"prospect"}
    rig.send(
        track("u1", "Order Completed", T0, total=10), track("u1", "Order Completed", T0, total=20)
    )
    assert members(rig)[pid] == {"repeat", "recent_buyer"}
    rig.send(track("u1", "Order Completed", T0, total=2000))
    assert members(rig)[pid] == {"vip", "recent_buyer", "big_recent"}
    log = [(c.segment, c.change) for c in read_changes(rig.ws.store, profile_id=pid)]
    assert ("prospect", "exit") in log and ("repeat", "exit") in log


def test_in_segment_follows_the_segments_it_reads(rig, track):
    opens = [track("u1", "Email Opened", T0 - timedelta(hours=i)) for i in range(3)]
    rig.send(*opens)
    pid = pid_of(rig, "u1")
    assert "vip_engaged" not in members(rig)[pid]
    rig.send(track("u1", "Order Completed", T0, total=5000))
    assert {"vip", "engaged", "vip_engaged"} <= members(rig)[pid]


def test_recency_rule_exits_exactly_thirty_days_after_the_purchase(rig, track):
    rig.send(track("u1", "Order Completed", T0, total=700))
    pid = pid_of(rig, "u1")
    assert {"recent_buyer", "big_recent"} <= members(rig)[pid]
    deadline = T0 + timedelta(days=30)
    rig.at(deadline)  # >= is still true at the boundary itself
    assert {"recent_buyer", "big_recent"} <= members(rig)[pid]
    rig.at(deadline + US)
    assert not {"recent_buyer", "big_recent"} & members(rig)[pid]
    exits = [c for c in read_changes(rig.ws.store, profile_id=pid) if c.change == "exit"]
    assert {c.segment for c in exits} == {"recent_buyer", "big_recent"}
    assert all(c.occurred_at == deadline + US for c in exits)
    assert all(c.cause["source"] == "time" for c in exits)


def test_time_transitions_fire_at_their_own_instant_when_the_clock_jumps(rig, track):
    rig.send(track("u1", "Order Completed", T0, total=700))
    pid = pid_of(rig, "u1")
    rig.at(T0 + timedelta(days=400))  # one jump over both the 30-day and the 60-day instants
    log = [(c.segment, c.change, c.occurred_at) for c in read_changes(rig.ws.store, profile_id=pid)]
    assert ("recent_buyer", "exit", T0 + timedelta(days=30) + US) in log
    # days_since_purchase > 60 (a derived trait) turns true just after 60 days
    lapsed = [entry for entry in log if entry[0] == "lapsed"]
    assert lapsed == [("lapsed", "enter", T0 + timedelta(days=60) + US)]
    assert ("repeat", "exit") not in {(s, c) for s, c, _ in log}


def test_windowed_count_drops_below_threshold_exactly_when_an_event_leaves(rig, track):
    times = [T0, T0 + DAY, T0 + 2 * DAY]
    rig.send(*[track("u1", "Email Opened", t) for t in times])
    rig.at(T0 + 2 * DAY)
    pid = pid_of(rig, "u1")
    assert "engaged" in members(rig)[pid]
    leaves = T0 + timedelta(days=30)  # window is (as_of - 30d, as_of]
    rig.at(leaves - US)
    assert "engaged" in members(rig)[pid]
    rig.at(leaves)
    assert "engaged" not in members(rig)[pid]
    [exit_] = [c for c in read_changes(rig.ws.store, segment="engaged") if c.change == "exit"]
    assert exit_.occurred_at == leaves
    assert exit_.cause["traits"] == ["opens_30d"]


def test_nothing_due_is_missed_after_a_restart(tmp_path, track, make_rig, make_workspace):
    ws = make_workspace(tmp_path)
    rig = make_rig(ws)
    rig.send(track("u1", "Order Completed", T0, total=700))
    pid = pid_of(rig, "u1")
    assert Schedule(ws.store).get(pid) is not None
    ws.close()
    ws2 = make_workspace(tmp_path)
    try:
        later = make_rig(ws2, T0 + timedelta(days=90))
        later.engine.advance(T0 + timedelta(days=90))
        log = read_changes(ws2.store, profile_id=pid)
        assert ("recent_buyer", "exit", T0 + timedelta(days=30) + US) in [
            (c.segment, c.change, c.occurred_at) for c in log
        ]
        assert "recent_buyer" not in all_members(ws2.store)[pid]
    finally:
        ws2.close()


def test_events_of_a_restarted_engine_continue_from_stored_state(
    tmp_path, track, make_rig, make_workspace
):
    ws = make_workspace(tmp_path)
    rig = make_rig(ws)
    rig.send(track("u1", "Order Completed", T0, total=600))
    ws.close()
    ws2 = make_workspace(tmp_path)
    try:
        again = make_rig(ws2, T0 + DAY)
        again.send(track("u1", "Order Completed", T0 + DAY, total=600))
        pid = pid_of(again, "u1")
        assert "vip" in all_members(ws2.store)[pid]  # 600 + 600 from state + new event
    finally:
        ws2.close()


def test_merge_exits_the_old_profile_and_rebuilds_the_survivor(rig, track):
    anon = {
        "type": "track", "anonymousId": "a1", "event": "Order Completed",
        "properties": {"total": 800}, "timestamp": T0.isoformat(), "messageId": "x1",
    }  # fmt: skip
    rig.send(anon)
    rig.send(track("u1", "Order Completed", T0, total=300))
    old = rig.ws.store.fetchall(
        "SELECT profile_id FROM identities WHERE kind = 'anonymous_id' AND value = 'a1'"
    )[0][0]
    assert "big_recent" in members(rig)[old]
    alias = {"type": "alias", "userId": "u1", "previousId": "a1", "messageId": "al",
             "timestamp": T0.isoformat()}  # fmt: skip
    rig.send(alias)
    survivor = pid_of(rig, "u1")
    assert survivor != old
    assert old not in members(rig)
    assert {"vip", "big_recent", "recent_buyer"} <= members(rig)[survivor]  # 800 + 300
    exits = [c for c in read_changes(rig.ws.store, profile_id=old) if c.change == "exit"]
    assert exits and all(c.cause == {"source": "merge", "merged_into": survivor} for c in exits)
    assert Schedule(rig.ws.store).get(old) is None


def test_subscribers_receive_committed_changes(rig, track):
    seen = []
    rig.engine.hub.subscribe(lambda changes: seen.extend((c.segment, c.change) for c in changes))
    rig.send(track("u1", "Order Completed", T0, total=1500))
    assert ("vip", "enter") in seen
    rows = rig.ws.store.fetchall("SELECT count(*) FROM membership_changes")[0][0]
    assert rows == len(seen)


def test_segments_of_answers_from_live_state(rig, track):
    rig.send(track("u1", "Order Completed", T0, total=1500))
    pid = pid_of(rig, "u1")
    assert rig.engine.segments_of(pid) == members(rig)[pid]
    assert rig.engine.segments_of("nobody") is None


def test_attach_realtime_wires_intake_webhooks_and_the_timer(
    tmp_path, make_workspace, shop_yaml, track, receiver, monkeypatch
):
    from segmint.clock import FixedClock
    from segmint.intake.pipeline import Intake
    from segmint.membership.service import attach_realtime
    from segmint.membership.webhooks import outbox_status

    monkeypatch.setenv("SEGMINT_WEBHOOK_SECRET", "s3cret")
    hook = f"webhooks:\n  crm: {{url: '{receiver.url}', segments: [vip]}}\n"
    ws = make_workspace(tmp_path, shop_yaml + hook)
    clock = FixedClock(T0)
    intake = Intake(ws, clock)
    service = attach_realtime(ws, intake, clock)
    try:
        intake.submit([track("u1", "Order Completed", T0, total=1500)], source="test")
        assert "vip" in all_members(ws.store)[pid_of_ws(ws, "u1")]
        deadline = time.monotonic() + 30  # the server's timer thread delivers on its own
        while not receiver.received and time.monotonic() < deadline:
            time.sleep(0.05)
        service.close()
        [(_, body)] = receiver.received
        assert b'"segment":"vip"' in body
        assert outbox_status(ws.store)["webhooks"]["crm"]["delivered"] == 1
    finally:
        service.close()
        ws.close()


def pid_of_ws(ws, user: str) -> str:
    rows = ws.store.fetchall(
        "SELECT profile_id FROM identities WHERE kind = 'user_id' AND value = ?", [user]
    )
    return rows[0][0]


def test_real_time_on_postgres_agrees_with_batch(
    tmp_path, pg_store, make_workspace, make_rig, track
):
    from segmint.membership.batch import reconcile

    ws = make_workspace(tmp_path, store=pg_store)
    rig = make_rig(ws)
    rig.send(*[track(f"u{i}", "Order Completed", T0, total=400 * i) for i in range(4)])
    rig.send(*[track("u1", "Email Opened", T0 - timedelta(hours=h)) for h in range(3)])
    assert reconcile(ws.store, rig.compiled, T0) == []
    for days in (29, 31, 61, 200):
        rig.at(T0 + timedelta(days=days))
        assert reconcile(ws.store, rig.compiled, T0 + timedelta(days=days)) == []
    sources = {c.cause["source"] for c in read_changes(ws.store)}
    assert sources == {"event", "time"}
