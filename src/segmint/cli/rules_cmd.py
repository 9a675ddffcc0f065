"""Rule commands: ``segments validate``, ``segments sql``, ``rules check``, ``rules schema``."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from segmint.cli.groups import rules, segments
from segmint.cli.main import Context, pass_ctx
from segmint.cli.output import emit_json, err_console, format_option
from segmint.clock import SystemClock, parse_instant
from segmint.common import format_duration
from segmint.config.errors import ConfigError
from segmint.config.loader import load_workspace_def
from segmint.config.model import WorkspaceDef
from segmint.config.scaffold import WORKSPACE_FILE
from segmint.membership.segsql import segment_sql
from segmint.rules import TraitSchema, check, dependencies, parse, to_json, workspace_schema
from segmint.rules.jsonschema import json_schema
from segmint.rules.sqlcompile import DIALECTS
from segmint.rules.workspace import check_workspace


def _definition(ctx: Context) -> tuple[WorkspaceDef, Path]:
    path = ctx.workspace_path
    yaml_path = path if path.name == WORKSPACE_FILE else path / WORKSPACE_FILE
    return load_workspace_def(yaml_path), yaml_path


def _as_json(error: ConfigError) -> dict[str, Any]:
    loc = error.location
    return {
        "file": loc.file if loc else None,
        "line": loc.line if loc else None,
        "column": loc.column if loc else None,
        "key_path": error.key_path,
        "message": error.message,
        "hint": error.hint,
    }


@segments.command()
@format_option
@pass_ctx
def validate(ctx: Context, fmt: str) -> None:
    """Check every segment rule, trait filter and derived trait; exit 1 listing the errors."""
    defn, yaml_path = _definition(ctx)
    problems = check_workspace(defn, yaml_path)
    if fmt == "json":
        emit_json({"ok": not problems, "errors": [_as_json(e) for e in problems]})
    else:
        for problem in problems:
            message = problem.detailed_message()
            err_console.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
        rules_count = sum(1 for s in defn.segments.values() if s.rule is not None)
        filters = sum(1 for t in defn.traits.values() if t.where or t.expr)
        summary = f"{rules_count} segment rules and {filters} trait expressions checked"
        if problems:
            err_console.print(f"{summary}: {len(problems)} problem(s)", highlight=False)
        else:
            click.echo(f"{summary}: no problems")
    if problems:
        sys.exit(1)


@segments.command()
@click.argument("name")
@click.option(
    "--dialect",
    type=click.Choice(DIALECTS),
    default="duckdb",
    show_default=True,
    help="The SQL dialect to print.",
)
@click.option("--as-of", "as_of", help="The instant now() stands for (ISO 8601; default: now).")
@pass_ctx
def sql(ctx: Context, name: str, dialect: str, as_of: str | None) -> None:
    """Print the SQL that selects the members of segment NAME from the traits table."""
    instant: datetime = parse_instant(as_of) if as_of else SystemClock().now()
    compiled = segment_sql(ctx.workspace.definition, name, dialect=dialect, as_of=instant)
    for agg in compiled.aggregates:
        window = f" within {format_duration(agg.within)}" if agg.within else ""
        where = f" where {agg.where}" if agg.where else ""
        err_console.print(
            f"-- reads implicit trait {agg.name}: {agg.func} of {agg.target} of "
            f"'{agg.event}'{window}{where}",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
    click.echo(compiled.sql(dialect) + ";")


@rules.command()
def schema() -> None:
    """Print the JSON Schema of the rule JSON form (for UI builders)."""
    emit_json(json_schema())


@rules.command("check")
@click.argument("rule")
@click.option(
    "--filter", "as_filter", is_flag=True, help="Check a where filter over event properties."
)
@format_option
@pass_ctx
def check_rule(ctx: Context, rule: str, as_filter: bool, fmt: str) -> None:
    """Parse and type-check RULE against the workspace; print its canonical form and reads."""
    filters = TraitSchema.event_properties()
    schema = filters if as_filter else workspace_schema(_definition(ctx)[0])
    expr = parse(rule)
    found = check(expr, schema)
    deps = dependencies(expr)
    info = {
        "canonical": str(expr),
        "type": found,
        "traits": sorted(deps.traits),
        "events": sorted(deps.events),
        "segments": sorted(deps.segments),
        "time_dependent": deps.time_dependent,
        "json": to_json(expr),
    }
    if fmt == "json":
        emit_json(info)
        return
    for key in ("canonical", "type", "traits", "events", "segments", "time_dependent"):
        value = info[key]
        shown = ", ".join(value) if isinstance(value, list) else value
        click.echo(f"{key:<15}{shown}")


def register(cli: click.Group) -> None:
    """The commands attach to the shared groups; nothing to add at the top level."""
