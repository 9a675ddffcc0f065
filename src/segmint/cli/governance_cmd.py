"""Segments as code: ``segmint test``, ``segments preview``, ``segments lint``, ``segments diff``.

Each command calls :mod:`segmint.governance` (or the membership preview) and only prints.
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from segmint.cli.groups import segments
from segmint.cli.main import Context, pass_ctx
from segmint.cli.output import console, emit_json, err_console, format_option
from segmint.cli.params import as_of_option


def _when(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


@segments.command("preview")
@click.argument("rule")
@as_of_option("Evaluate the rule at this instant")
@click.option(
    "--sample",
    type=click.IntRange(min=0),
    default=10,
    show_default=True,
    help="How many member profile ids to show (0: the size only).",
)
@format_option
@pass_ctx
def segments_preview(ctx: Context, rule: str, as_of: datetime, sample: int, fmt: str) -> None:
    """Size and a sample of RULE's members at --as-of; nothing is saved or written.

    RULE is checked against the workspace's traits and segments like a segment rule and
    evaluated as a refresh at --as-of would (traits computed from the events).
    """
    from segmint.membership.preview import preview_rule

    ws = ctx.workspace
    found = preview_rule(ws.store, ws.definition, rule, as_of, limit=sample)
    if fmt == "json":
        emit_json(found.to_dict())
        return
    click.echo(f"{found.rule}")
    click.echo(f"{found.size:,} profiles at {_when(found.as_of)}")
    for pid in found.sample:
        click.echo(f"  {pid}")
    if found.size > len(found.sample) and found.sample:
        click.echo(f"  … and {found.size - len(found.sample):,} more")


@click.command("test")
@click.argument("files", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--schema", is_flag=True, help="Print the JSON Schema of a fixture file and exit.")
@format_option
@pass_ctx
def test_command(ctx: Context, files: tuple[Path, ...], schema: bool, fmt: str) -> None:
    """Run segment fixtures through the batch and the real-time path; exit 1 on a failure.

    FILES default to every tests/segments/*.yaml of the workspace. Each file gives
    profiles (identify traits and timed events), an as_of, and the segments, traits and
    template snippets expected; both paths must meet them (and agree). The workspace's
    store is never read or written: each file runs on scratch stores.
    """
    from segmint.governance.fixtures import FIXTURE_DIR, fixture_json_schema
    from segmint.governance.runner import run_fixtures
    from segmint.workspace import Workspace

    if schema:
        emit_json(fixture_json_schema())
        return
    with Workspace.open(ctx.workspace_path) as ws:
        if not files and not (ws.path / FIXTURE_DIR).is_dir():
            raise click.ClickException(
                f"no fixture files: {ws.path / FIXTURE_DIR} does not exist (write one there, "
                "see `segmint test --schema` and the README's 'Segments as code')"
            )
        results = run_fixtures(ws, files)
    if not results:
        raise click.ClickException(f"no *.yaml fixture files in {ctx.workspace_path / FIXTURE_DIR}")
    failed = [r for r in results if not r.ok]
    if fmt == "json":
        emit_json({"ok": not failed, "files": [r.to_dict() for r in results]})
    else:
        _print_results(results)
    if failed:
        sys.exit(1)


def _print_results(results: list[Any]) -> None:
    from rich.markup import escape

    for result in results:
        if result.error is not None:
            err_console.print(f"[red]ERROR[/red] {escape(result.error.detailed_message())}",
                              highlight=False, soft_wrap=True)  # fmt: skip
            continue
        mark = "[green]PASS[/green]" if result.ok else "[red]FAIL[/red]"
        console.print(f"{mark} {escape(str(result.path))} ({result.profiles} profiles, "
                      f"{result.checks} checks)", highlight=False)  # fmt: skip
        for f in result.failures:
            where = f"{f.file}:{f.line}"
            head = f"{where} profile '{f.profile}': {f.what} ({' and '.join(f.paths)})"
            console.print(f"  [red]✗[/red] {escape(head)}", highlight=False, soft_wrap=True)
            for line in f.lines:
                console.print(f"      {escape(line)}", highlight=False, soft_wrap=True)
    checks = sum(r.checks for r in results)
    bad = sum(len(r.failures) for r in results) + sum(1 for r in results if r.error)
    click.echo(f"{len(results)} file(s), {checks} check(s) on both paths: "
               + (f"{bad} failure(s)" if bad else "all passed"))  # fmt: skip


def register(cli: click.Group) -> None:
    """Add ``test``; the ``segments`` commands attach to the shared group."""
    cli.add_command(test_command)
