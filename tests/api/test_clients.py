"""Unmodified Segment and RudderStack Python clients against the real server."""

from __future__ import annotations

from typing import Any

import orjson

from .conftest import Live


def stored(live: Live) -> list[tuple[Any, ...]]:
    return live.workspace.store.fetchall(
        "SELECT type, event, user_id, anonymous_id, properties, traits, context, source "
        "FROM events ORDER BY seq"
    )


def exercise(client: Any) -> None:
    client.identify("u1", {"email": "ann@example.com", "first_name": "Ann"})
    client.track("u1", "Order Completed", {"total": 120.5, "currency": "EUR"})
    client.page("u1", "Docs", "Getting started", {"path": "/docs"})
    client.screen("u1", "App", "Cart")
    client.group("u1", "acme", {"plan": "pro"})
    client.alias("anon-7", "u1")
    client.track(anonymous_id="anon-8", event="Product Viewed", properties={"sku": "x"})
    client.flush()


def check(live: Live, errors: list[Any], library: str) -> None:
    assert errors == []
    rows = stored(live)
    assert [(r[0], r[1]) for r in rows] == [
        ("identify", None),
        ("track", "Order Completed"),
        ("page", "Getting started"),
        ("screen", "Cart"),
        ("group", None),
        ("alias", None),
        ("track", "Product Viewed"),
    ]
    assert orjson.loads(rows[1][4]) == {"total": 120.5, "currency": "EUR"}
    assert orjson.loads(rows[0][5])["email"] == "ann@example.com"
    assert orjson.loads(rows[0][6])["library"]["name"] == library
    assert {r[7] for r in rows} == {"web"}
    # One person: the alias and the identify put everything on u1's profile, except the
    # anonymous product view that nothing links.
    profiles = live.workspace.store.fetchall(
        "SELECT count(DISTINCT profile_id) FROM events WHERE user_id = 'u1'"
    )
    assert profiles == [(1,)]


def test_segment_analytics_python(live: Live) -> None:
    from segment.analytics import Client

    errors: list[Any] = []
    client = Client(
        live.write_key, host=live.url, gzip=True, max_retries=0,
        on_error=lambda e, batch: errors.append(e),
    )  # fmt: skip
    exercise(client)
    client.shutdown()
    check(live, errors, "analytics-python")


def test_rudder_sdk_python(live: Live) -> None:
    from rudderstack.analytics.client import Client

    errors: list[Any] = []
    client = Client(
        live.write_key, host=live.url, max_retries=0,
        on_error=lambda e, batch: errors.append(e),
    )  # fmt: skip
    exercise(client)
    client.shutdown()
    check(live, errors, "analytics-python")
