"""Transitions past the last instant a datetime holds are "never", not an OverflowError."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from segmint.rules import TraitSchema, next_transition, parse

AS_OF = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LAST = datetime.max.replace(tzinfo=UTC)
SCHEMA = TraitSchema({"last_purchase_at": "timestamp", "orders": "number"})


@pytest.mark.parametrize(
    "rule",
    [
        "last_purchase_at >= now() - interval '30 days'",
        "last_purchase_at < now() - interval '1 day'",
        "within(last_purchase_at, '90d')",
        "days_since(last_purchase_at) <= 3 and orders > 0",
    ],
)
@pytest.mark.parametrize("offset", [timedelta(0), timedelta(days=1), timedelta(days=400)])
def test_a_flip_beyond_year_9999_never_comes(rule: str, offset: timedelta) -> None:
    row = {"last_purchase_at": LAST - offset, "orders": 1}
    found = next_transition(parse(rule), row, AS_OF, schema=SCHEMA)
    # no flip can be represented, or one well before the end of time (the rule's own bounds)
    assert found is None or AS_OF < found <= LAST


def test_a_flip_just_before_the_end_of_time_is_still_found() -> None:
    row = {"last_purchase_at": LAST - timedelta(days=40)}
    found = next_transition(
        parse("last_purchase_at >= now() - interval '30 days'"),
        row,
        LAST - timedelta(days=20),
        schema=SCHEMA,
    )
    assert found is not None and found > LAST - timedelta(days=20)
