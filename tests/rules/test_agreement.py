"""Property tests: random well-typed rules over random profiles with NULLs give the same
answer in Python and in SQL (DuckDB, and PostgreSQL when reachable)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segmint.rules import (
    And,
    Arithmetic,
    Between,
    Compare,
    DaysSince,
    Expr,
    InList,
    InSegment,
    Interval,
    IsNull,
    LastPerformed,
    Like,
    ListContains,
    Literal,
    Not,
    Now,
    Or,
    Performed,
    StringMatch,
    TraitRef,
    Within,
    check,
    parse,
)
from segmint.rules.jsonschema import json_schema

from .conftest import SCHEMA, Event, Profile, evaluate_python  # type: ignore[import-not-found]

AS_OF = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
WORDS = ["", "a", "ab", "Ab", "b_", "a%", "ba", "B"]
NUMBERS = [-2, -1, 0, 0.5, 1, 2, 3.25]
DYNAMIC = ["1", "2.5", "-3", "abc", "true", "FALSE", "", "1e2", "a%"]
OPS = ["=", "!=", "<", "<=", ">", ">="]
DURATIONS = [timedelta(hours=6), timedelta(days=1), timedelta(days=3)]


def instants() -> st.SearchStrategy[datetime]:
    return st.integers(-120, 120).map(lambda h: AS_OF + timedelta(hours=h))


def maybe(strategy: st.SearchStrategy[Any], none: float = 0.25) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), strategy) if none else strategy


# -- values of each type -------------------------------------------------------------------
def numbers(depth: int) -> st.SearchStrategy[Expr]:
    leaves = st.one_of(
        st.sampled_from([TraitRef("n1"), TraitRef("n2")]),
        st.sampled_from(NUMBERS).map(Literal),
    )
    if depth <= 0:
        return leaves
    sub = numbers(depth - 1)
    return st.one_of(
        leaves,
        st.builds(Arithmetic, st.sampled_from(["+", "-", "*", "/"]), sub, sub),
        st.builds(DaysSince, timestamps(depth - 1)),
        st.builds(Arithmetic, st.sampled_from(["+", "*"]), st.just(TraitRef("d1")), sub),
    )


def strings(depth: int) -> st.SearchStrategy[Expr]:
    return st.one_of(
        st.sampled_from([TraitRef("s1"), TraitRef("s2")]),
        st.sampled_from(WORDS).map(Literal),
    )


def timestamps(depth: int) -> st.SearchStrategy[Expr]:
    leaves = st.one_of(
        st.sampled_from([TraitRef("t1"), TraitRef("t2"), Now()]),
        instants().map(Literal),
        st.just(LastPerformed("Order Completed")),
    )
    if depth <= 0:
        return leaves
    intervals = st.sampled_from(DURATIONS).map(Interval)
    return st.one_of(
        leaves, st.builds(Arithmetic, st.sampled_from(["+", "-"]), timestamps(depth - 1), intervals)
    )


def comparisons(depth: int) -> st.SearchStrategy[Expr]:
    ops = st.sampled_from(OPS)
    null = st.just(Literal(None))
    dyn = st.just(TraitRef("d1"))
    return st.one_of(
        st.builds(Compare, ops, numbers(depth), st.one_of(numbers(depth), null)),
        st.builds(Compare, ops, strings(depth), strings(depth)),
        st.builds(Compare, ops, timestamps(depth), timestamps(depth)),
        st.builds(
            Compare, ops, st.just(TraitRef("b1")), st.sampled_from([True, False]).map(Literal)
        ),
        st.builds(Compare, ops, dyn, st.one_of(numbers(0), strings(0), dyn)),
        st.builds(
            Compare, st.sampled_from(["=", "!="]), dyn, st.sampled_from([True, False]).map(Literal)
        ),
    )


def predicates(depth: int) -> st.SearchStrategy[Expr]:
    lists = st.lists(st.one_of(numbers(0), st.just(Literal(None))), min_size=1, max_size=3)
    words = st.lists(st.sampled_from(WORDS + [None]).map(Literal), min_size=1, max_size=3)
    patterns = st.sampled_from(["a%", "%b", "_", "%", "A_", "a\\%", "%a%"]).map(Literal)
    flags = st.booleans()
    return st.one_of(
        comparisons(depth),
        st.builds(InList, numbers(depth), lists.map(tuple), flags),
        st.builds(InList, st.one_of(strings(0), st.just(TraitRef("d1"))), words.map(tuple), flags),
        st.builds(
            ListContains,
            st.one_of(strings(0), st.just(Literal(None))),
            st.just(TraitRef("l1")),
            flags,
        ),
        st.builds(Between, numbers(depth), numbers(0), numbers(0), flags),
        st.builds(Between, timestamps(depth), timestamps(0), timestamps(0), flags),
        st.builds(
            IsNull,
            st.one_of(numbers(depth), strings(0), timestamps(0), st.just(TraitRef("l1"))),
            flags,
        ),
        st.builds(Like, st.one_of(strings(0), st.just(TraitRef("d1"))), patterns, flags, flags),
        st.builds(
            StringMatch,
            st.sampled_from(["contains", "starts_with", "ends_with"]),
            st.one_of(strings(0), st.just(TraitRef("d1"))),
            strings(0),
            flags,
        ),
        st.builds(Within, timestamps(depth), st.sampled_from(DURATIONS)),
        st.sampled_from([InSegment("vip"), InSegment("churned"), TraitRef("b1")]),
        st.sampled_from([Literal(True), Literal(False), Literal(None)]),
        st.builds(
            Performed,
            st.sampled_from(["Order Completed", "Email Opened"]),
            st.integers(0, 3),
            st.sampled_from([None, *DURATIONS]),
            st.sampled_from([None, parse("total > 5"), parse("subject = 'Hi' or is_gift")]),
        ),
    )


def rules(depth: int = 4) -> st.SearchStrategy[Expr]:
    if depth <= 1:
        return predicates(0)
    sub = rules(depth - 1)
    many = st.lists(sub, min_size=2, max_size=3).map(tuple)
    return st.one_of(
        st.builds(And, many),
        st.builds(Or, many),
        st.builds(Not, sub),
        predicates(min(depth - 1, 2)),
    )


# -- profiles --------------------------------------------------------------------------------
def events() -> st.SearchStrategy[list[Event]]:
    props = st.fixed_dictionaries(
        {},
        optional={
            "total": st.sampled_from([3, 7, 5.5, "12", "x", None, True]),
            "subject": st.sampled_from(["Hi", "Yo", None, 1]),
            "is_gift": st.sampled_from([True, False, "true", None]),
        },
    )
    one = st.builds(
        Event,
        st.sampled_from(["Order Completed", "Email Opened", "Other"]),
        st.integers(-100, 10).map(lambda h: AS_OF + timedelta(hours=h)),
        props,
    )
    return st.lists(one, max_size=4)


def profiles() -> st.SearchStrategy[Profile]:
    traits = st.fixed_dictionaries(
        {
            "n1": maybe(st.sampled_from(NUMBERS)),
            "n2": maybe(st.sampled_from(NUMBERS)),
            "s1": maybe(st.sampled_from(WORDS)),
            "s2": maybe(st.sampled_from(WORDS)),
            "b1": maybe(st.booleans()),
            "t1": maybe(instants()),
            "t2": maybe(instants()),
            "l1": maybe(st.lists(st.sampled_from(WORDS), max_size=3)),
            "d1": maybe(st.sampled_from(DYNAMIC)),
        }
    )
    segments = st.frozensets(st.sampled_from(["vip", "churned"]))
    return st.builds(Profile, traits, segments, events())


VALIDATOR = jsonschema.Draft202012Validator(json_schema())
SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@SETTINGS
@given(rule=rules(), people=st.lists(profiles(), min_size=1, max_size=6))
def test_python_equals_sql(sql_backend: Any, rule: Expr, people: list[Profile]) -> None:
    check(rule, SCHEMA)
    expected = evaluate_python(rule, people, AS_OF)
    assert sql_backend.evaluate(rule, people, AS_OF) == expected, str(rule)


@given(rule=rules())
@settings(max_examples=100, deadline=None)
def test_generated_rules_round_trip_through_text_and_json(rule: Expr) -> None:
    from segmint.rules import from_json, to_json

    assert parse(str(rule)) == rule
    assert from_json(to_json(rule)) == rule
    assert to_json(from_json(to_json(rule))) == to_json(rule)
    VALIDATOR.validate(to_json(rule))


@pytest.mark.parametrize("text", ["n1 > 1 and (s1 = 'a' or not b1)"])
def test_smoke(duck_backend: Any, text: str) -> None:
    people = [Profile({"n1": 2, "s1": "a", "b1": None}), Profile({})]
    rule = parse(text)
    assert duck_backend.evaluate(rule, people, AS_OF) == evaluate_python(rule, people, AS_OF)
    assert evaluate_python(rule, people, AS_OF) == [True, None]
