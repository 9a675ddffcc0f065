from __future__ import annotations

import pytest

from segmint.rules import (
    RuleNameError,
    RuleTypeError,
    TraitSchema,
    check,
    diagnose,
    parse,
)

SCHEMA = TraitSchema(
    {
        "orders": "number",
        "avg_order_value": "number",
        "last_purchase_at": "timestamp",
        "first_name": "string",
        "email_consent": "boolean",
        "categories": "list",
        "favorite": "dynamic",
    },
    frozenset({"vip", "churned"}),
)


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("orders > 3", "boolean"),
        ("days_since(last_purchase_at)", "number"),
        ("last_purchase_at - interval '3 days'", "timestamp"),
        ("orders * 2 + avg_order_value", "number"),
        ("favorite = 3 and favorite like 'a%' and favorite", "boolean"),
        ("'x' in categories and in_segment('vip')", "boolean"),
        ("last_performed('E') > now() - interval '1 day'", "boolean"),
        ("performed('E', where => 'total > 5 and anything = ''x''')", "boolean"),
    ],
)
def test_well_typed(text: str, found: str) -> None:
    assert check(parse(text), SCHEMA, expect=None) == found


def test_unknown_trait_points_at_it_and_suggests() -> None:
    text = "avg_order_valu > 200"
    with pytest.raises(RuleNameError) as info:
        check(parse(text), SCHEMA)
    err = info.value
    assert (err.line, err.column) == (1, 1)
    assert err.hint == "did you mean 'avg_order_value'?"
    assert err.detailed_message() == (
        "1:1: unknown trait 'avg_order_valu'\n"
        "  1 | avg_order_valu > 200\n"
        "    | ^^^^^^^^^^^^^^ did you mean 'avg_order_value'?"
    )


@pytest.mark.parametrize(
    ("text", "kind", "column", "fragment"),
    [
        ("last_purchase_at > 30", RuleTypeError, 1, "cannot compare timestamp with number"),
        ("orders > 1 and first_name + 1 > 2", RuleTypeError, 16, "cannot apply '+'"),
        ("in_segment('vipp')", RuleNameError, 1, "unknown segment 'vipp'"),
        ("orders", RuleTypeError, 1, "a rule must be boolean"),
        ("orders > 1 and first_name", RuleTypeError, 16, "a condition must be boolean"),
        ("'x' in first_name", RuleTypeError, 8, "must be list"),
        ("within(orders, '3 days')", RuleTypeError, 8, "must be timestamp"),
        ("orders like 'a%'", RuleTypeError, 1, "text matching must be string"),
        ("categories = 'a'", RuleTypeError, 1, "cannot compare list with string"),
        ("email_consent in (1, 2)", RuleTypeError, 19, "cannot compare boolean with number"),
        ("performed('E', where => 'now() > total')", RuleTypeError, 26, "cannot be used"),
        ("performed('E', where => 'in_segment(''vip'')')", RuleTypeError, 26, "cannot be used"),
        ("orders between 1 and 'z'", RuleTypeError, 22, "cannot compare number with string"),
    ],
)
def test_type_errors(text: str, kind: type, column: int, fragment: str) -> None:
    with pytest.raises(kind) as info:
        check(parse(text), SCHEMA)
    assert info.value.column == column
    assert fragment in info.value.message


def test_diagnose_reports_every_problem() -> None:
    found, errors = diagnose(parse("ordrs > 1 and first_nam = 'a' or x"), SCHEMA)
    assert [str(e) for e in errors] == [
        "1:1: unknown trait 'ordrs'; did you mean 'orders'?",
        "1:15: unknown trait 'first_nam'; did you mean 'first_name'?",
        "1:34: unknown trait 'x'",
    ]
    assert found == "boolean"


def test_multiline_caret() -> None:
    text = "orders > 3\n  and last_purchase_at > 'yesterday'"
    with pytest.raises(RuleTypeError) as info:
        check(parse(text), SCHEMA)
    assert (info.value.line, info.value.column) == (2, 7)
    assert "  2 |   and last_purchase_at > 'yesterday'\n    |       ^^^^" in (
        info.value.detailed_message()
    )


def test_event_filter_schema_accepts_any_property_as_dynamic() -> None:
    schema = TraitSchema.event_properties()
    assert check(parse("total > 5 and name like 'a%' and is_gift"), schema) == "boolean"
    with pytest.raises(RuleTypeError):
        check(parse("performed('E')"), schema)
