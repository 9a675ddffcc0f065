"""Step kinds: split, branch, wait_until (event or rule, with a timeout), exit; and serve."""

from __future__ import annotations

import time
from collections import Counter
from datetime import timedelta

from segmint.clock import FixedClock
from segmint.journeys.instances import Instances

from .conftest import T0, Shop, edit  # type: ignore[import-not-found]

FLOW = """journeys:
  flow:
    trigger: {event: Signed Up}
    from: "Shop <shop@example.com>"
    reentry: every_time
    steps:
      - name: ab
        split:
          - {percent: 30, next: a}
          - {percent: 70, next: b}
      - {name: a, wait: 1h, next: ask}
      - {name: b, wait: 2h, next: ask}
      - name: ask
        wait_until: {event: Order Completed, where: "total > 50"}
        timeout: 1d
        on_timeout: nudge
      - name: route
        branch:
          - {segment: vip, next: vip_end}
          - {rule: "orders >= 1", next: buyer_end}
      - {name: nobody, exit: no_route}
      - {name: vip_end, exit: vip}
      - {name: buyer_end, exit: buyer}
      - {name: nudge, wait_until: {rule: "orders >= 2"}, timeout: 2d}
"""


def subjects(shop: Shop) -> list[str]:
    return [str(r.message["Subject"]) for r in list(shop.server.handler.received)]


def with_flow(shop: Shop) -> None:
    edit(shop.path, "journeys:\n", FLOW)
    shop.reopen()


def last(shop: Shop, user: str, entry: int = 1) -> tuple[str | None, str, str | None, object]:
    h = Instances(shop.workspace.store).history(f"flow:{shop.profiles[user]}:{entry}")[-1]
    return (h.step, h.outcome, h.reason, h.at)


def test_split_is_deterministic_and_near_its_shares(shop: Shop) -> None:
    with_flow(shop)
    users = [f"u{i:03d}" for i in range(200)]
    shop.people(users)
    shop.submit([{"type": "track", "userId": u, "event": "Signed Up",
                  "timestamp": T0.isoformat()} for u in users])  # fmt: skip
    shop.engine().tick(T0)
    rows = shop.workspace.store.fetchall(
        "SELECT i.profile_id, h.reason FROM journey_history h JOIN journey_instances i "
        "ON i.instance_id = h.instance_id WHERE h.outcome = 'split'"
    )
    shares = Counter(reason for _, reason in rows)
    assert sum(shares.values()) == 200 and 25 <= shares["a"] <= 95  # 30 % of 200, roughly
    engine = shop.engine()
    first = {pid: reason for pid, reason in rows}
    again = {pid: engine.journeys["flow"].split_bucket(pid) < 30 for pid in first}
    assert all((first[p] == "a") == again[p] for p in first)  # same profile, same route


def test_wait_until_an_event_with_a_filter_then_the_first_matching_branch(shop: Shop) -> None:
    with_flow(shop)
    shop.person("ann")
    shop.track("ann", "Signed Up", T0)
    shop.track("ann", "Order Completed", T0 + timedelta(hours=3), total=20)  # filtered out
    shop.track("ann", "Order Completed", T0 + timedelta(hours=5), total=80)
    shop.workspace.store.execute(
        "INSERT INTO memberships VALUES ('vip', ?, ?)",
        [shop.profiles["ann"], T0.replace(tzinfo=None)],
    )
    shop.engine().tick(T0 + timedelta(days=3))
    assert last(shop, "ann") == ("vip_end", "exited", "vip", T0 + timedelta(hours=5))


def test_a_timeout_then_a_rule_becoming_true(shop: Shop) -> None:
    with_flow(shop)
    shop.person("bob")
    shop.track("bob", "Signed Up", T0)
    engine = shop.engine()
    engine.tick(T0 + timedelta(days=1, hours=1))
    split = engine.journeys["flow"].split_bucket(shop.profiles["bob"]) < 30
    asked = T0 + timedelta(hours=1 if split else 2)
    [inst] = Instances(shop.workspace.store).of_profiles([shop.profiles["bob"]])
    assert inst.step == "ask" and inst.due == asked + timedelta(days=1)
    engine.tick(asked + timedelta(days=1))
    [inst] = Instances(shop.workspace.store).of_profiles([shop.profiles["bob"]])
    assert (inst.step, inst.step_since) == ("nudge", asked + timedelta(days=1))
    two = asked + timedelta(days=1, hours=3)
    shop.track("bob", "Order Completed", two - timedelta(hours=1), total=5)
    shop.track("bob", "Order Completed", two, total=5)
    engine.tick(two + timedelta(minutes=1))
    assert last(shop, "bob") == ("nudge", "exited", "completed", two)


def test_serve_fires_a_step_when_the_loop_is_woken(shop: Shop) -> None:
    from segmint.intake.pipeline import Intake
    from segmint.journeys import attach_journeys
    from segmint.membership.service import attach_realtime

    shop.person("cy")
    clock = FixedClock(T0)
    intake = Intake(shop.workspace, clock)
    service = attach_realtime(shop.workspace, intake, clock)
    try:
        attach_journeys(shop.workspace, intake, service, clock)
        intake.submit([{"type": "track", "userId": "cy", "event": "Cart Abandoned",
                        "timestamp": T0.isoformat()}], source="test")  # fmt: skip
        clock.set(T0 + timedelta(hours=2))
        service.wake()
        deadline = time.monotonic() + 20
        while len(subjects(shop)) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        service.close()
    # the welcome series (cy entered new_customer in real time), then the cart reminder
    assert sorted(subjects(shop)) == ["Cy, something picked for you",
                                      "Cy, you left something in your cart"]  # fmt: skip
    h = Instances(shop.workspace.store).history(f"abandoned_cart:{shop.profiles['cy']}:1")
    assert [(x.step, x.outcome, x.at) for x in h][1:3] == [
        ("first_wait", "waited", T0 + timedelta(hours=2)),
        ("reminder", "sent", T0 + timedelta(hours=2)),
    ]
