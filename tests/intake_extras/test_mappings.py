from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segmint.config.model import ImportDef
from segmint.intake.mappings import MappingError, RowError, RowMapper, to_timestamp

ORDERS = ImportDef(
    kind="track",
    event="Order Completed",
    user_id="customer_id",
    timestamp="created_at",
    key=("order_id",),
    properties={"order_id": "order_id", "total": "total", "items": "items", "paid": "paid"},
    types={"total": "number", "items": "integer", "paid": "boolean"},
)


def mapper(spec: ImportDef = ORDERS, name: str = "orders") -> RowMapper:
    return RowMapper.from_workspace({name: spec}, name)


def row(**values: object) -> dict[str, object]:
    base = {
        "order_id": "1001",
        "customer_id": "c1",
        "created_at": "2026-09-02 10:15:00 +0100",
        "total": "146.26",
        "items": "2",
        "paid": "yes",
    }
    return base | values


def test_track_row_maps_to_a_typed_segment_message() -> None:
    message = mapper()(row())
    assert message["type"] == "track"
    assert message["event"] == "Order Completed"
    assert message["userId"] == "c1"
    assert message["timestamp"] == "2026-09-02T09:15:00Z"
    assert message["properties"] == {"order_id": "1001", "total": 146.26, "items": 2, "paid": True}
    assert message["messageId"].startswith("imp-")


def test_empty_cells_are_left_out_not_nulled() -> None:
    message = mapper()(row(total="", paid="  "))
    assert "total" not in message["properties"]
    assert "paid" not in message["properties"]


@pytest.mark.parametrize(
    ("values", "column", "reason"),
    [
        ({"total": "12,50"}, "total", "'12,50'"),
        ({"total": "nan"}, "total", "finite"),
        ({"items": "2.5"}, "items", "whole number"),
        ({"paid": "maybe"}, "paid", "not a boolean"),
        ({"created_at": "yesterday"}, "created_at", "not a timestamp"),
        ({"customer_id": ""}, "customer_id", "no user id"),
    ],
)
def test_bad_values_name_the_column(values: dict[str, str], column: str, reason: str) -> None:
    with pytest.raises(RowError, match=reason) as info:
        mapper()(row(**values))
    assert info.value.column == column


def test_every_bad_cell_of_a_row_is_reported() -> None:
    with pytest.raises(RowError) as info:
        mapper()(row(total="12,50", items="2.5", created_at="yesterday", paid="maybe"))
    cells = {c.column: (c.value, c.reason) for c in info.value.cells}
    assert cells == {
        "created_at": ("yesterday", "'yesterday' is not a timestamp"),
        "total": ("12,50", "'12,50' is not a number (write the decimal point as '.')"),
        "items": ("2.5", "'2.5' is not a whole number"),
        "paid": ("maybe", "'maybe' is not a boolean (true/false, yes/no, 1/0)"),
    }
    assert info.value.column == "created_at"
    for column in cells:
        assert f"column '{column}': " in str(info.value)


def test_a_row_without_identity_also_names_its_other_bad_cells() -> None:
    with pytest.raises(RowError) as info:
        mapper()(row(customer_id="", total="abc"))
    assert [(c.column, c.reason) for c in info.value.cells] == [
        ("customer_id", "empty: no user id"),
        ("total", "'abc' is not a number"),
    ]


def test_message_id_depends_on_mapping_and_key_only() -> None:
    m = mapper()
    assert m.message_id(row()) == m.message_id(row(total="999"))
    assert m.message_id(row()) != m.message_id(row(order_id="1002"))
    assert mapper(name="other").message_id(row()) != m.message_id(row())


def test_without_key_the_whole_row_is_the_identity() -> None:
    m = mapper(ORDERS.model_copy(update={"key": ()}))
    assert m.message_id(row()) == m.message_id(dict(reversed(list(row().items()))))
    assert m.message_id(row()) != m.message_id(row(total="999"))


def test_message_id_template_matches_other_sources() -> None:
    spec = ORDERS.model_copy(update={"message_id": "shopify-order-{order_id}"})
    assert mapper(spec)(row())["messageId"] == "shopify-order-1001"
    with pytest.raises(RowError, match="order_id"):
        mapper(spec)(row(order_id=""))


def test_event_column_and_context_traits() -> None:
    spec = ImportDef(
        kind="track",
        event_column="name",
        anonymous_id="anon",
        traits={"email": "email"},
        properties={"path": "path"},
    )
    message = mapper(spec)({"name": "Page Viewed ", "anon": "a-1", "email": "x@y.z", "path": "/"})
    assert message["event"] == "Page Viewed"
    assert message["anonymousId"] == "a-1"
    assert message["context"] == {"traits": {"email": "x@y.z"}}
    with pytest.raises(RowError, match="no event name"):
        mapper(spec)({"name": "", "anon": "a-1"})


def test_identify_contacts() -> None:
    spec = ImportDef(
        kind="identify",
        user_id="id",
        traits={"email": "email", "consent": "opt", "since": "created"},
        types={"opt": "boolean", "created": "timestamp"},
    )
    message = mapper(spec)({"id": 42.0, "email": "a@b.c", "opt": "N", "created": date(2024, 1, 2)})
    assert message == {
        "type": "identify",
        "messageId": message["messageId"],
        "userId": "42",
        "traits": {"email": "a@b.c", "consent": False, "since": "2024-01-02T00:00:00Z"},
    }


def test_native_parquet_values_become_json_ready() -> None:
    spec = ORDERS.model_copy(update={"types": {}})
    at = datetime(2026, 1, 1, 12, tzinfo=UTC)
    message = mapper(spec)(row(total=Decimal("10.5"), created_at=at, paid=at))
    assert message["properties"]["total"] == 10.5
    assert message["properties"]["paid"] == "2026-01-01T12:00:00Z"
    assert message["timestamp"] == "2026-01-01T12:00:00Z"


def test_incomplete_or_unknown_mappings_are_refused() -> None:
    with pytest.raises(MappingError, match="did you mean 'orders'"):
        RowMapper.from_workspace({"orders": ORDERS}, "order")
    with pytest.raises(MappingError, match="names no event"):
        mapper(ImportDef(kind="track", user_id="u"))
    with pytest.raises(MappingError, match="no user_id"):
        mapper(ImportDef(kind="identify"))


def test_missing_columns_are_named_with_a_suggestion() -> None:
    with pytest.raises(MappingError, match="'customer_id'.*did you mean 'customerid'"):
        mapper().check_columns(["order_id", "customerid", "created_at", "total", "items", "paid"])


def test_epoch_seconds_and_millis() -> None:
    assert to_timestamp(1_700_000_000, "t") == "2023-11-14T22:13:20Z"
    assert to_timestamp(1_700_000_000_000, "t") == "2023-11-14T22:13:20Z"


@settings(max_examples=50, deadline=None)
@given(
    st.datetimes(
        min_value=datetime(1971, 1, 1),
        max_value=datetime(2100, 1, 1),
        timezones=st.sampled_from([UTC]),
    )
)
def test_text_and_native_timestamps_agree(at: datetime) -> None:
    """A CSV's ISO text and a Parquet column's datetime map to the same instant."""
    assert to_timestamp(at.isoformat(), "t") == to_timestamp(at, "t")
    assert to_timestamp(at.isoformat(sep=" ").replace("+00:00", " +0000"), "t") == to_timestamp(
        at, "t"
    )
