"""Instants a person types: ISO 8601 forms, ``now`` and offsets from it, and their range."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from segmint.clock import EARLIEST, LATEST, InstantOutOfRange, parse_instant

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)

instants = st.datetimes(
    min_value=datetime(1900, 1, 2), max_value=datetime(2199, 12, 30), timezones=st.just(UTC)
)
offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)


@given(instants, offsets)
def test_iso_round_trip_in_any_offset(value: datetime, offset: timezone) -> None:
    local = value.astimezone(offset)
    assert parse_instant(local.isoformat()) == value
    assert parse_instant(local.isoformat(), now=NOW) == value


@given(instants)
def test_z_suffix_and_naive_text_are_utc(value: datetime) -> None:
    naive = value.replace(tzinfo=None).isoformat()
    assert parse_instant(naive + "Z", now=NOW) == value
    assert parse_instant(naive, now=NOW) == value


@given(st.dates(min_value=datetime(1900, 1, 1).date(), max_value=datetime(2199, 12, 31).date()))
def test_a_date_alone_is_midnight_utc(day: object) -> None:
    assert parse_instant(str(day), now=NOW) == datetime.fromisoformat(f"{day}T00:00:00+00:00")


units = st.sampled_from(
    [("s", 1), ("m", 60), ("h", 3600), ("d", 86400), ("w", 604800), (" days", 86400)]
)


@given(st.integers(min_value=0, max_value=5000), units, st.sampled_from(["+", "-"]))
def test_offsets_from_now(count: int, unit: tuple[str, int], sign: str) -> None:
    delta = timedelta(seconds=count * unit[1])
    expected = NOW + delta if sign == "+" else NOW - delta
    assert parse_instant(f"{sign}{count}{unit[0]}", now=NOW) == expected
    assert parse_instant(f"now {sign} {count}{unit[0]}", now=NOW) == expected


def test_now_is_the_given_instant() -> None:
    assert parse_instant("now", now=NOW) == NOW
    assert parse_instant(" NOW ", now=NOW) == NOW


def test_relative_forms_need_now() -> None:
    with pytest.raises(ValueError, match="not ISO 8601"):
        parse_instant("-7d")
    with pytest.raises(ValueError, match="not ISO 8601"):
        parse_instant("now")


@pytest.mark.parametrize("text", ["yesterday", "2026-13-01", "7d", "", "-7x", "now-", "+d"])
def test_unreadable_text_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_instant(text, now=NOW)
    assert not isinstance(info.value, InstantOutOfRange)


@pytest.mark.parametrize(
    "text",
    [
        "9999-12-31",
        "9999-12-31T23:59:59Z",
        "0001-01-01",
        "1899-12-31T23:59:59Z",
        "3000-01-01",
        "+1000000d",
        "-999999999d",
        "9999-12-31T23:59:59-01:00",
    ],
)
def test_out_of_range_is_a_clear_value_error(text: str) -> None:
    with pytest.raises(InstantOutOfRange, match="out of range"):
        parse_instant(text, now=NOW)


def test_range_ends_are_accepted() -> None:
    assert parse_instant("1900-01-01", now=NOW) == EARLIEST
    last = parse_instant("2199-12-31T23:59:59.999999Z", now=NOW)
    assert last < LATEST and LATEST - last == timedelta(microseconds=1)
    with pytest.raises(InstantOutOfRange, match="between 1900-01-01 and 2199-12-31"):
        parse_instant("2200-01-01", now=NOW)


def test_intake_and_the_cli_accept_the_same_range() -> None:
    from segmint.intake import payloads

    assert (payloads.EARLIEST, payloads.LATEST) == (EARLIEST, LATEST)


def test_overflow_without_now_is_a_value_error_too() -> None:
    with pytest.raises(ValueError, match="out of range"):
        parse_instant("9999-12-31T23:59:59-01:00")


def test_an_impossible_date_says_why() -> None:
    with pytest.raises(ValueError, match="day is out of range for month"):
        parse_instant("2026-02-30", now=NOW)
