"""The golden cases (golden.yaml), run through the Python compiler and the SQL compiler
on DuckDB and PostgreSQL: every result must be the expected three-valued answer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from segmint.clock import parse_instant
from segmint.rules import check, parse
from segmint.rules.ast import NODE_TYPES, walk

from .conftest import COLUMNS, SCHEMA, Event, Profile, evaluate_python  # type: ignore[import-not-found]

DOC = YAML(typ="safe").load((Path(__file__).parent / "golden.yaml").read_text())
AS_OF = parse_instant(DOC["as_of"])
CASES = DOC["cases"]
IDS = [f"{i}:{c['rule']}" for i, c in enumerate(CASES)]


def profile(case: dict[str, Any]) -> Profile:
    traits = dict(case.get("traits") or {})
    for name, value in traits.items():
        if COLUMNS[name][0] == "timestamp" and value is not None:
            traits[name] = parse_instant(value)
    events = [
        Event(e["event"], parse_instant(e["at"]), e.get("properties") or {})
        for e in case.get("events") or []
    ]
    return Profile(traits, frozenset(case.get("segments") or ()), events)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_python(case: dict[str, Any]) -> None:
    rule = parse(case["rule"])
    check(rule, SCHEMA)
    assert evaluate_python(rule, [profile(case)], AS_OF) == [case["expected"]]


def test_sql(sql_backend: Any) -> None:
    failures = []
    for case in CASES:
        got = sql_backend.evaluate(parse(case["rule"]), [profile(case)], AS_OF)
        if got != [case["expected"]]:
            failures.append((case["rule"], got, case["expected"]))
    assert failures == []


def test_every_node_type_is_covered() -> None:
    seen: set[type] = set()
    for case in CASES:
        rule = parse(case["rule"])
        seen |= {type(n) for n in walk(rule)}
        seen |= {type(n) for p in walk(rule) if getattr(p, "where", None) for n in walk(p.where)}
    assert seen == set(NODE_TYPES)


def test_every_null_case_is_covered() -> None:
    nulls = [c for c in CASES if c["expected"] is None]
    assert len(nulls) >= 20
