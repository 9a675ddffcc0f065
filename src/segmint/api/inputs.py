"""Request values every management route reads alike: instants.

An instant a client sends (``as_of``, ``from``, a consent's ``timestamp``) is read as
``--as-of`` is on the command line (:func:`segmint.clock.parse_instant` given the server's
now): ISO 8601, ``now`` or an offset from it, between :data:`segmint.clock.EARLIEST` and
:data:`segmint.clock.LATEST`. Outside that range an instant is refused, as intake refuses an
event's: evaluating rules there overflows the calendar, and a statement dated then means
nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import overload

from segmint.api.errors import ApiError
from segmint.clock import parse_instant


@overload
def instant(value: str | None, field: str, default: datetime, *, now: datetime) -> datetime: ...
@overload
def instant(value: str | None, field: str, default: None, *, now: datetime) -> datetime | None: ...


def instant(
    value: str | None, field: str, default: datetime | None, *, now: datetime
) -> datetime | None:
    """``value`` read as an instant, or ``default`` when absent.

    Args:
        value: The text the client sent (None or empty: absent).
        field: The request field it came from, named in the error.
        default: What an absent value means.
        now: The server's now, for ``now`` and offsets (``-7d``).

    Raises:
        ApiError: 422 naming ``field``, for text that is no instant or one out of range.
    """
    if value is None or value == "":
        return default
    try:
        return parse_instant(value, now=now)
    except ValueError as exc:
        raise ApiError(422, "invalid_request", f"{field}: {exc}", field) from None
