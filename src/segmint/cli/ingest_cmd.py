"""Source commands: ``ingest`` (files), ``consume`` (Redis/Kafka streams), ``quality``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from segmint.cli.main import Context, pass_ctx
from segmint.cli.output import emit_json, emit_table, err_console, format_option
from segmint.cli.params import as_of_option
from segmint.clock import SystemClock

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from segmint.intake.importers import ImportReport
    from segmint.intake.quality import QualityReport
    from segmint.intake.streams import ConsumeReport


@click.command()
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--mapping", "-m", help="The mapping under 'imports:' (default: the only one).")
@click.option(
    "--input-format",
    type=click.Choice(["csv", "jsonl", "parquet"]),
    help="The file format, when the extension does not tell it.",
)
@click.option(
    "--delimiter", default=",", show_default=True, callback=lambda _c, _p, v: _delimiter(v),
    help="The CSV field separator: one character, or 'tab' ('\\t').",
)  # fmt: skip
@click.option(
    "--batch-size", default=1000, show_default=True, type=click.IntRange(min=1),
    help="Rows per transaction.",
)  # fmt: skip
@format_option
@pass_ctx
def ingest(
    ctx: Context,
    file: Path,
    mapping: str | None,
    input_format: str | None,
    delimiter: str,
    batch_size: int,
    fmt: str,
) -> None:
    """Import contacts or events from a CSV, JSONL or Parquet FILE.

    Rows become identify or track calls through a column mapping in the workspace's
    'imports:' section. Bad rows are reported with their line number and the rest are
    stored; re-running the same import stores nothing twice.
    """
    from segmint.intake.importers import run_import
    from segmint.intake.mappings import MappingError, RowMapper
    from segmint.intake.pipeline import Intake

    workspace = ctx.workspace
    imports = workspace.definition.imports
    if mapping is None:
        if len(imports) != 1:
            names = ", ".join(sorted(imports)) or "none defined"
            raise MappingError(f"choose a mapping with --mapping (the workspace has: {names})")
        mapping = next(iter(imports))
    mapper = RowMapper.from_workspace(imports, mapping)
    intake = Intake(workspace, SystemClock())
    with _progress(file, quiet=fmt == "json") as (progress, task):
        report = run_import(
            file,
            mapper,
            intake,
            fmt=input_format,
            delimiter=delimiter,
            batch_size=batch_size,
            progress=lambda done: progress.update(task, completed=done),
            on_start=lambda total: progress.update(task, total=total),
        )
    _show_import(report, fmt)
    if report.stored == 0 and report.bad_row_count and report.bad_row_count == report.rows:
        raise click.exceptions.Exit(1)


def _delimiter(text: str) -> str:
    """One character; ``tab``, or a backslash and ``t`` as typed in a shell, mean a tab."""
    value = "\t" if text in ("tab", "\\t") else text
    if len(value) != 1:
        raise click.BadParameter(
            f"{text!r} is not one character (for example ',', ';', '|' or 'tab')",
            param_hint="--delimiter",
        )
    return value


@contextmanager
def _progress(file: Path, *, quiet: bool) -> Iterator[tuple[Progress, TaskID]]:
    """A rich progress bar on standard error (hidden for JSON output)."""
    from rich.progress import (
        BarColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )

    columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn())
    bar = Progress(
        *columns, TimeRemainingColumn(), console=err_console, disable=quiet, transient=True
    )
    task = bar.add_task(f"ingest {file.name}", total=None)
    with bar:
        yield bar, task


def _show_import(report: ImportReport, fmt: str) -> None:
    if fmt == "json":
        emit_json(report.as_dict())
        return
    click.echo(
        f"{report.file}: {report.rows} rows via '{report.mapping}' → {report.stored} stored, "
        f"{report.duplicates} already stored, {report.quarantined} quarantined, "
        f"{report.bad_row_count} bad"
    )
    for warning in report.warnings:
        err_console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
    if report.bad_rows:
        shown = report.bad_rows[:50]
        rows = [
            (b["line"], c["column"] or "", "" if c["value"] is None else repr(c["value"]),
             c["reason"])
            for b in shown
            for c in b["cells"] or [{"column": b["column"], "value": None, "reason": b["reason"]}]
        ]  # fmt: skip
        emit_table("bad rows (not stored)", ["line", "column", "value", "reason"], rows)
        if report.bad_row_count > len(shown):
            click.echo(f"… and {report.bad_row_count - len(shown)} more (see --format json)")


@click.command()
@click.argument("url")
@click.option("--source", "source_name", help="The source recorded on events (default: stream).")
@click.option("--consumer", help="This consumer's name in its group (default: from the host).")
@click.option("--max-messages", type=click.IntRange(min=1),
              help="Stop after reading this many records.")  # fmt: skip
@click.option("--idle-timeout", type=click.FloatRange(min=0),
              help="Stop after this many seconds with no record.")  # fmt: skip
@click.option("--batch-size", default=500, show_default=True, type=click.IntRange(min=1),
              help="Records per transaction.")  # fmt: skip
@click.option(
    "--option",
    "-o",
    "options",
    multiple=True,
    metavar="KEY=VALUE",
    help="A client setting (Kafka: a librdkafka property); repeatable.",
)
@format_option
@pass_ctx
def consume_cmd(
    ctx: Context,
    url: str,
    source_name: str | None,
    consumer: str | None,
    max_messages: int | None,
    idle_timeout: float | None,
    batch_size: int,
    options: tuple[str, ...],
    fmt: str,
) -> None:
    """Consume Segment messages from a Redis stream or a Kafka topic at URL.

    URL is redis://HOST:6379/0?stream=events&group=segmint or
    kafka://HOST:9092/events?group=segmint.

    Each batch is acknowledged after it is durably stored; poison records are quarantined
    and consumption goes on. Runs until interrupted, --max-messages or --idle-timeout.
    """
    from segmint.intake.pipeline import Intake
    from segmint.intake.streams import StreamUrlError, consume, open_source

    settings = dict(_option(o) for o in options)
    try:
        source = open_source(url, consumer=consumer, options=settings)
    except StreamUrlError as exc:  # a malformed URL is a usage error, as a bad --kafka is
        raise click.BadParameter(str(exc), param_hint="URL") from None
    ctx.workspace.privacy.require_key("consuming (storing input)")  # else each batch fails
    intake = Intake(ctx.workspace, SystemClock())
    try:
        report = consume(
            source,
            intake,
            source_name=source_name,
            max_messages=max_messages,
            idle_timeout=idle_timeout,
            batch_size=batch_size,
        )
    except KeyboardInterrupt:  # unacknowledged records are redelivered next time
        err_console.print("interrupted")
        return
    finally:
        source.close()
    _show_consume(report, fmt)


def _option(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise click.BadParameter(f"expected KEY=VALUE, got {text!r}", param_hint="--option")
    return key.strip(), value.strip()


def _show_consume(report: ConsumeReport, fmt: str) -> None:
    if fmt == "json":
        emit_json(report.as_dict())
        return
    click.echo(
        f"{report.source}: {report.received} received → {report.stored} stored, "
        f"{report.duplicates} already stored, {report.quarantined} quarantined, "
        f"{report.acked} acknowledged"
    )
    for item in report.poison[:20]:
        click.echo(f"  poison at {item['position']}: {item['reason']}")


@click.command()
@as_of_option("Report at this instant")
@click.option("--strict", is_flag=True, help="Exit with status 2 when any source has issues.")
@format_option
@pass_ctx
def quality(ctx: Context, as_of: datetime, strict: bool, fmt: str) -> None:
    """Per-source data quality: freshness, duplicates, quarantine, anomalies."""
    from segmint.intake.quality import quality_report

    workspace = ctx.workspace
    report = quality_report(workspace.store, workspace.definition, as_of)
    _show_quality(report, fmt)
    if strict and any(s.issues for s in report.sources):
        raise click.exceptions.Exit(2)


def _show_quality(report: QualityReport, fmt: str) -> None:
    if fmt == "json":
        emit_json(report.as_dict())
        return
    from segmint.intake.quality import human_duration

    rows = []
    for s in report.sources:
        last = s.last_received_at.isoformat(timespec="seconds") if s.last_received_at else "-"
        sla = human_duration(s.freshness_sla) if s.freshness_sla else "-"
        issues = "; ".join(s.issues) or "ok"
        rows.append(
            (s.source or "(none)", s.status, last, sla, s.events, s.repeated_message_ids,
             s.identical_events, issues)
        )  # fmt: skip
    columns = ["source", "freshness", "last received", "SLA", "events", "repeated ids",
               "identical", "issues"]  # fmt: skip
    emit_table(f"data quality as of {report.as_of.isoformat()}", columns, rows)
    for s in report.sources:
        for key, anomaly in s.anomalies.items():
            if key.startswith("outlying_"):
                click.echo(f"{s.source or '(none)'}: {anomaly['count']} {key.replace('_', ' ')} "
                           f"({anomaly['rule']}), e.g.:")  # fmt: skip
                for example in anomaly["examples"]:
                    value = example[key.removeprefix("outlying_")]
                    click.echo(f"  {example['message_id']}: {value:,} is {example['why']}")
    for note in report.notes:
        click.echo(f"note: {note}")


def register(cli: click.Group) -> None:
    """Add ``ingest``, ``consume`` and ``quality``."""
    cli.add_command(ingest)
    cli.add_command(consume_cmd, name="consume")
    cli.add_command(quality)
