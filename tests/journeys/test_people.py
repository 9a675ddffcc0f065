"""Journeys and people: deliveries announced, refused entries counted, merges followed."""

from __future__ import annotations

from datetime import timedelta

from segmint.clock import FixedClock
from segmint.deliver.engagement import email_announcer
from segmint.intake import Intake
from segmint.journeys.insight import list_journeys, show_journey
from segmint.journeys.instances import Instances
from segmint.journeys.service import run_journeys

from .conftest import T0, Shop  # type: ignore[import-not-found]

H2 = timedelta(hours=2)
D1 = timedelta(days=1)


def delivered(shop: Shop) -> list[tuple[str, str]]:
    rows = shop.workspace.store.fetchall(
        "SELECT profile_id, json_extract_string(properties, '$.campaign') FROM events "
        "WHERE event = 'Email Delivered' ORDER BY 2"
    )
    return [(str(p), str(c)) for p, c in rows]


def test_a_journey_send_announces_email_delivered_once(shop: Shop) -> None:
    ann = shop.person("ann")
    shop.track("ann", "Cart Abandoned", T0, total=80)
    announce = email_announcer(Intake(shop.workspace, FixedClock(T0 + H2)))
    engine = shop.engine(announce=announce)
    engine.tick(T0 + H2)
    assert delivered(shop) == [(ann, "journey:abandoned_cart:reminder:1")]
    engine.tick(T0 + H2 + timedelta(hours=1))  # nothing new: nothing announced again
    # the cron path (journeys run) announces too, and only what is new
    run_journeys(shop.workspace, FixedClock(T0 + H2 + D1), T0 + H2 + D1)
    assert delivered(shop) == [
        (ann, "journey:abandoned_cart:discount:1"),
        (ann, "journey:abandoned_cart:reminder:1"),
    ]
    unannounced = shop.workspace.store.fetchall(
        "SELECT count(*) FROM sends WHERE status = 'sent' AND NOT announced"
    )
    assert unannounced == [(0,)]


def test_what_a_dead_run_sent_is_announced_by_the_next(shop: Shop) -> None:
    ann = shop.person("ann")
    shop.track("ann", "Cart Abandoned", T0)
    shop.engine().tick(T0 + H2)  # sent, and nobody announced it (as if killed after)
    assert delivered(shop) == []
    announce = email_announcer(Intake(shop.workspace, FixedClock(T0 + H2)))
    shop.engine(announce=announce).tick(T0 + H2)
    assert delivered(shop) == [(ann, "journey:abandoned_cart:reminder:1")]


def test_refused_entries_are_counted_durably_and_once(shop: Shop) -> None:
    shop.person("dee")
    shop.track("dee", "Cart Abandoned", T0)
    shop.engine().tick(T0 + 3 * D1)
    shop.track("dee", "Cart Abandoned", T0 + 4 * D1)  # within the 7-day re-entry period
    shop.engine().tick(T0 + 5 * D1)
    store = shop.workspace.store
    store.execute("DELETE FROM meta WHERE key = 'journeys.events_seq'")  # read again
    shop.engine().tick(T0 + 5 * D1)  # a second run: the same trigger is not counted twice
    view = show_journey(shop.workspace, "abandoned_cart")
    assert view["refused_by_reason"] == {"reentry_period": 1}
    assert view["refused"] == 1
    summary = {j["name"]: j for j in list_journeys(shop.workspace)}
    assert summary["abandoned_cart"]["refused"] == 1


def _anonymous_cart(shop: Shop, anon: str, at: object = T0) -> str:
    return shop.submit(
        [{"type": "track", "anonymousId": anon, "event": "Cart Abandoned",
          "properties": {"total": 5}, "timestamp": T0.isoformat()}]
    )[0]  # fmt: skip


def _merge(shop: Shop, user: str, anon: str) -> None:
    shop.submit(
        [{"type": "identify", "userId": user, "anonymousId": anon,
          "timestamp": (T0 + timedelta(minutes=30)).isoformat()}],
        T0 + timedelta(minutes=30),
    )  # fmt: skip


def test_an_instance_of_a_merged_profile_moves_to_the_survivor(shop: Shop) -> None:
    eve = shop.person("eve")
    visitor = _anonymous_cart(shop, "anon-1")
    engine = shop.engine()
    engine.tick(T0 + timedelta(minutes=10))
    _merge(shop, "eve", "anon-1")
    engine.tick(T0 + H2)
    assert shop.received() == {"eve@example.com": 1}  # the survivor's address, once
    instances = Instances(shop.workspace.store)
    old = instances.history(f"abandoned_cart:{visitor}:1")
    assert (old[-1].outcome, old[-1].reason) == ("exited", "moved")
    new = instances.history(f"abandoned_cart:{eve}:1")
    assert [(h.outcome, h.reason) for h in new][:3] == [
        ("merged_in", f"abandoned_cart:{visitor}:1"),
        ("waited", None),
        ("sent", None),
    ]
    engine.tick(T0 + 3 * D1)
    assert shop.received() == {"eve@example.com": 2}


def test_a_merged_profile_whose_survivor_is_in_the_journey_exits_merged(shop: Shop) -> None:
    eve = shop.person("eve")
    shop.track("eve", "Cart Abandoned", T0)
    visitor = _anonymous_cart(shop, "anon-2")
    engine = shop.engine()
    engine.tick(T0 + timedelta(minutes=10))
    _merge(shop, "eve", "anon-2")
    engine.tick(T0 + 3 * D1)
    assert shop.received() == {"eve@example.com": 2}  # one passage: reminder and discount
    history = Instances(shop.workspace.store).history(f"abandoned_cart:{visitor}:1")
    assert (history[-1].outcome, history[-1].reason) == ("exited", "merged")
    assert show_journey(shop.workspace, "abandoned_cart")["exited_by_reason"]["merged"] == 1
    assert eve


def test_kpis_by_journey_and_by_step_count_journey_sends(shop: Shop) -> None:
    import re

    from segmint.deliver.links import LinkSigner
    from segmint.measure.kpis import kpi_report

    ann = shop.person("ann")
    shop.track("ann", "Cart Abandoned", T0)
    shop.engine().tick(T0 + 3 * D1)
    # the message's links carry the ledger campaign of the step and entry
    body = shop.server.handler.received[0].message.as_string()
    token = re.search(r"/e/o/([A-Za-z0-9_.=-]+)", body.replace("=\r\n", "").replace("=\n", ""))
    assert token is not None
    signer = LinkSigner.from_email(shop.workspace.definition.email)
    data = signer.verify("o", token.group(1).replace("=3D", "="))
    assert (data["c"], data["p"]) == ("journey:abandoned_cart:reminder:1", ann)
    shop.track("ann", "Email Opened", T0 + H2 + timedelta(minutes=5),
               campaign=data["c"], machine_open=False)  # fmt: skip
    defn, store = shop.workspace.definition, shop.workspace.store
    by_journey = kpi_report(store, defn, "journey", None, T0 + 4 * D1).to_dict()
    rows = {r["journey"]: r for r in by_journey["rows"]}
    assert set(rows) == {"abandoned_cart"}
    assert (rows["abandoned_cart"]["sent"], rows["abandoned_cart"]["opened"]) == (2, 1)
    by_step = kpi_report(store, defn, "campaign", None, T0 + 4 * D1).to_dict()
    steps = {r["campaign"]: (r["sent"], r["delivered"], r["opened"]) for r in by_step["rows"]}
    assert steps == {
        "journey:abandoned_cart:reminder": (1, 1, 1),
        "journey:abandoned_cart:discount": (1, 1, 0),
    }
    by_template = kpi_report(store, defn, "template", None, T0 + 4 * D1).to_dict()
    assert by_template["total"]["sent"] == 2
    assert "(undefined)" not in {r["template"] for r in by_template["rows"]}
