from __future__ import annotations

import pytest

from segmint.rules import (
    And,
    Compare,
    InList,
    ListContains,
    Literal,
    Not,
    Performed,
    RuleNameError,
    RuleSyntaxError,
    RuleTypeError,
    TraitRef,
    parse,
)

CANONICAL = [
    "a > 3 and b < 2 or not c",
    "performed('Order Completed', at_least => 3, within => '90 days', where => 'total > 50')",
    "'shoes' in categories_viewed and x not in (1, 2, null)",
    "x between 1 and 2 and y like 'a%' and z not ilike 'b\\_%'",
    "last_purchase_at >= now() - interval '30 days'",
    "within(ts, '3 days') and days_since(ts) > 2.5 and (0 - x) * 3 > -2",
    "icontains(name, 'bob') and in_segment('vip') and last_performed('E') > timestamp "
    "'2024-01-01T00:00:00Z'",
    "a and (b and c)",
    "(a + b) * c - (d - e) > 1 and x / 2 <= 1.5e-05",
    "\"my trait\" is not null and \"select\" = 'it''s'",
    "not (a or b) and not not c",
    "starts_with(s, 'a') or ends_with(s, 'z') or contains(s, 'm') or istarts_with(s, 'A')",
    "performed('Email Opened', where => 'subject = ''Hi''') and not performed('Bounce')",
    "x = true and y != false and z <= 3 and w >= -1",
]


@pytest.mark.parametrize("text", CANONICAL)
def test_canonical_text_round_trips(text: str) -> None:
    expr = parse(text)
    assert str(expr) == text
    assert parse(str(expr)) == expr


def test_structure_and_precedence() -> None:
    expr = parse("not a = 1 and b in (1, 2) or 'x' in tags")
    assert expr == parse("((not (a = 1)) and (b in (1, 2))) or ('x' in tags)")
    top = expr.operands  # type: ignore[attr-defined]
    assert isinstance(top[0], And)
    assert top[0].operands[0] == Not(Compare("=", TraitRef("a"), Literal(1)))
    assert top[0].operands[1] == InList(TraitRef("b"), (Literal(1), Literal(2)))
    assert top[1] == ListContains(Literal("x"), TraitRef("tags"))


def test_keywords_are_case_insensitive_and_sql_spellings_accepted() -> None:
    assert parse("A > 1 AND B <> 2 OR NOT C IS NULL") == parse("A > 1 and B != 2 or not C is null")


def test_performed_arguments() -> None:
    expr = parse(
        "performed('Order Completed', at_least => 3, within => '90d', where => 'total > 50')"
    )
    assert isinstance(expr, Performed)
    assert expr.at_least == 3
    assert expr.within is not None and expr.within.days == 90
    assert expr.where == Compare(">", TraitRef("total"), Literal(50))


def test_spans_inside_where_point_at_the_outer_text() -> None:
    text = "performed('E', where => 'name = ''x''')"
    expr = parse(text)
    assert isinstance(expr, Performed) and expr.where is not None
    compare = expr.where
    assert isinstance(compare, Compare)
    assert compare.right.span is not None
    assert text[compare.right.span.start : compare.right.span.end] == "''x''"


@pytest.mark.parametrize(
    ("text", "kind", "column", "fragment"),
    [
        ("a > 1 and (select 1)", RuleSyntaxError, 12, "subqueries"),
        ("x in (select id from t)", RuleSyntaxError, 7, "subqueries"),
        ("lower(name) = 'a'", RuleNameError, 1, "unknown function 'lower'"),
        ("a > 1; drop table x", RuleSyntaxError, 6, "unexpected character ';'"),
        ("a > ", RuleSyntaxError, 5, "expected a value"),
        ("a > 1 b", RuleSyntaxError, 7, "unexpected 'b'"),
        ("a < b < c", RuleSyntaxError, 7, "do not chain"),
        ("name = 'abc", RuleSyntaxError, 8, "unterminated string"),
        ("within(ts)", RuleTypeError, 1, "takes 2 arguments"),
        ("performed('E', at_lest => 2)", RuleNameError, 16, "no argument 'at_lest'"),
        ("performed('E', where => 'total >')", RuleSyntaxError, 33, "expected a value"),
        ("within(ts, '3 months')", RuleSyntaxError, 12, "cannot read duration"),
        ("x = timestamp 'yesterday'", RuleSyntaxError, 15, "cannot read timestamp"),
        ("cast(x as int) > 1", RuleSyntaxError, 1, "casts"),
        ("", RuleSyntaxError, 1, "empty rule"),
    ],
)
def test_errors_carry_position(text: str, kind: type, column: int, fragment: str) -> None:
    with pytest.raises(kind) as info:
        parse(text)
    assert info.value.column == column
    assert info.value.line == 1
    assert fragment in info.value.message


def test_unknown_function_suggests_nearest() -> None:
    with pytest.raises(RuleNameError) as info:
        parse("days_snce(ts) > 3")
    assert info.value.hint == "did you mean 'days_since'?"
    detailed = info.value.detailed_message()
    assert "1 | days_snce(ts) > 3" in detailed
    assert "  | ^^^^^^^^^ did you mean 'days_since'?" in detailed


def test_multiline_rule_positions() -> None:
    with pytest.raises(RuleSyntaxError) as info:
        parse("a > 1\n  and b >\n  and c")
    assert (info.value.line, info.value.column) == (3, 3)


def test_literal_types_are_distinct() -> None:
    assert Literal(True) != Literal(1)
    assert len({Literal(True), Literal(1), Literal(1.0), Literal("1")}) == 4
