"""Shared output helpers for CLI commands: tables for people, JSON for scripts."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import click
import orjson
from rich.console import Console
from rich.table import Table
from rich.text import Text

# No emoji codes: "segmint.yaml:100:12" is a place in a file, not the emoji :100:.
console = Console(emoji=False)
err_console = Console(stderr=True, emoji=False)

format_option = click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="Output for people (table) or scripts (json).",
)


def _default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


def emit_json(data: Any) -> None:
    """Write ``data`` as indented JSON to standard output."""
    sys.stdout.write(orjson.dumps(data, default=_default, option=orjson.OPT_INDENT_2).decode())
    sys.stdout.write("\n")


def emit_table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Print a rich table."""
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(Text("" if v is None else str(v)) for v in row))  # values, not markup
    console.print(table)


def confirm(question: str) -> None:
    """Ask ``question`` on standard error (stdout holds results, JSON with ``--format json``).

    A "no" (or Ctrl-C) aborts; no answer because standard input is no terminal (a script,
    cron) is a usage error that names ``--yes``, the way to run without asking.

    Raises:
        click.exceptions.Abort: The answer was no.
        click.UsageError: Standard input ended before an answer, and is not a terminal.
    """
    try:
        yes = click.confirm(question, err=True)
    except click.exceptions.Abort:  # end of input (or Ctrl-C) before an answer
        if sys.stdin is None or sys.stdin.isatty():
            raise
        click.echo(err=True)  # end the question's line
        raise click.UsageError(
            f"no answer to {question!r}: standard input is not a terminal; pass --yes to go "
            "ahead without asking"
        ) from None
    if not yes:
        raise click.exceptions.Abort
