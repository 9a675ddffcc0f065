"""Trait commands: ``traits list|sql|refresh``, ``profile show`` and ``rebuild``.

Each command calls :mod:`segmint.traits` and only prints; ``profile show`` prints the
mapping :func:`segmint.traits.live.profile_traits` gathers, so other stages can add keys
(segments, memberships) to it and a section here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click

from segmint.cli.groups import profile, traits
from segmint.cli.main import Context, pass_ctx
from segmint.cli.output import emit_json, emit_table, format_option
from segmint.cli.params import as_of_option, deferred_choice, refuse_later_than_now


def _show(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


@traits.command("list")
@format_option
@pass_ctx
def list_traits(ctx: Context, fmt: str) -> None:
    """List every trait: name, kind, type and definition."""
    from segmint.traits.validate import workspace_catalog

    catalog = workspace_catalog(ctx.workspace)
    rows = [
        {"name": s.name, "kind": s.kind, "type": s.type, "pii": s.pii, "definition": s.definition}
        for s in catalog
    ]
    if fmt == "json":
        emit_json(rows)
        return
    table = [
        (r["name"], r["kind"], r["type"], "yes" if r["pii"] else "", r["definition"]) for r in rows
    ]
    emit_table("Traits", ["name", "kind", "type", "pii", "definition"], table)


@traits.command("sql")
@click.argument("name", required=False)
@click.option(
    "--dialect",
    type=deferred_choice("segmint.rules.sqlcompile", "DIALECTS"),
    default="duckdb",
    show_default=True,
)
@as_of_option("The instant now() stands for")
@pass_ctx
def sql(ctx: Context, name: str | None, dialect: str, as_of: datetime) -> None:
    """Print the batch SQL computing every trait (or trait NAME) for every profile."""
    from segmint.traits.errors import TraitError
    from segmint.traits.sqlgen import trait_sql
    from segmint.traits.validate import workspace_catalog

    catalog = workspace_catalog(ctx.workspace)
    if name is not None and name not in catalog:
        from segmint.common import did_you_mean

        hint = did_you_mean(name, catalog.names) or "see 'segmint traits list'"
        raise TraitError(f"unknown trait '{name}'; {hint}")
    names = None if name is None else [name]
    click.echo(trait_sql(catalog, dialect, as_of, names))


@traits.command("refresh")
@as_of_option("Compute at this instant")
@pass_ctx
def refresh(ctx: Context, as_of: datetime) -> None:
    """Recompute every profile's traits in batch into profile_traits and trait_values."""
    from segmint.traits.batch import refresh as batch_refresh
    from segmint.traits.validate import workspace_catalog

    ws = ctx.workspace
    result = batch_refresh(ws.store, workspace_catalog(ws), as_of)
    click.echo(f"computed traits of {result.profiles} profiles at {_show(result.as_of)}")


@profile.command("show")
@click.argument("person")
@as_of_option("Show the profile as it is at this instant")
@format_option
@pass_ctx
def show(ctx: Context, person: str, as_of: datetime, fmt: str) -> None:
    """Show one profile's traits and segments, all at one instant (--as-of, default now).

    PERSON is a profile id, user id, anonymous id, email or KIND:VALUE (merges followed).
    Traits, segment membership and each rule's clauses are computed from the profile's
    events at that instant; where the stored membership (last refresh or real time)
    differs, the "why" column says so.
    """
    from segmint.membership.explain import SEGMENT_COLUMNS, add_profile_segments, segment_rows
    from segmint.privacy.erased import resolve_living
    from segmint.traits.errors import TraitError
    from segmint.traits.live import profile_traits
    from segmint.traits.validate import workspace_catalog

    ws = ctx.workspace
    profile_id = resolve_living(ws.privacy, person, field="PERSON")  # erased: says when
    view = profile_traits(ws.store, workspace_catalog(ws), profile_id, as_of)
    if view is None:
        raise TraitError(f"profile '{profile_id}' ({person}) has no trait values to show")
    for trait in view["traits"]:  # PII sealed at rest is opened for the reader (privacy)
        trait["value"] = ws.privacy.unseal(trait["value"])
    add_profile_segments(view, ws)  # segments and why, from the membership engine
    from segmint.journeys.insight import profile_journeys

    view["journeys"] = profile_journeys(ws.store, profile_id)  # and where it is in journeys
    view["as_of_source"] = _instant_source("as_of")
    if fmt == "json":
        emit_json(view)
        return
    click.echo(
        f"profile {view['profile_id']}  ({view['events']} events)  as of "
        f"{_show(view['as_of'])} ({view['as_of_source']}): traits, membership and clauses "
        "all computed from its events at this instant"
    )
    rows = [(t["name"], t["kind"], t["type"], _show(t["value"])) for t in view["traits"]]
    emit_table("Traits", ["trait", "kind", "type", "value"], rows)
    emit_table("Segments", list(SEGMENT_COLUMNS), segment_rows(view))
    if view["journeys"]:
        columns = ["journey", "entry", "status", "step", "due", "exit_reason"]
        found = [[_show(j[c]) for c in columns] for j in view["journeys"]]
        emit_table("Journeys (next step and when it is due)", columns, found)


def _instant_source(name: str) -> str:
    """Say where an instant option's value came from: 'now' (the default) or '--as-of'."""
    source = click.get_current_context().get_parameter_source(name)
    return "now" if source in (None, click.core.ParameterSource.DEFAULT) else "--as-of"


@click.command("rebuild")
@as_of_option("Rebuild as of this instant")
@pass_ctx
def rebuild(ctx: Context, as_of: datetime) -> None:
    """Rebuild every profile's trait state and values from the stored events."""
    from rich.progress import Progress

    from segmint.membership.recovery import without_servers
    from segmint.membership.service import Membership
    from segmint.traits.live import rebuild as rebuild_state
    from segmint.traits.validate import workspace_catalog

    refuse_later_than_now(
        as_of, "--as-of", "the stored trait values would be those of that instant (windows "
        "emptied, days counted ahead) while real time goes on from now; give a past instant, "
        "or none for now",
    )  # fmt: skip
    ws = ctx.workspace
    catalog = workspace_catalog(ws)
    with without_servers(ws.store, "segmint rebuild"), Progress(transient=True) as bar:
        task = bar.add_task("rebuilding traits", total=None)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        count = rebuild_state(ws.store, catalog, as_of, progress=advance)
    click.echo(f"rebuilt trait state of {count} profiles")
    gone = Membership(ws).retire_removed(as_of)  # the members of removed segments exit
    if gone:
        names = ", ".join(sorted({c.segment for c in gone}))
        click.echo(f"{len(gone)} members of segments no longer defined exited ({names})")


def register(cli: click.Group) -> None:
    """Add ``rebuild`` (the ``traits`` and ``profile`` groups come from ``groups``)."""
    cli.add_command(rebuild)
