"""The abandoned-cart journey with a fixed clock: every step at its exact microsecond."""

from __future__ import annotations

from datetime import timedelta

from segmint.journeys.instances import Instances

from .conftest import T0, Shop  # type: ignore[import-not-found]

H2 = timedelta(hours=2)
D1 = timedelta(days=1)


def history(shop: Shop, user: str) -> list[tuple[str | None, str, str | None, object]]:
    iid = f"abandoned_cart:{shop.profiles[user]}:1"
    rows = Instances(shop.workspace.store).history(iid)
    return [(h.step, h.outcome, h.reason, h.at) for h in rows]


def test_abandoned_cart_steps_fire_at_their_exact_instants(shop: Shop) -> None:
    shop.person("ann")
    shop.track("ann", "Cart Abandoned", T0, total=80)
    engine = shop.engine()
    engine.tick(T0)
    assert shop.received() == {}
    engine.tick(T0 + H2 - timedelta(microseconds=1))  # a microsecond early: nothing yet
    assert shop.received() == {}
    engine.tick(T0 + H2)
    assert shop.received() == {"ann@example.com": 1}
    # a late tick (cron ran hours after): the step still happened at its own instant
    engine.tick(T0 + H2 + D1 + timedelta(hours=5))
    assert shop.received() == {"ann@example.com": 2}
    assert history(shop, "ann") == [
        (None, "entered", None, T0),
        ("first_wait", "waited", None, T0 + H2),
        ("reminder", "sent", None, T0 + H2),
        ("one_day", "waited", None, T0 + H2 + D1),
        ("discount", "sent", None, T0 + H2 + D1),
        ("discount", "exited", "completed", T0 + H2 + D1),
    ]
    subjects = [r.message["Subject"] for r in shop.server.handler.received]
    assert subjects == ["Ann, you left something in your cart", "Ann, 10% off what is in your cart"]
    sent_at = shop.workspace.store.fetchall(
        "SELECT sent_at FROM sends WHERE campaign LIKE 'journey:abandoned_cart:%' ORDER BY 1"
    )
    assert [r[0] for r in sent_at] == [(T0 + H2).replace(tzinfo=None),
                                       (T0 + H2 + D1).replace(tzinfo=None)]  # fmt: skip


def test_ordering_ends_the_flow_before_the_discount(shop: Shop) -> None:
    shop.person("bob")
    shop.track("bob", "Cart Abandoned", T0)
    engine = shop.engine()
    engine.tick(T0 + H2)
    shop.track("bob", "Order Completed", T0 + H2 + timedelta(hours=3), total=80)
    engine.tick(T0 + 3 * D1)
    assert shop.received() == {"bob@example.com": 1}
    assert history(shop, "bob")[-1] == (
        "one_day",
        "exited",
        "exit_condition",
        T0 + H2 + timedelta(hours=3),
    )


def test_an_order_between_two_ticks_is_taken_in_time_order(shop: Shop) -> None:
    """One late tick sees the order (after 2 h 30) and the 2 h timer: the reminder goes out."""
    shop.person("cy")
    shop.track("cy", "Cart Abandoned", T0)
    shop.track("cy", "Order Completed", T0 + timedelta(hours=2, minutes=30), total=10)
    shop.engine().tick(T0 + D1 * 3)
    assert shop.received() == {"cy@example.com": 1}
    assert [h[1] for h in history(shop, "cy")] == ["entered", "waited", "sent", "exited"]


def test_reentry_within_the_period_is_refused(shop: Shop) -> None:
    shop.person("dee")
    shop.track("dee", "Cart Abandoned", T0)
    engine = shop.engine()
    engine.tick(T0 + 3 * D1)  # the whole flow
    shop.track("dee", "Cart Abandoned", T0 + 4 * D1)  # within 7 days of the first entry
    report = engine.tick(T0 + 5 * D1)
    assert report.entered["refused:reentry_period"] == 1
    shop.track("dee", "Cart Abandoned", T0 + 8 * D1)
    engine.tick(T0 + 8 * D1 + H2)
    assert shop.received() == {"dee@example.com": 3}  # two, then the second entry's reminder


def test_a_run_before_a_stored_trigger_leaves_it_for_the_run_that_reaches_it(
    shop: Shop,
) -> None:
    """``journeys run --as-of`` an instant before a stored cart started its flow then, before
    it happened; the next run found both messages a day late and skipped them."""
    from segmint.clock import FixedClock
    from segmint.journeys.service import run_journeys

    def run(until: object) -> object:
        return run_journeys(shop.workspace, FixedClock(until), until)  # type: ignore[arg-type]

    shop.people(["ann", "bob"])
    shop.track("ann", "Cart Abandoned", T0 - H2)
    shop.track("bob", "Cart Abandoned", T0 + 5 * D1)  # stored already, happens later
    early = run(T0)
    assert early.entered["entered"] == 1  # ann's, not bob's
    assert run(T0).entered["entered"] == 0  # the same run again: nothing twice
    assert shop.received() == {"ann@example.com": 1}
    later = run(T0 + 5 * D1 + H2)
    assert later.entered["entered"] == 1  # bob's, at its own instant
    # (ann's discount, due 4 days before this run, is late: skipped)
    assert shop.received() == {"ann@example.com": 1, "bob@example.com": 1}
    assert history(shop, "bob")[:3] == [
        (None, "entered", None, T0 + 5 * D1),
        ("first_wait", "waited", None, T0 + 5 * D1 + H2),
        ("reminder", "sent", None, T0 + 5 * D1 + H2),
    ]
