"""YAML syntax errors are named in plain words at the line and column of the mistake."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.conftest import CliResult

from segmint.config import ConfigError, load_workspace_def, scaffold


@pytest.fixture
def yaml_file(tmp_path: Path) -> Path:
    scaffold(tmp_path / "ws")
    return tmp_path / "ws" / "segmint.yaml"


def line_of(path: Path, needle: str) -> int:
    """The 1-based number of the first line of ``path`` containing ``needle``."""
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in {path}")


def error_for(path: Path, old: str, new: str) -> ConfigError:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(ConfigError) as info:
        load_workspace_def(path)
    return info.value


# (name, old text, new text, a text on the line of the mistake, column, words in the message)
MISTAKES = [
    (
        "unclosed double quote",
        'rule: "lifetime_value >= 1000"',
        'rule: "lifetime_value >= 1000',
        'rule: "lifetime_value >= 1000',
        11,
        "unclosed quote",
    ),
    (
        "unclosed single quote",
        "description: Our best customers.",
        "description: 'Our best customers.",
        "description: 'Our best",
        18,
        "unclosed quote",
    ),
    (
        "tab in the indentation",
        "    group: lifecycle\n    priority: 100",
        "    group: lifecycle\n\tpriority: 100",
        "\tpriority: 100",
        1,
        "tab character",
    ),
    (
        "colon in an unquoted value",
        "description: Our best customers.",
        "description: Our best customers: big spenders.",
        "customers: big spenders",
        36,
        "did you forget quotes around a value that contains ': '?",
    ),
    (
        "first key of a block indented one space too many",
        "  high_value:\n    rule:",
        "  high_value:\n     rule:",
        '     rule: "avg_order_value',
        1,
        "bad indentation: this line is indented 5 spaces",
    ),
    (
        "key indented one space too few",
        "    group: lifecycle\n    priority: 100",
        "    group: lifecycle\n   priority: 100",
        "   priority: 100",
        1,
        "bad indentation: this line is indented 3 spaces",
    ),
    (
        "key indented deeper than its sibling",
        "    group: lifecycle\n    priority: 100",
        "    group: lifecycle\n      priority: 100",
        "      priority: 100",
        1,
        "bad indentation",
    ),
    (
        "segment name indented one space too few",
        "  high_value:\n",
        " high_value:\n",
        " high_value:",
        1,
        "bad indentation: this line is indented 1 space,",
    ),
    (
        "duplicate key",
        "    priority: 100\n",
        "    priority: 100\n    priority: 90\n",
        "    priority: 90",
        5,
        "duplicate key 'priority' in segments.vip: it is already given on line",
    ),
    (
        "missing space after a colon",
        "    priority: 100\n",
        "    priority:100\n",
        "    priority:100",
        5,
        "'priority:100' has no space after the colon",
    ),
    (
        "missing colon after a key",
        "  high_value:\n",
        "  high_value\n",
        "  high_value",
        3,
        "'high_value' is not a 'key: value' pair: is the ':' missing?",
    ),
    (
        "text after a quoted value",
        "description: Our best customers.",
        'description: "Our" best customers.',
        '"Our" best',
        24,
        "text after the closing quote",
    ),
    (
        "unclosed bracket",
        "tags: [revenue]\n  high_value",
        "tags: [revenue\n  high_value",
        "tags: [revenue",
        11,
        "unclosed '['",
    ),
]


@pytest.mark.parametrize(
    ("old", "new", "needle", "column", "words"),
    [m[1:] for m in MISTAKES],
    ids=[m[0] for m in MISTAKES],
)
def test_mistake_is_named_where_it_is(
    yaml_file: Path, old: str, new: str, needle: str, column: int, words: str
) -> None:
    error = error_for(yaml_file, old, new)
    assert error.location is not None
    assert (error.location.line, error.location.column) == (line_of(yaml_file, needle), column)
    assert words in error.message
    assert "malformed YAML" not in error.message
    assert error.hint
    excerpt = error.detailed_message().splitlines()
    assert excerpt[0].startswith(f"{yaml_file}:{error.location.line}:{column}: ")
    assert excerpt[1].startswith(f"  {error.location.line} | ")
    assert excerpt[2].split("| ", 1)[1].index("^") == column - 1


def test_unquoted_colon_hint_shows_the_quoted_value(yaml_file: Path) -> None:
    error = error_for(yaml_file, "description: Our best customers.", "description: a: b")
    assert error.hint == 'quote the value: description: "a: b"'


def test_tab_is_shown_one_column_wide(yaml_file: Path) -> None:
    error = error_for(yaml_file, "    priority: 100", "  \t  priority: 100")
    assert error.location is not None and error.location.column == 3
    _, source, carets = error.detailed_message().splitlines()
    assert source.endswith("|   \u2192  priority: 100")
    assert carets.endswith("|   ^ replace the tab with spaces")


def test_other_syntax_errors_keep_the_parser_words(yaml_file: Path) -> None:
    error = error_for(yaml_file, "timezone: UTC", "timezone: *utc")
    assert error.message.startswith("malformed YAML: ")
    assert error.location is not None


def test_cli_reports_the_mistake_at_its_line(
    yaml_file: Path, cli: Callable[..., CliResult]
) -> None:
    text = yaml_file.read_text().replace('"lifetime_value >= 1000"', '"lifetime_value >= 1000', 1)
    yaml_file.write_text(text)
    result = cli("-w", str(yaml_file.parent), "segments", "validate")
    line = line_of(yaml_file, '"lifetime_value >= 1000')
    assert result.returncode != 0
    assert f"segmint.yaml:{line}:11: unclosed quote" in result.stderr
    assert f'  {line} |     rule: "lifetime_value >= 1000' in result.stderr
    assert "expected <block end>" not in result.stderr


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.sampled_from(["  vip:", "    rule:", "    group:", "  churned:", "  crm_contacts:"]),
       st.sampled_from([-1, 1]))  # fmt: skip
def test_a_line_shifted_by_one_space_is_found(yaml_file: Path, key: str, shift: int) -> None:
    """Whichever key line is shifted by one space, the error names that line or its block."""
    lines = yaml_file.read_text().split("\n")
    index = next(i for i, line in enumerate(lines) if line.startswith(key))
    shifted = lines[index][1:] if shift < 0 else " " + lines[index]
    broken = [*lines[:index], shifted, *lines[index + 1 :]]
    path = yaml_file.with_name("shifted.yaml")
    path.write_text("\n".join(broken))
    with pytest.raises(ConfigError) as info:
        load_workspace_def(path)
    error = info.value
    assert error.location is not None
    assert "bad indentation" in error.message
    assert error.location.line in (index + 1, index + 2)
