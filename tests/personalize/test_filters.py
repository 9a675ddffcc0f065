"""Filters: money, dates in the profile's time zone, plurals, fallbacks."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segmint.personalize import RenderedEmail, TemplateRenderError
from segmint.personalize.filters import format_date, money, pluralize

Render = Callable[..., RenderedEmail]


@pytest.mark.parametrize(
    ("value", "args", "expected"),
    [
        (1234.5, ("EUR",), "€1,234.50"),
        (0, ("USD",), "$0.00"),
        (-5, ("GBP",), "-£5.00"),
        (2.675, ("EUR",), "€2.68"),  # half-up on the decimal text, not the float's binary value
        (1234567.891, ("EUR", "de"), "1.234.567,89\u00a0€"),
        (-1234.5, ("EUR", "de"), "-1.234,50\u00a0€"),
        (1234.5, ("EUR", "fr"), "1\u202f234,50\u00a0€"),
        (1234.5, ("EUR", "nl"), "€\u00a01.234,50"),
        (1234.4, ("JPY",), "¥1,234"),
        (1.2345, ("KWD",), "KWD1.235"),
        ("99.9", ("CHF",), "CHF99.90"),
        (12, ("XYZ",), "XYZ12.00"),
        (None, ("EUR",), ""),
    ],
)
def test_money(value: object, args: tuple[str, ...], expected: str) -> None:
    assert money(value, *args) == expected


def test_money_rejects_bad_input() -> None:
    with pytest.raises(TemplateRenderError, match="not a number"):
        money("lots", "EUR")
    with pytest.raises(TemplateRenderError, match="unknown locale"):
        money(1, "EUR", "xx")


@settings(max_examples=60, deadline=None)
@given(st.decimals(min_value=-(10**9), max_value=10**9, places=2, allow_nan=False))
def test_money_round_trips_the_amount(amount: Decimal) -> None:
    text = money(amount, "EUR", "de")
    number = text.replace("\u00a0€", "").replace(".", "").replace(",", ".")
    assert Decimal(number) == amount


def test_dates_in_profile_time_zone(render: Render) -> None:
    body = (
        "<p>{{ last_purchase_at | date('datetime') }} / {{ last_purchase_at | date('full') }}</p>"
    )
    at = datetime(2026, 3, 1, 23, 30, tzinfo=UTC)
    berlin = render(body, {"last_purchase_at": at, "timezone": "Europe/Berlin"})
    assert "2 Mar 2026, 00:30 / Monday, 2 March 2026" in berlin.text
    default = render(body, {"last_purchase_at": at})  # trait default UTC
    assert "1 Mar 2026, 23:30" in default.text
    unknown = render(body, {"last_purchase_at": at, "timezone": "Mars/Olympus"})
    assert "1 Mar 2026, 23:30" in unknown.text


def test_date_formats() -> None:
    at = datetime(2026, 11, 28, 9, 5, tzinfo=UTC)
    assert format_date(at, "short") == "2026-11-28"
    assert format_date(at, "medium") == "28 Nov 2026"
    assert format_date(at, "long", tz="America/New_York") == "28 November 2026"
    assert format_date(at, "time", tz="Asia/Tokyo") == "18:05"
    assert format_date("2026-11-28T09:05:00Z", "%d/%m %H:%M") == "28/11 09:05"
    assert format_date(date(2026, 1, 2), "long") == "2 January 2026"
    assert format_date(None) == ""
    with pytest.raises(TemplateRenderError):
        format_date("yesterday")


@pytest.mark.parametrize(
    ("count", "args", "expected"),
    [
        (1, (), ""),
        (2, (), "s"),
        (0, ("es",), "es"),
        (1, ("y,ies",), "y"),
        (3, ("y,ies",), "ies"),
        (1, ("time", "times"), "time"),
        (1.0, ("time", "times"), "time"),
        (5, ("time", "times"), "times"),
        (None, ("item", "items"), "items"),
    ],
)
def test_pluralize(count: object, args: tuple[str, ...], expected: str) -> None:
    assert pluralize(count, *args) == expected


def test_filters_in_a_template(render: Render) -> None:
    body = (
        "<p>{{ lifetime_value | money('EUR') }} over {{ orders }} "
        "order{{ orders | pluralize }}; {{ first_name | d('friend') | title }}</p>"
    )
    email = render(body, {"lifetime_value": 1500, "orders": 1})
    assert "€1,500.00 over 1 order; Friend" in email.text
