"""Workspace loading: the example validates; every bad input names file, line and key."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from tests.conftest import CliResult

from segmint.common import format_duration, parse_duration
from segmint.config import ConfigError, ConfigErrors, load_workspace_def, scaffold


@pytest.fixture
def yaml_file(tmp_path: Path) -> Path:
    scaffold(tmp_path / "ws")
    return tmp_path / "ws" / "segmint.yaml"


def rewrite(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def errors_of(path: Path) -> list[ConfigError]:
    with pytest.raises(ConfigErrors) as info:
        load_workspace_def(path)
    return info.value.errors


def test_example_workspace_loads(yaml_file: Path) -> None:
    ws = load_workspace_def(yaml_file)
    assert ws.traits["big_orders_90d"].within == timedelta(days=90)
    assert ws.traits["lifetime_value"].aggregate == ("sum", "properties.total")
    assert ws.segments["new_customer"].default
    assert ws.traits["days_since_purchase"].kind == "derived"


def test_unknown_key_names_line_column_and_suggests(yaml_file: Path) -> None:
    rewrite(yaml_file, "    priority: 100", "    priorty: 100")
    [error] = errors_of(yaml_file)
    assert error.key_path == "segments.vip.priorty"
    assert error.hint == "did you mean 'priority'?"
    assert str(error.location).endswith(f"{yaml_file.name}:39:5")
    assert "^^^^^^^" in error.detailed_message()


def test_unknown_aggregate_lists_the_valid_ones(yaml_file: Path) -> None:
    rewrite(yaml_file, "{avg: properties.total", "{median: properties.total")
    [error] = errors_of(yaml_file)
    assert "unknown key 'median'" in str(error)
    assert error.hint is not None and "most_frequent" in error.hint


def test_wrong_type_is_reported_at_the_value(yaml_file: Path) -> None:
    rewrite(yaml_file, "priority: 100", "priority: high")
    [error] = errors_of(yaml_file)
    assert error.key_path == "segments.vip.priority"
    assert error.location is not None and error.location.line == 39


def test_bad_window_is_reported(yaml_file: Path) -> None:
    rewrite(yaml_file, "within: 90d", "within: 3 months")
    [error] = errors_of(yaml_file)
    assert "cannot read duration" in error.message
    assert error.key_path == "traits.big_orders_90d.within"


def test_all_errors_are_reported_together(yaml_file: Path) -> None:
    rewrite(yaml_file, "    priority: 100", "    priorty: 100")
    rewrite(yaml_file, "    priority: 50", "    prio: 50")
    assert len(errors_of(yaml_file)) == 2


def test_malformed_yaml_points_at_the_problem(yaml_file: Path) -> None:
    rewrite(yaml_file, "  vip:\n", "  vip: [\n")
    with pytest.raises(ConfigError) as info:
        load_workspace_def(yaml_file)
    assert "malformed YAML" in str(info.value)
    assert info.value.location is not None and info.value.location.file == str(yaml_file)


def test_cross_references_are_checked(yaml_file: Path) -> None:
    rewrite(yaml_file, "    segment: vip", "    segment: vipp")
    [error] = errors_of(yaml_file)
    assert error.hint == "did you mean 'vip'?"
    assert error.key_path == "campaigns.lifecycle_update.segment"


def test_missing_file_says_how_to_create_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="segmint init"):
        load_workspace_def(tmp_path / "segmint.yaml")


def test_default_segment_needs_group(yaml_file: Path) -> None:
    rewrite(yaml_file, "    default: true\n    group: lifecycle", "    default: true")
    [error] = errors_of(yaml_file)
    assert "needs a 'group'" in error.message


@pytest.mark.parametrize(
    ("text", "expected"),
    [("30d", timedelta(days=30)), ("12 hours", timedelta(hours=12)), ("2w", timedelta(weeks=2))],
)
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


def test_duration_format_round_trips() -> None:
    for text in ("30 days", "1 day", "12 hours", "90 minutes", "45 seconds"):
        assert format_duration(parse_duration(text)) == text


@pytest.mark.parametrize("name", ["odd: name", "#hash", "it's", 'say "hi"', "yes", "null", "123"])
def test_scaffold_writes_any_folder_name_as_valid_yaml(tmp_path: Path, name: str) -> None:
    scaffold(tmp_path / "ws", name=name)
    assert load_workspace_def(tmp_path / "ws" / "segmint.yaml").name == name


def test_init_with_an_odd_folder_name_gives_a_working_workspace(
    tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    target = tmp_path / "shop: #1"
    assert cli("init", str(target)).returncode == 0
    status = cli("-w", str(target), "status")
    assert status.returncode == 0, status.stderr


def test_a_derived_trait_must_read_a_pii_value(yaml_file: Path) -> None:
    """``derive: {email_domain: {from: emial}}`` derived nothing for anyone, and said nothing."""
    derive = "\nprivacy:\n  derive:\n    email_domain: {from: %s, take: domain}\n"
    yaml_file.write_text(yaml_file.read_text() + derive % "emial")
    [error] = errors_of(yaml_file)
    assert error.key_path == "privacy.derive.email_domain.from"
    assert "reads 'emial', which is no PII name" in str(error)
    assert error.hint == "did you mean 'email'?"
    yaml_file.write_text(yaml_file.read_text().replace("from: emial", "from: email"))
    assert load_workspace_def(yaml_file).privacy.derive["email_domain"].from_ == "email"


def test_a_priority_without_a_group_is_an_error_at_the_priority(yaml_file: Path) -> None:
    """A priority ranks the members of an exclusive group; without one it was ignored."""
    rewrite(
        yaml_file, "    tags: [revenue]\n  loyal", "    tags: [revenue]\n    priority: 5\n  loyal"
    )
    [error] = errors_of(yaml_file)
    assert error.key_path == "segments.high_value.priority", error
    assert "segment 'high_value' has a 'priority' but no 'group'" in error.message
    assert error.hint == "add 'group: NAME' (as lifecycle), or remove 'priority'"


def test_a_priority_on_a_default_segment_is_an_error_at_the_priority(yaml_file: Path) -> None:
    """A default comes after every ranked member of its group; its priority was ignored."""
    rewrite(yaml_file, "    default: true\n", "    default: true\n    priority: 5\n")
    [error] = errors_of(yaml_file)
    assert error.key_path == "segments.new_customer.priority", error
    assert error.message.startswith("default segment 'new_customer' has a 'priority'")


def test_a_webhook_following_an_archived_segment_says_archived(yaml_file: Path) -> None:
    """It said 'unknown segment', though the segment is right there, archived."""
    rewrite(yaml_file, "    priority: 10\n", "    priority: 10\n    archived: true\n")
    text = yaml_file.read_text() + "\nwebhooks:\n  crm:\n    url: https://example.com/h\n"
    yaml_file.write_text(text + "    segments: [churned]\n")
    [error] = errors_of(yaml_file)
    assert error.key_path == "webhooks.crm.segments[0]", error
    assert error.message == "webhook 'crm' follows segment 'churned', which is archived"
    assert error.hint == "remove it from the webhook, or set 'archived: false' on the segment"
