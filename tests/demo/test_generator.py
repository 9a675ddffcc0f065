"""The synthetic shop is deterministic, streams valid Segment-spec messages, and its
missing data is missing on purpose."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segmint.demo import DEFAULT_AS_OF, DemoError, Shop, ShopConfig
from segmint.demo.customer import Customer
from segmint.demo.messages import spec_problems

Shopped = list[tuple[Customer, list[dict[str, Any]]]]


def instant(message: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(message["timestamp"].replace("Z", "+00:00"))


def test_same_seed_gives_the_same_messages() -> None:
    first = list(Shop(ShopConfig(customers=120, seed=11)).messages())
    second = list(Shop(ShopConfig(customers=120, seed=11)).messages())
    assert first == second
    assert len(first) > 1000


def test_another_seed_gives_another_shop() -> None:
    first = list(Shop(ShopConfig(customers=60, seed=1)).messages())
    second = list(Shop(ShopConfig(customers=60, seed=2)).messages())
    assert first != second


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), size=st.integers(1, 25), extra=st.integers(1, 25))
def test_a_smaller_shop_is_the_start_of_a_larger_one(seed: int, size: int, extra: int) -> None:
    small = list(Shop(ShopConfig(customers=size, seed=seed)).messages())
    large = list(Shop(ShopConfig(customers=size + extra, seed=seed)).messages())
    assert large[: len(small)] == small
    assert len(large) > len(small)


def test_stream_and_batches_agree() -> None:
    config = ShopConfig(customers=80)
    streamed = list(Shop(config).messages())
    batched = [m for batch in Shop(config).batches(size=300) for m in batch]
    assert streamed == batched


def test_messages_are_segment_spec(small_shop: Shopped) -> None:
    problems = Counter(p for _, msgs in small_shop for m in msgs for p in spec_problems(m))
    assert problems == Counter()
    types = Counter(m["type"] for _, msgs in small_shop for m in msgs)
    assert set(types) == {"track", "page", "identify"}


def test_message_ids_are_stable_and_unique(small_shop: Shopped) -> None:
    ids = [m["messageId"] for _, msgs in small_shop for m in msgs]
    assert len(ids) == len(set(ids))
    assert small_shop[3][1][0]["messageId"] == "demo-7-000003-0000"


def test_every_event_falls_in_the_demo_year_in_order(small_shop: Shopped) -> None:
    start = DEFAULT_AS_OF - timedelta(days=365 + 2)
    for _, msgs in small_shop:
        times = [instant(m) for m in msgs]
        assert times == sorted(times)
        assert all(start <= t < DEFAULT_AS_OF for t in times)


def test_time_zones_are_iana_names(small_shop: Shopped) -> None:
    zones = {
        m["traits"]["timezone"]
        for _, msgs in small_shop
        for m in msgs
        if m["type"] == "identify" and "timezone" in m["traits"]
    }
    assert len(zones) >= 8
    for name in zones:
        assert ZoneInfo(name).utcoffset(datetime(2026, 6, 1, tzinfo=UTC)) is not None


def test_orders_have_line_items_totals_and_currency(small_shop: Shopped) -> None:
    orders = [
        m["properties"]
        for _, msgs in small_shop
        for m in msgs
        if m.get("event") == "Order Completed"
    ]
    complete = [o for o in orders if "total" in o]
    assert complete and all(
        o["products"] and o["currency"] in {"USD", "EUR", "GBP"} for o in orders
    )
    for order in complete:
        items = sum(p["price"] * p["quantity"] for p in order["products"])
        assert order["subtotal"] == pytest.approx(items, abs=0.01)
        expected = order["subtotal"] - order["discount"] + order["shipping"] + order["tax"]
        assert order["total"] == pytest.approx(expected, abs=0.01)
        assert order["category"] in {p["category"] for p in order["products"]}


def test_missing_data_is_there_on_purpose(small_shop: Shopped) -> None:
    orders = [
        m["properties"]
        for _, msgs in small_shop
        for m in msgs
        if m.get("event") == "Order Completed"
    ]
    without_total = sum("total" not in o for o in orders)
    assert 0 < without_total < len(orders) * 0.05
    identified = [c for c, _ in small_shop if c.email is not None]
    assert all(c.email is not None and c.email.isascii() for c in identified)
    nameless = sum(c.first_name is None for c in identified)
    assert 0 < nameless < len(identified) * 0.2
    assert sum(c.consent is None for c in identified) > 0
    anonymous_only = [msgs for c, msgs in small_shop if c.email is None]
    assert anonymous_only and all("userId" not in m for msgs in anonymous_only for m in msgs)


def test_anonymous_visitors_identify_later(small_shop: Shopped) -> None:
    later = 0
    for customer, msgs in small_shop:
        marks = [i for i, m in enumerate(msgs) if m["type"] == "identify" and "anonymousId" in m]
        if not marks or marks[0] == 0:
            continue
        later += 1
        before, link = msgs[: marks[0]], msgs[marks[0]]
        assert all("userId" not in m and m["anonymousId"] == link["anonymousId"] for m in before)
        assert link["userId"] == customer.identity.user_id
        assert link["traits"]["email"] == customer.email
    assert later > 100


def test_email_engagement_and_unsubscribes(small_shop: Shopped) -> None:
    events = Counter(m.get("event") for _, msgs in small_shop for m in msgs)
    assert events["Email Delivered"] > events["Email Opened"] > events["Email Link Clicked"] > 0
    assert events["Unsubscribed"] > 0
    for customer, msgs in small_shop:
        delivered = [m for m in msgs if m.get("event") == "Email Delivered"]
        assert not delivered or customer.consent is True
        quits = [
            i for i, m in enumerate(msgs) if m.get("event") in ("Unsubscribed", "Email Bounced")
        ]
        if quits:
            after = msgs[quits[0] :]
            assert not any(m.get("event") == "Email Delivered" for m in after)
        delivered_at = {
            m["properties"]["email_id"]: instant(m)
            for m in msgs
            if m.get("event") == "Email Delivered"
        }
        for m in msgs:
            if m.get("event") in ("Email Opened", "Email Link Clicked"):
                assert instant(m) > delivered_at[m["properties"]["email_id"]]
        for bounce in (m for m in msgs if m.get("event") == "Email Bounced"):
            assert bounce["properties"]["recipient"] == customer.email
    assert events["Email Bounced"] > 0


def test_the_shop_refuses_nonsense() -> None:
    with pytest.raises(DemoError):
        ShopConfig(customers=0)
    with pytest.raises(DemoError):
        ShopConfig(as_of=datetime(2026, 11, 1))


@pytest.mark.parametrize("helper", [False, True], ids=["in-process", "helper-process"])
def test_chunks_are_the_shop_in_order(helper: bool) -> None:
    from segmint.demo.chunks import chunks

    config = ShopConfig(customers=57, seed=3)
    shop = Shop(config)
    expected = list(shop.messages())
    parts = list(chunks(config, size=10, helper=helper))
    assert [(c.start, c.stop) for c in parts] == [(a, min(a + 10, 57)) for a in range(0, 57, 10)]
    assert [m for c in parts for m in c.messages] == expected
    assert sum(c.stats.messages for c in parts) == shop.stats.messages == len(expected)
    archetypes = [arch for c in parts for _, _, arch in c.ids]
    assert archetypes == [shop.customer(i)[0].archetype.name for i in range(57)]
