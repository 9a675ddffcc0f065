"""Rule commands: ``segments validate``, ``segments sql``, ``rules check``, ``rules schema``."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from segmint.cli.groups import rules, segments
from segmint.cli.main import Context, pass_ctx
from segmint.cli.output import emit_json, err_console, format_option
from segmint.cli.warehouse_cmd import (
    check_against_store,
    print_statement,
    request,
    warehouse_options,
)

if TYPE_CHECKING:
    from segmint.config.errors import ConfigError
    from segmint.config.model import WorkspaceDef


def _definition(ctx: Context) -> tuple[WorkspaceDef, Path]:
    from segmint.config.loader import load_workspace_def
    from segmint.config.scaffold import WORKSPACE_FILE

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
    """Check every segment rule, trait filter and derived trait; exit 1 listing the errors.

    Event and property names that neither the tracking plan (if the workspace has one) nor
    the stored events know are warnings with a suggestion: the rule is valid but would
    never match them.
    """
    from segmint.config.loader import group_warnings
    from segmint.workspace import check_definition

    defn, yaml_path = _definition(ctx)
    problems = check_definition(defn, yaml_path)
    warnings, basis = _name_warnings(ctx, defn, yaml_path)
    warnings += group_warnings(defn, yaml_path)
    if fmt == "json":
        emit_json(
            {
                "ok": not problems,
                "errors": [_as_json(e) for e in problems],
                "warnings": [_as_json(w) for w in warnings],
                "names_checked_against": basis,
            }
        )
    else:
        for problem in problems:
            message = problem.detailed_message()
            err_console.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
        for warning in warnings:
            message = warning.detailed_message()
            err_console.print(
                f"[yellow]warning:[/yellow] {message}", highlight=False, soft_wrap=True
            )
        rules_count = sum(1 for s in defn.segments.values() if s.rule is not None)
        filters = sum(1 for t in defn.traits.values() if t.where or t.expr)
        summary = f"{rules_count} segment rules and {filters} trait expressions checked"
        names = f"event and property names checked against {basis}" if basis else ""
        if problems:
            err_console.print(f"{summary}: {len(problems)} problem(s)", highlight=False)
        else:
            click.echo(
                f"{summary}: no problems" + (f", {len(warnings)} warning(s)" if warnings else "")
            )
        if names or warnings:
            err_console.print(names or "event and property names not checked", highlight=False)
    if problems:
        sys.exit(1)


def _name_warnings(
    ctx: Context, defn: WorkspaceDef, yaml_path: Path
) -> tuple[list[ConfigError], str | None]:
    """Warnings for unknown event and property names, and what they were checked against."""
    from segmint.errors import SegmintError
    from segmint.rules.vocabulary import name_warnings, workspace_vocabulary
    from segmint.store import open_store

    try:
        if defn.tracking_plan is not None and defn.tracking_plan.events:
            vocab = workspace_vocabulary(defn, None)
        else:
            store = open_store(defn.store, workspace_dir=yaml_path.parent, reads_only=True)
            try:
                vocab = workspace_vocabulary(defn, store)
            finally:
                store.close()
    except SegmintError as exc:  # no store to ask (locked, unreachable): say so, go on
        err_console.print(f"note: event and property names not checked: {exc}", highlight=False)
        return [], None
    if vocab is None:
        return [], None
    return name_warnings(defn, yaml_path, vocab), vocab.basis


@segments.command()
@click.argument("name")
@warehouse_options
@pass_ctx
def sql(
    ctx: Context,
    name: str,
    dialect: str,
    as_of: datetime,
    origin: str,
    events_table: str,
    maps: tuple[str, ...],
    now: str,
    fmt: str,
) -> None:
    """Print the SQL that selects the members of segment NAME, exactly as segmint decides.

    By default it reads segmint's traits table; --from events computes the traits from a raw
    events table in the statement itself.
    """
    from segmint.membership.segsql import segment_sql

    definition = ctx.workspace.definition
    if name not in definition.segments and name not in definition.archived_segments:
        from segmint.membership.service import Membership

        Membership(ctx.workspace).segment(name)  # unknown: says so, and when it was removed
    instant, source = request(ctx, as_of, origin, events_table, maps, now)
    if source is not None:
        check_against_store(ctx, source, dialect, [name])
    statement = segment_sql(
        ctx.workspace.definition, name, dialect=dialect, as_of=instant, events=source
    )
    print_statement(statement, dialect, fmt)


@rules.command()
def schema() -> None:
    """Print the JSON Schema of the rule JSON form (for UI builders)."""
    from segmint.rules.jsonschema import json_schema

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
    from segmint.rules import TraitSchema, check, dependencies, parse, to_json, workspace_schema

    expr = parse(rule)
    if as_filter:
        found, moving = check(expr, TraitSchema.event_properties()), frozenset[str]()
    else:
        defn = _definition(ctx)[0]
        found, moving = check(expr, workspace_schema(defn)), _moving_traits(defn)
    deps = dependencies(expr, moving)
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


def _moving_traits(defn: WorkspaceDef) -> frozenset[str]:
    """The workspace's traits that move with time alone (none if its traits do not build)."""
    from segmint.traits.catalog import build_catalog
    from segmint.traits.errors import TraitError
    from segmint.traits.validate import moving_traits, segment_aggregates

    try:
        return moving_traits(build_catalog(defn, segment_aggregates(defn)))
    except TraitError:  # 'segments validate' reports it
        return frozenset()


def register(cli: click.Group) -> None:
    """The commands attach to the shared groups; nothing to add at the top level."""
