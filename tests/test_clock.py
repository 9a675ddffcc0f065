from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from segmint.clock import FixedClock, ensure_utc, parse_instant


def test_fixed_clock_moves_only_when_told() -> None:
    clock = FixedClock(datetime(2026, 1, 1))
    assert clock.now() == datetime(2026, 1, 1, tzinfo=UTC)
    assert clock.advance(timedelta(hours=2)) == datetime(2026, 1, 1, 2, tzinfo=UTC)
    assert clock.now() == datetime(2026, 1, 1, 2, tzinfo=UTC)


def test_parse_instant_accepts_z_and_offsets() -> None:
    assert parse_instant("2026-03-01T10:00:00Z") == datetime(2026, 3, 1, 10, tzinfo=UTC)
    assert parse_instant("2026-03-01T12:00:00+02:00") == datetime(2026, 3, 1, 10, tzinfo=UTC)
    with pytest.raises(ValueError):
        parse_instant("yesterday")


def test_ensure_utc_converts_offsets() -> None:
    cet = timezone(timedelta(hours=1))
    assert ensure_utc(datetime(2026, 1, 1, 1, tzinfo=cet)) == datetime(2026, 1, 1, tzinfo=UTC)
