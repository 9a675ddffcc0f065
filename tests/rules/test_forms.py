"""JSON form and JSON Schema, lowering, dependencies and next_transition."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jsonschema
import pytest

from segmint.config.model import AGGREGATES
from segmint.rules import (
    Compare,
    EventAggregate,
    Literal,
    RuleSyntaxError,
    TraitRef,
    dependencies,
    from_json,
    lower_events,
    next_transition,
    parse,
    to_json,
)
from segmint.rules.jsonschema import json_schema

AS_OF = datetime(2024, 5, 1, 12, tzinfo=UTC)
RULE = (
    "orders > 3 and not (name ilike 'a%' or x in (1, null)) and within(ts, '30 days') "
    "and performed('Order Completed', at_least => 2, within => '90 days', where => 'total > 50')"
    " and last_performed('Email Opened') >= timestamp '2024-01-01T00:00:00Z'"
    " and 'shoes' in cats and y between 1 and 2 and z is not null and in_segment('vip')"
    " and days_since(ts) * 2 / 3 - 1 < 5 and istarts_with(name, 'b')"
)


def test_json_round_trip_and_schema() -> None:
    expr = parse(RULE)
    doc = to_json(expr)
    assert from_json(doc) == expr
    assert to_json(from_json(doc)) == doc
    jsonschema.Draft202012Validator.check_schema(json_schema())
    jsonschema.validate(doc, json_schema())


def test_json_literal_timestamp() -> None:
    doc = to_json(parse("ts > timestamp '2024-01-01T00:00:00Z'"))
    assert doc["right"] == {
        "type": "literal",
        "value": "2024-01-01T00:00:00Z",
        "value_type": "timestamp",
    }


@pytest.mark.parametrize(
    ("doc", "fragment"),
    [
        ({"type": "comparee"}, "$.type: unknown node type 'comparee'"),
        ({"type": "not", "operand": {"type": "trait"}}, "$.operand"),
        ({"type": "compare", "op": "~", "left": {"type": "now"}, "right": {"type": "now"}}, "$.op"),
        ({"type": "and", "operands": [{"type": "now"}]}, "$.operands: expected a list"),
        ({"type": "trait", "name": "a", "extra": 1}, "$.extra: unknown field"),
        ([], "expected an object"),
    ],
)
def test_json_errors_name_the_path(doc: object, fragment: str) -> None:
    with pytest.raises(RuleSyntaxError) as info:
        from_json(doc)
    assert fragment in str(info.value)


def test_schema_refuses_a_malformed_tree() -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"type": "compare", "op": ">", "left": {"type": "now"}}, json_schema())


def test_lowering_names_are_stable_identifiers() -> None:
    expr = parse(
        "performed('A', where => 'total > 5') and not performed('A', where => 'total > 5')"
    )
    lowered, aggs = lower_events(expr)
    assert len(aggs) == 1
    agg = aggs[0]
    assert agg == EventAggregate("count", "A", "events", parse("total > 5"), None)
    assert agg.func in AGGREGATES
    assert agg.name == "__performed_" + agg.name.removeprefix("__performed_")
    assert agg.name.isidentifier() and len(agg.name) == len("__performed_") + 12
    assert agg.name == lower_events(parse("performed('A', where => 'total>5')"))[1][0].name
    assert str(lowered) == f"{agg.name} >= 1 and not {agg.name} >= 1"
    last = lower_events(parse("last_performed('A')"))
    assert last[0] == TraitRef(last[1][0].name)
    assert last[1][0].name.startswith("__last_performed_")


def test_performed_at_least_compares_the_count() -> None:
    lowered, (agg,) = lower_events(parse("performed('A', at_least => 3)"))
    assert lowered == Compare(">=", TraitRef(agg.name), Literal(3))


def test_dependencies() -> None:
    deps = dependencies(parse(RULE))
    assert deps.events == {"Order Completed", "Email Opened"}
    assert deps.segments == {"vip"}
    assert deps.time_dependent
    names = {a.name for a in deps.aggregates}
    assert deps.traits == {"orders", "name", "x", "ts", "cats", "y", "z"} | names
    plain = dependencies(parse("orders > 3 and performed('A', within => '3 days')"))
    assert plain.time_dependent and not plain.time_leaves  # the window moves with time


@pytest.mark.parametrize(
    ("rule", "row", "expected"),
    [
        ("ts >= now() - interval '30 days'", {"ts": AS_OF - timedelta(days=10)},
         AS_OF + timedelta(days=20, microseconds=1)),
        ("ts > now() - interval '30 days'", {"ts": AS_OF - timedelta(days=10)},
         AS_OF + timedelta(days=20)),
        ("within(ts, '1 day')", {"ts": AS_OF + timedelta(hours=5)}, AS_OF + timedelta(hours=5)),
        ("days_since(ts) > 12.5", {"ts": AS_OF - timedelta(days=10)},
         AS_OF + timedelta(days=2, hours=12, microseconds=1)),
        ("orders > 1 or days_since(ts) between 11 and 20", {"ts": AS_OF - timedelta(days=10)},
         AS_OF + timedelta(days=1)),
        ("days_since(ts) > 3", {"ts": None}, None),
        ("ts < now()", {"ts": AS_OF - timedelta(days=1)}, None),
        ("orders > 3", {"orders": 1}, None),
        ("now() + interval '1 day' > ts", {"ts": AS_OF + timedelta(days=2)},
         AS_OF + timedelta(days=1, microseconds=1)),
    ],
)  # fmt: skip
def test_next_transition(rule: str, row: dict[str, object], expected: datetime | None) -> None:
    expr = parse(rule)
    found = next_transition(expr, row, AS_OF)
    assert found == expected
    if found is not None:
        from segmint.rules import compile_python

        fn = compile_python(expr)
        before = fn(row, found - timedelta(microseconds=1))
        assert fn(row, AS_OF) == before != fn(row, found)
