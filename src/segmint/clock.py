"""Clocks. Core logic never reads the wall clock; it takes ``as_of`` from one of these."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Protocol

from segmint.common import parse_duration


class Clock(Protocol):
    """Something that says what time it is (always timezone-aware UTC)."""

    def now(self) -> datetime:
        """Return the current instant."""
        ...


class SystemClock:
    """The real clock, used only at the edges (server, CLI)."""

    def now(self) -> datetime:
        """Return the current UTC instant."""
        return datetime.now(UTC)


class FixedClock:
    """A clock that stands still until moved; for tests and replays."""

    def __init__(self, at: datetime) -> None:
        self._at = ensure_utc(at)

    def now(self) -> datetime:
        """Return the instant the clock was set to."""
        return self._at

    def set(self, at: datetime) -> None:
        """Move the clock to ``at``."""
        self._at = ensure_utc(at)

    def advance(self, delta: timedelta) -> datetime:
        """Move the clock forward by ``delta`` and return the new instant."""
        self._at = self._at + delta
        return self._at


def ensure_utc(value: datetime) -> datetime:
    """Return ``value`` as an aware UTC datetime; naive values are taken to be UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


#: The instants segmint accepts, from :data:`EARLIEST` up to, not including, :data:`LATEST`:
#: event times at intake and the instants a person asks for (``--as-of``) alike. Rules and
#: windows add intervals to them, so the ends of Python's datetime range would overflow
#: (``9999-12-31`` plus 30 days); before the start lie only typos and zero dates.
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)

#: What :func:`parse_instant` accepts when given ``now``; error messages quote it.
INSTANT_FORMS = (
    "an ISO 8601 date or date-time (2026-11-01, 2026-11-01T09:30:00Z, "
    "2026-11-01T10:30:00+01:00; without an offset it is UTC), 'now', "
    "or an offset from now such as '-7d', '+2h', 'now-90 minutes'"
)


class InstantOutOfRange(ValueError):
    """An instant that reads well but lies outside :data:`EARLIEST`…:data:`LATEST`."""


_RELATIVE = re.compile(r"^(?:now)?\s*([+-])\s*(\S.*)$", re.IGNORECASE)


def parse_instant(text: str, now: datetime | None = None) -> datetime:
    """Parse an ISO 8601 instant (``Z`` suffix allowed) into an aware UTC datetime.

    A date alone is midnight UTC; a date-time without an offset is taken to be UTC.

    Args:
        text: The text to read.
        now: Given for instants a person types (``--as-of``): then ``now``, offsets from it
            (``-7d``, ``+2h``, ``now-90 minutes``; units of
            :func:`segmint.common.parse_duration`) are accepted too, and the result must lie
            between :data:`EARLIEST` and :data:`LATEST`.

    Raises:
        ValueError: If the text is none of the accepted forms, or out of range.
    """
    cleaned = text.strip()
    if now is not None:
        return _bounded(_relative(cleaned, ensure_utc(now)), text)
    return _iso(cleaned, text)


def _iso(cleaned: str, text: str) -> datetime:
    if cleaned.endswith(("Z", "z")):
        cleaned = cleaned[:-1] + "+00:00"
    try:
        return ensure_utc(datetime.fromisoformat(cleaned))
    except ValueError as exc:  # "day is out of range for month" says more than "not ISO"
        why = "not ISO 8601" if str(exc).startswith("Invalid isoformat") else str(exc)
        raise ValueError(f"cannot read instant {text!r}: {why}") from None
    except OverflowError:  # a valid local time whose UTC equivalent is out of range
        raise InstantOutOfRange(f"instant {text!r} is out of range") from None


def _relative(cleaned: str, now: datetime) -> datetime:
    if cleaned.lower() == "now":
        return now
    match = _RELATIVE.match(cleaned)
    if match is None:
        return _iso(cleaned, cleaned)
    try:
        delta = parse_duration(match.group(2))
        return now + delta if match.group(1) == "+" else now - delta
    except ValueError as exc:
        raise ValueError(f"cannot read instant {cleaned!r}: {exc}") from None
    except OverflowError:
        raise InstantOutOfRange(f"instant {cleaned!r} is out of range") from None


def _bounded(value: datetime, text: str) -> datetime:
    if not EARLIEST <= value < LATEST:
        raise InstantOutOfRange(
            f"instant {text.strip()!r} is out of range: give one between "
            f"{EARLIEST.date()} and {(LATEST - timedelta(days=1)).date()}"
        )
    return value
