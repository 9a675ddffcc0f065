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
from segmint.cli.output import console, emit_json, emit_table, err_console, format_option
from segmint.cli.params import as_of_option


def _when(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


@segments.command("preview")
@click.argument("rule")
@as_of_option("Compute the traits from the events at this instant", now_default=False)
@click.option(
    "--sample",
    type=click.IntRange(min=0),
    default=10,
    show_default=True,
    help="How many member profile ids to show (0: the size only).",
)
@format_option
@pass_ctx
def segments_preview(
    ctx: Context, rule: str, as_of: datetime | None, sample: int, fmt: str
) -> None:
    """Size and a sample of RULE's members; nothing is saved or written.

    RULE is checked against the workspace's traits and segments like a segment rule. Without
    --as-of it is evaluated over the traits of the last `segmint refresh`, at that
    refresh's instant (fast on any number of profiles; when there is none, or the traits
    changed since, or the rule needs a trait it did not compute, over the events now). With
    --as-of the traits are computed from the events at that instant, as a refresh would.
    """
    from segmint.clock import SystemClock
    from segmint.membership.errors import StalePreviewError
    from segmint.membership.preview import preview_rule, preview_stored
    from segmint.models.registry import unscored_warnings
    from segmint.rules.vocabulary import preview_warnings

    ws = ctx.workspace
    basis = "computed from the events"
    if as_of is None:
        try:
            found = preview_stored(ws.store, ws.definition, rule, limit=sample)
            basis = "the traits of the last refresh"
        except StalePreviewError as exc:
            err_console.print(f"note: {exc}: computing the traits from the events now")
            found = preview_rule(ws.store, ws.definition, rule, SystemClock().now(), limit=sample)
    else:
        found = preview_rule(ws.store, ws.definition, rule, as_of, limit=sample)
    warnings = preview_warnings(ws.definition, ws.store, found.rule)
    warnings += unscored_warnings(ws.definition.models, ws.store, found.rule)
    if fmt == "json":
        emit_json(found.to_dict() | {"basis": basis, "warnings": warnings})
        return
    for warning in warnings:
        err_console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False, soft_wrap=True)
    click.echo(f"{found.rule}")
    click.echo(f"{found.size:,} profiles at {_when(found.as_of)} ({basis})")
    for pid in found.sample:
        click.echo(f"  {pid}")
    if found.size > len(found.sample) and found.sample:
        click.echo(f"  … and {found.size - len(found.sample):,} more")


@segments.command("lint")
@as_of_option("Judge usage and lifespans at this instant")
@click.option(
    "--jaccard",
    type=click.FloatRange(0, 1),
    default=0.9,
    show_default=True,
    help="Pairs whose members overlap at least this much (Jaccard index) are near duplicates.",
)
@click.option(
    "--unused-days",
    type=click.IntRange(min=1),
    default=30,
    show_default=True,
    help="A segment only campaigns and journeys use, none of which sent in N days, is idle.",
)
@format_option
@pass_ctx
def segments_lint(
    ctx: Context, as_of: datetime, jaccard: float, unused_days: int, fmt: str
) -> None:
    """Flag segments that cost more than they give; exit 1 when something is found.

    Near-duplicate, unused, idle, empty, all-profile and expired segments, and rules a
    cheaper equivalent would do. Nothing is changed.

    Sizes and overlaps are the live memberships (run `segmint refresh` first).
    """
    from segmint.governance.lint import lint_segments

    findings = lint_segments(ctx.workspace, as_of, jaccard=jaccard, unused_days=unused_days)
    if fmt == "json":
        emit_json({"ok": not findings, "findings": [f.to_dict() for f in findings]})
    elif findings:
        rows = [(f.segment, f.code, f.message, f.hint) for f in findings]
        emit_table("Segment lint", ["segment", "finding", "what", "what to do"], rows)
    else:
        click.echo(f"{len(ctx.workspace.definition.segments)} segments: nothing found")
    if findings:
        sys.exit(1)


@segments.command("diff")
@click.option(
    "--against",
    default="HEAD",
    show_default=True,
    help="The deployed definitions: a git ref of the workspace's repository, or a file.",
)
@as_of_option("Evaluate both versions at this instant")
@click.option("--all", "show_all", is_flag=True, help="Also list segments nobody enters or leaves.")
@format_option
@pass_ctx
def segments_diff(ctx: Context, against: str, as_of: datetime, show_all: bool, fmt: str) -> None:
    """Who would enter and leave each segment if segmint.yaml as it is now were deployed.

    Both versions are evaluated on the current store's events at --as-of, in batch; nothing
    is written. Exits 0 whatever the difference (read the counts).
    """
    from segmint.governance.diff import diff_segments, read_against

    ws = ctx.workspace
    before, label = read_against(ws.path, against)
    diffs = diff_segments(ws.store, before, ws.definition, as_of)
    if fmt == "json":
        emit_json({"against": label, "as_of": as_of, "segments": [d.to_dict() for d in diffs]})
        return
    moved = [d for d in diffs if show_all or d.entering or d.leaving or d.status != "same"]
    if not moved:
        click.echo(f"no segment changes against {label} at {_when(as_of)}")
        return
    rows = [
        (d.segment, d.status, f"+{d.entering:,}", f"-{d.leaving:,}",
         ", ".join(d.sample_entering + d.sample_leaving))
        for d in moved
    ]  # fmt: skip
    emit_table(f"Against {label} at {_when(as_of)}",
               ["segment", "definition", "enter", "leave", "some of them"], rows)  # fmt: skip


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
        with err_console.status("running segment fixtures") as status:

            def progress(path: Path) -> None:
                status.update(f"running {path.name} through batch and real time")

            results = run_fixtures(ws, files, progress=progress)
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
