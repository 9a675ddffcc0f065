"""Every instant option of every command: one parameter type, one clear usage error."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
import pytest

from segmint.cli.main import _register_commands
from segmint.cli.main import cli as root
from segmint.cli.params import INSTANT

Run = Callable[..., Any]


def _commands(group: click.Group, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield from _commands(command, (*path, name))
        else:
            yield (*path, name)


def _command(path: tuple[str, ...]) -> click.Command:
    command: click.Command = root
    for name in path:
        assert isinstance(command, click.Group)
        command = command.commands[name]
    return command


def _instant_commands() -> list[tuple[str, ...]]:
    _register_commands()
    return [
        path for path in _commands(root) if any(p.type is INSTANT for p in _command(path).params)
    ]


def _arguments(command: click.Command) -> list[str]:
    values = []
    for param in command.params:
        if isinstance(param, click.Argument) and param.required:
            choices = getattr(param.type, "choices", None)
            values.append(str(choices[0]) if choices else "x")
    return values


def test_every_as_of_option_is_the_instant_type() -> None:
    _register_commands()
    found = {
        path: param.type
        for path in _commands(root)
        for param in _command(path).params
        if isinstance(param, click.Option) and "as_of" in (param.name or "")
    }
    assert found  # refresh, reconcile, profile show, template preview, campaign send, …
    assert {path: INSTANT for path in found} == found


@pytest.mark.parametrize(
    "must_have",
    [
        ("refresh",),
        ("reconcile",),
        ("profile", "show"),
        ("template", "preview"),
        ("campaign", "send"),
        ("consent", "set"),
        ("quality",),
        ("demo",),
    ],
)
def test_the_commands_of_the_issue_take_an_instant(must_have: tuple[str, ...]) -> None:
    assert must_have in _instant_commands()


@pytest.mark.parametrize("path", _instant_commands(), ids=" ".join)
@pytest.mark.parametrize("bad", ["yesterday", "2026-02-30", "-7x", "9999-12-31"])
def test_a_bad_instant_is_a_usage_error_naming_option_value_and_forms(
    cli: Run, tmp_path: Path, path: tuple[str, ...], bad: str
) -> None:
    command = _command(path)
    flag = next(p.opts[0] for p in command.params if p.type is INSTANT)  # --as-of, --before…
    args = ["-w", str(tmp_path / "nowhere"), *path, flag, bad, *_arguments(command)]
    result = cli(*args)
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr
    assert f"'{flag}'" in result.stderr and repr(bad) in result.stderr
    if bad == "9999-12-31":
        assert "out of range" in result.stderr and "1900-01-01 and 2199-12-31" in result.stderr
    else:
        assert "ISO 8601" in result.stderr and "'-7d'" in result.stderr


def test_help_says_naive_is_utc_and_shows_relative_forms(cli: Run) -> None:
    result = cli("refresh", "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert "no offset = UTC" in text and "'-7d'" in text and "[default: now]" in text


def test_a_date_alone_is_midnight_utc(cli: Run, tmp_path: Path) -> None:
    target = tmp_path / "shop"
    assert cli("init", str(target)).returncode == 0
    result = cli("-w", str(target), "refresh", "--as-of", "2026-11-01", "--format", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["as_of"] == "2026-11-01T00:00:00+00:00"
    offset = cli("-w", str(target), "reconcile", "--as-of", "2026-11-01T01:00:00+01:00",
                 "--format", "json")  # fmt: skip
    assert json.loads(offset.stdout)["as_of"] == "2026-11-01T00:00:00+00:00"
