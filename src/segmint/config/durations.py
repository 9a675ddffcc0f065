"""Parsing of the short duration syntax used in workspaces: ``30d``, ``12h``, ``90 days``."""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS = {
    "s": "seconds", "sec": "seconds", "second": "seconds", "seconds": "seconds",
    "m": "minutes", "min": "minutes", "minute": "minutes", "minutes": "minutes",
    "h": "hours", "hour": "hours", "hours": "hours",
    "d": "days", "day": "days", "days": "days",
    "w": "weeks", "week": "weeks", "weeks": "weeks",
}  # fmt: skip
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]+)\s*$")


def parse_duration(text: str) -> timedelta:
    """Parse ``30d``, ``12 hours``, ``90 days`` or ``2w`` into a timedelta.

    Months and years are refused on purpose: their length varies, so a window written in
    them would not mean one thing.

    Raises:
        ValueError: With a message that says which forms are accepted.
    """
    match = _PATTERN.match(text)
    unit = _UNITS.get(match.group(2).lower()) if match else None
    if match is None or unit is None:
        raise ValueError(
            f"cannot read duration {text!r}: write a number and a unit, e.g. '30d', "
            "'12h', '90 days' (units: s, m, h, d, w)"
        )
    return timedelta(**{unit: float(match.group(1))})


def format_duration(value: timedelta) -> str:
    """Format a timedelta canonically in the largest whole unit (``30 days``, ``90 minutes``)."""
    seconds = int(value.total_seconds())
    for unit, size in (("weeks", 604800), ("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds and seconds % size == 0 and unit != "weeks":
            count = seconds // size
            return f"{count} {unit if count != 1 else unit[:-1]}"
    return f"{seconds} seconds" if seconds != 1 else "1 second"
