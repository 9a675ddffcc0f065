"""``time_dependent``: every way a rule's value can change with no new event."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from segmint.rules import dependencies, parse
from segmint.workspace import Workspace

TIME_RELATIVE = [
    ("now()", "last_seen_at > now() - interval '3 days'", True),
    ("within()", "within(last_seen_at, '30 days')", True),
    ("days_since()", "days_since(last_seen_at) > 30", True),
    ("performed within", "performed('Order Completed', within => '3 days')", False),
    ("performed within, filtered", "performed('A', within => '2h', where => 'total > 5')", False),
    ("at_least within", "performed('A', at_least => 2, within => '1d')", False),
    ("under not", "not within(last_seen_at, '1 day')", True),
    ("inside or", "event_count > 3 or days_since(first_seen_at) < 2", True),
]


@pytest.mark.parametrize(
    ("label", "rule", "leaf"), TIME_RELATIVE, ids=[t[0] for t in TIME_RELATIVE]
)
def test_every_time_relative_node_is_time_dependent(label: str, rule: str, leaf: bool) -> None:
    deps = dependencies(parse(rule))
    assert deps.time_dependent, label
    assert deps.time_leaves is leaf  # windows are the traits engine's, leaves the solver's


@pytest.mark.parametrize(
    "rule",
    [
        "event_count > 3",
        "performed('Order Completed')",
        "last_performed('A') > '2026-01-01T00:00:00Z'",
        "in_segment('vip')",
    ],
)
def test_rules_without_time_are_not(rule: str) -> None:
    deps = dependencies(parse(rule))
    assert not deps.time_dependent and not deps.time_leaves


def test_reading_a_moving_trait_is_time_dependent() -> None:
    deps = dependencies(parse("opens_30d >= 3 and orders > 1"), moving={"opens_30d"})
    assert deps.time_dependent and not deps.time_leaves
    assert not dependencies(parse("orders > 1"), moving={"opens_30d"}).time_dependent


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ("days_since_purchase > 30", True),  # derived: days_since(last_purchase_at)
        ("emails_opened_30d >= 3", True),  # computed with within: 30d
        ("big_orders_90d > 0", True),
        ("performed('Order Completed', within => '3 days')", True),
        ("days_since(last_purchase_at) > 30", True),
        ("lifetime_value > 100", False),
    ],
)
def test_rules_check_reports_it_through_the_cli(
    cli: Callable[..., Any], workspace: Workspace, rule: str, expected: bool
) -> None:
    result = cli("-w", str(workspace.path), "rules", "check", rule, "--format", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["time_dependent"] is expected
