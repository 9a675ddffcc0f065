"""Warehouse commands: ``memberships sql``, ``export dbt``, and the options of segment SQL.

``segments sql`` (in :mod:`segmint.cli.rules_cmd`) and ``memberships sql`` share
:func:`warehouse_options`: ``--from events`` computes the traits in the statement from a raw
events table (``--events-table``, ``--map COLUMN=SQL``), ``--now current_timestamp`` leaves
the instant to the database.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from segmint.cli.main import Context, pass_ctx
from segmint.cli.output import emit_json, err_console, format_option
from segmint.cli.params import as_of_option, deferred_choice
from segmint.common import format_duration

if TYPE_CHECKING:
    from segmint.membership.segsql import SegmentSQL
    from segmint.rules import Instant
    from segmint.traits.source import EventSource

FC = TypeVar("FC", bound=Callable[..., Any])


@click.group()
def memberships() -> None:
    """Memberships of every segment as SQL."""


@click.group()
def export() -> None:
    """Export the workspace's definitions to other tools."""


def warehouse_options(fn: FC) -> FC:
    """The options that make segment SQL self-contained and reusable."""
    options = [
        click.option(
            "--dialect",
            type=deferred_choice("segmint.rules.sqlcompile", "DIALECTS"),
            default="duckdb",
            show_default=True,
            help="The SQL dialect to print.",
        ),
        as_of_option("The instant now() stands for"),
        click.option(
            "--from",
            "origin",
            type=click.Choice(["traits", "events"]),
            default="traits",
            show_default=True,
            help="Read segmint's profile_traits table, or compute the traits from raw events.",
        ),
        click.option(
            "--events-table",
            default="events",
            show_default=True,
            help="With --from events: the table of Segment-style events.",
        ),
        click.option(
            "--map",
            "maps",
            multiple=True,
            metavar="COLUMN=SQL",
            help="With --from events: the source column or SQL expression for an events "
            "column (e.g. profile_id=coalesce(user_id, anonymous_id)); repeatable.",
        ),
        click.option(
            "--now",
            "now",
            type=click.Choice(["as-of", "current_timestamp"]),
            default="as-of",
            show_default=True,
            help="now() as the --as-of literal, or the database's current time (reusable SQL).",
        ),
        format_option,
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def parse_maps(maps: tuple[str, ...]) -> dict[str, str]:
    """``COLUMN=SQL`` pairs as a mapping (a bad pair is a usage error)."""
    out: dict[str, str] = {}
    for item in maps:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise click.BadParameter(f"'{item}' is not COLUMN=SQL", param_hint="--map")
        out[key.strip()] = value.strip()
    return out


def request(
    ctx: Context, as_of: datetime, origin: str, table: str, maps: tuple[str, ...], now: str
) -> tuple[Instant, EventSource | None]:
    """The instant and events source the options ask for."""
    from segmint.rules import SqlNow
    from segmint.traits.source import EventSource

    instant: Instant = SqlNow() if now == "current_timestamp" else as_of
    if origin == "traits":
        if maps or table != "events":
            raise click.UsageError("--events-table and --map need --from events")
        return instant, None
    return instant, EventSource(table, parse_maps(maps))


def check_against_store(
    ctx: Context, source: EventSource, dialect: str, segments: list[str] | None = None
) -> None:
    """When the workspace's store has the events table, check the mapping against it."""
    from segmint.errors import SegmintError
    from segmint.membership.compiled import CompiledSegments
    from segmint.membership.segsql import read_traits
    from segmint.traits.source import check_columns

    store = ctx.workspace.store
    if dialect != store.dialect:
        return
    *schema, table = source.table.split(".")
    sql = "SELECT column_name FROM information_schema.columns WHERE table_name = ?"
    params = [table]
    if schema:
        sql += " AND table_schema = ?"
        params.append(schema[-1])
    try:
        names = [name for (name,) in store.fetchall(sql, params)]
    except SegmintError:  # no catalogue to ask: the warehouse checks when it runs
        return
    if names:  # else not here: the warehouse's own table
        compiled = CompiledSegments(ctx.workspace.definition)
        read = read_traits(compiled, segments)
        check_columns(source, names, compiled.catalog, dialect, read)


def print_statement(statement: SegmentSQL, dialect: str, fmt: str) -> None:
    """Print a statement (and, on stderr, the implicit traits it reads)."""
    text = statement.sql(dialect) + ";"
    if fmt == "json":
        emit_json(
            {
                "dialect": dialect,
                "self_contained": statement.self_contained,
                "sql": text,
                "implicit_traits": [
                    {
                        "name": a.name,
                        "func": a.func,
                        "event": a.event,
                        "target": a.target,
                        "where": a.where,
                        "within": format_duration(a.within) if a.within else None,
                    }
                    for a in statement.aggregates
                ],  # fmt: skip
            }
        )
        return
    if not statement.self_contained:
        for agg in statement.aggregates:
            window = f" within {format_duration(agg.within)}" if agg.within else ""
            where = f" where {agg.where}" if agg.where else ""
            err_console.print(
                f"-- reads implicit trait {agg.name}: {agg.func} of {agg.target} of "
                f"'{agg.event}'{window}{where}",
                highlight=False,
                markup=False,
                soft_wrap=True,
            )
    click.echo(text)


@memberships.command("sql")
@warehouse_options
@pass_ctx
def memberships_sql_cmd(
    ctx: Context,
    dialect: str,
    as_of: datetime,
    origin: str,
    events_table: str,
    maps: tuple[str, ...],
    now: str,
    fmt: str,
) -> None:
    """Print the SQL selecting (profile_id, segment) for every member of every segment."""
    from segmint.membership.segsql import memberships_sql

    instant, source = request(ctx, as_of, origin, events_table, maps, now)
    if source is not None:
        check_against_store(ctx, source, dialect)
    statement = memberships_sql(
        ctx.workspace.definition, dialect=dialect, as_of=instant, events=source
    )
    print_statement(statement, dialect, fmt)


@export.command("dbt")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--dialect",
    type=click.Choice(["duckdb", "postgres"]),
    default="duckdb",
    show_default=True,
    help="The adapter the project's SQL is written for (dbt-duckdb or dbt-postgres).",
)
@click.option(
    "--events-table",
    default="events",
    show_default=True,
    help="The source table of Segment-style events (SCHEMA.TABLE or TABLE).",
)
@click.option("--map", "maps", multiple=True, metavar="COLUMN=SQL", help="As for segments sql.")
@format_option
@pass_ctx
def export_dbt(
    ctx: Context,
    directory: Path,
    dialect: str,
    events_table: str,
    maps: tuple[str, ...],
    fmt: str,
) -> None:
    """Write a dbt project computing traits and memberships from an events table."""
    from segmint.scale.dbt import export_project
    from segmint.traits.source import EventSource

    source = EventSource(events_table, parse_maps(maps))
    written = export_project(ctx.workspace.definition, directory, dialect=dialect, events=source)
    if fmt == "json":
        emit_json({"directory": str(directory), "files": [str(p) for p in written]})
        return
    click.echo(f"wrote a dbt project of {len(written)} files to {directory}")
    click.echo(f"run it: cd {directory} && dbt build --profiles-dir .")


def spark_options(fn: FC) -> FC:
    """The options of ``refresh --engine spark`` (passed on as keyword arguments)."""
    options = [
        click.option(
            "--engine",
            type=click.Choice(["store", "spark"]),
            default="store",
            show_default=True,
            help="Compute in the workspace's store, or on Spark (the 'spark' extra).",
        ),
        click.option(
            "--events",
            "events",
            metavar="PATH|TABLE",
            help="With --engine spark: a Parquet file or folder of events, or a Spark table.",
        ),
        click.option(
            "--map", "maps", multiple=True, metavar="COLUMN=SQL", help="As for segments sql."
        ),
        click.option(
            "--master",
            default="local[2]",
            show_default=True,
            help="With --engine spark: the Spark master (spark://HOST:7077, yarn, k8s://…).",
        ),
        click.option(
            "--output",
            type=click.Path(file_okay=False),
            help="With --engine spark: also write traits/ and memberships/ as Parquet here.",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def refresh_on_spark(
    ctx: Context,
    as_of: datetime,
    fmt: str,
    *,
    events: str | None,
    maps: tuple[str, ...],
    master: str,
    output: str | None,
) -> None:
    """``refresh --engine spark``: compute on Spark, write the memberships to the store."""
    from dataclasses import asdict

    from segmint.scale.spark import spark_refresh

    if events is None:
        raise click.UsageError("--engine spark needs --events PATH|TABLE")
    report = spark_refresh(
        ctx.workspace, as_of, events=events, mapping=parse_maps(maps), master=master,
        output=output,
    )  # fmt: skip
    if fmt == "json":
        emit_json({"engine": "spark", **asdict(report)})
        return
    click.echo(
        f"refreshed {report.profiles} profiles on Spark at {as_of.isoformat()}: "
        f"{report.members} memberships, {report.entered} entered, {report.exited} exited"
        + (f"; Parquet in {report.output}" if report.output else "")
    )


@export.command("events")
@click.option(
    "--parquet",
    "parquet",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The Parquet file to write.",
)
@format_option
@pass_ctx
def export_events_cmd(ctx: Context, parquet: Path, fmt: str) -> None:
    """Write the stored events to a Parquet file (for Spark or a warehouse)."""
    from segmint.scale.parquet import export_events

    count = export_events(ctx.workspace.store, parquet)
    if fmt == "json":
        emit_json({"file": str(parquet), "events": count})
        return
    click.echo(f"wrote {count} events to {parquet}")


def register(cli: click.Group) -> None:
    """Attach the warehouse commands."""
    cli.add_command(memberships)
    cli.add_command(export)
