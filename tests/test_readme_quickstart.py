"""The README's quick start, run word for word through the CLI on a fresh ``segmint init``."""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.conftest import CliResult

README = Path(__file__).resolve().parents[1] / "README.md"
SECRET = "a-test-secret-of-more-than-16-characters"


def section(title: str, end: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(title)
    return text[start : text.index(end, start)]


def blocks(text: str) -> list[tuple[str, str]]:
    """The fenced code blocks of ``text`` as (language, body)."""
    return re.findall(r"```(\w*)\n(.*?)```", text, flags=re.DOTALL)


def commands(text: str) -> list[list[str]]:
    """The ``segmint`` and ``cd`` command lines of the quick start's shell blocks."""
    lines = [line for lang, body in blocks(text) if lang == "sh" for line in body.splitlines()]
    return [shlex.split(line) for line in lines if line.startswith(("segmint ", "cd "))]


@pytest.fixture
def quick_start() -> str:
    return section("## Quick start on your own data", "## Concepts")


def test_quick_start_runs_word_for_word(
    quick_start: str,
    cli: Callable[..., CliResult],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    assert "export SEGMINT_SECRET=" in quick_start
    monkeypatch.setenv("SEGMINT_SECRET", SECRET)
    [segment] = [body for lang, body in blocks(quick_start) if lang == "yaml"]
    outputs: dict[str, CliResult] = {}
    for argv in commands(quick_start):
        if argv[0] == "cd":
            monkeypatch.chdir(argv[1])
            continue
        if argv[1:3] == ["segments", "validate"]:  # step 3: the segment is added first
            path = Path("segmint.yaml")
            text = path.read_text()
            path.write_text(text.replace("\nsegments:\n", "\nsegments:\n" + segment, 1))
        result = cli(*argv[1:])
        assert result.returncode == 0, (argv, result.stdout, result.stderr)
        outputs[" ".join(argv[1:3])] = result
    assert "7 stored" in outputs["ingest data/shop_orders.csv"].stdout
    shown = outputs["segments show"].stdout
    assert shown.startswith("big_spenders: lifetime_value > 200 and ") and "size 2" in shown
    profile = outputs["profile show"].stdout
    assert re.search(r"big_spenders\s+│\s+yes", profile)
    assert "2 written, 0 failed" in outputs["template preview"].stdout
    assert "1 message(s) written to .segmint/outbox/lifecycle_update, not sent" in (
        outputs["campaign send"].stdout
    )


def test_typo_example_prints_what_the_readme_shows(
    quick_start: str,
    cli: Callable[..., CliResult],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    [segment] = [body for lang, body in blocks(quick_start) if lang == "yaml"]
    [expected] = [body for lang, body in blocks(quick_start) if lang == "" and "error:" in body]
    assert cli("init", "my-shop").returncode == 0
    monkeypatch.chdir("my-shop")
    path = Path("segmint.yaml")
    typo = segment.replace("lifetime_value > 200", "lifetime_valu > 200")
    path.write_text(path.read_text().replace("\nsegments:\n", "\nsegments:\n" + typo, 1))
    result = cli("segments", "validate")
    assert result.returncode == 1
    assert result.stderr + result.stdout == expected


def test_rule_language_examples_check_on_the_example_workspace(
    cli: Callable[..., CliResult], tmp_path: Path
) -> None:
    """Every rule of the README's rule-language block checks on a scaffolded workspace."""
    text = section("The rule language is SQL-like", "NULL follows")
    [(_, body)] = blocks(text)
    rules = body.strip().splitlines()
    assert any("country" in rule for rule in rules)
    assert cli("init", str(tmp_path / "ws")).returncode == 0
    for rule in rules:
        result = cli("-w", str(tmp_path / "ws"), "rules", "check", rule)
        assert result.returncode == 0, (rule, result.stderr)
    country = cli("-w", str(tmp_path / "ws"), "rules", "check", "country = 'DE'")
    assert country.returncode == 0, country.stderr
