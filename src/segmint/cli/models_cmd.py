"""Model commands: ``segmint models train|score|list|show NAME``.

Each command calls :mod:`segmint.models.service` / :mod:`segmint.models.registry` and only
prints. Heavy libraries load inside the commands, so ``segmint --help`` stays fast.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import click

from segmint.cli.main import Context, pass_ctx
from segmint.cli.output import emit_json, emit_table, format_option
from segmint.cli.params import as_of_option, refuse_later_than_now


@click.group("models")
def models() -> None:
    """Train models (CLV, propensity, clustering) and write their scores as traits."""


@contextmanager
def _progress(quiet: bool) -> Iterator[Callable[[str], None]]:
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from segmint.cli.output import err_console

    if quiet or not err_console.is_terminal:  # a spinner in a log is a stray blank line
        yield lambda _: None
        return
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=err_console, transient=True) as bar:  # stdout: results
        task = bar.add_task("starting", total=None)
        yield lambda text: bar.update(task, description=text)


@models.command("train")
@click.argument("name")
@as_of_option("Train on the events up to this instant")
@format_option
@pass_ctx
def train(ctx: Context, name: str, as_of: datetime, fmt: str) -> None:
    """Train model NAME and record a new version in the store."""
    refuse_later_than_now(
        as_of, "--as-of",
        "no event after now is stored yet, so the version would claim a data window (and, "
        "for a propensity, outcomes) that has not happened; train on the events up to now",
    )  # fmt: skip
    from segmint.clock import SystemClock
    from segmint.models.service import train as train_model

    with _progress(fmt == "json") as say:
        entry = train_model(ctx.workspace, name, as_of, trained_at=SystemClock().now(),
                            progress=say)  # fmt: skip
    if fmt == "json":
        emit_json(entry.summary())
        return
    click.echo(
        f"trained {name} v{entry.version} ({entry.kind}) on data up to {as_of:%Y-%m-%d %H:%M}"
    )
    _print_metrics(entry.metrics)


def _print_metrics(metrics: dict[str, Any]) -> None:
    for key, value in metrics.items():
        if key != "calibration":
            click.echo(f"  {key}: {value}")


@models.command("score")
@click.argument("name")
@as_of_option("Score at this instant")
@click.option("--refresh/--no-refresh", default=True, show_default=True,
              help="Refresh memberships after writing the scores.")  # fmt: skip
@format_option
@pass_ctx
def score(ctx: Context, name: str, as_of: datetime, refresh: bool, fmt: str) -> None:
    """Score every profile with model NAME's newest version; scores become its traits."""
    refuse_later_than_now(
        as_of, "--as-of",
        "the scores would be stored now as events of that later instant, and the memberships "
        "refreshed at it; score at that time ('segmint models list' says when it is due)",
    )  # fmt: skip
    from segmint.membership.service import Membership
    from segmint.models.service import score as score_model

    with _progress(fmt == "json") as say:
        result = score_model(ctx.workspace, name, as_of, progress=say)
        report = None
        if refresh:
            say("refreshing memberships")
            report = Membership(ctx.workspace).refresh(as_of)
    out = result.to_dict()
    if report is not None:
        out["memberships"] = {"entered": report.entered, "exited": report.exited}
    if fmt == "json":
        emit_json(out)
        return
    click.echo(f"scored {out['profiles']} profiles with {name} v{out['version']} "
               f"({out['written']} new score events)")  # fmt: skip
    if report is not None:
        click.echo(f"memberships: {report.entered} entered, {report.exited} exited")


@models.command("list")
@format_option
@as_of_option("Say which models are due for scoring at this instant")
@pass_ctx
def list_models(ctx: Context, fmt: str, as_of: datetime) -> None:
    """List the declared models, their traits, newest version and scoring schedule."""
    from segmint.models.registry import last_scored, versions

    ws = ctx.workspace
    newest = {v.model: v for v in versions(ws.store, newest_only=True)}
    rows: list[dict[str, Any]] = []
    for name, defn in ws.definition.models.items():
        entry, scored = newest.get(name), last_scored(ws.store, name)
        rows.append({
            "name": name, "kind": defn.kind, "traits": sorted(defn.output_traits(name).values()),
            "version": entry.version if entry else None,
            "trained_at": entry.trained_at.isoformat() if entry else None,
            "last_scored": scored.isoformat() if scored else None,
            "due": entry is not None and (scored is None or scored + defn.schedule <= as_of),
        })  # fmt: skip
    if fmt == "json":
        emit_json(rows)
        return
    table = [(r["name"], r["kind"], ", ".join(r["traits"]), r["version"] or "untrained",
              r["last_scored"] or "", "yes" if r["due"] else "") for r in rows]  # fmt: skip
    emit_table("Models", ["name", "kind", "traits", "version", "last scored", "due"], table)


@models.command("show")
@click.argument("name")
@format_option
@click.option("--write-segments", is_flag=True,
              help="Add each cluster's proposed rule to segmint.yaml as a segment.")  # fmt: skip
@pass_ctx
def show(ctx: Context, name: str, fmt: str, write_segments: bool) -> None:
    """Show model NAME's newest version: data window, metrics, clusters and their rules."""
    from segmint.models.registry import latest

    defined = _defined_or_stored(ctx, name, write_segments)
    entry = latest(ctx.workspace.store, name, params=False)
    written, kept = _write_segments(ctx, name, entry.report) if write_segments else ([], [])
    if fmt == "json":
        emit_json({**entry.summary(), "defined": defined, "segments_written": written,
                   "segments_kept": kept})  # fmt: skip
        return
    gone = "" if defined else f" ({REMOVED})"
    click.echo(f"{name} v{entry.version} ({entry.kind}), trained on data up to "
               f"{entry.as_of.isoformat()}{gone}")  # fmt: skip
    click.echo(f"  features: {', '.join(entry.features)}")
    _print_metrics(entry.metrics)
    if "parameters" in entry.report:
        for part, values in entry.report["parameters"].items():
            click.echo(f"  {part}: " + ", ".join(f"{k}={v:.4g}" for k, v in values.items()))
    for c in entry.report.get("clusters", []):
        click.echo(f"\ncluster {c['cluster']}: {c['size']} profiles ({c['share']:.0%}): "
                   f"{c['summary']}")  # fmt: skip
        click.echo(f"  proposed rule: {c['proposed_rule']}  "
                   f"(precision {c['rule_precision']}, recall {c['rule_recall']})")  # fmt: skip
    for segment in written:
        click.echo(f"added segment {segment} to segmint.yaml")
    for segment in kept:
        click.echo(f"kept segment {segment}: segmint.yaml has it with another rule (rename or "
                   "remove it to write the proposed one)")  # fmt: skip


REMOVED = "no longer in segmint.yaml: not scored any more; its versions stay in the store"


def _defined_or_stored(ctx: Context, name: str, write_segments: bool) -> bool:
    """Whether model ``name`` is declared; False for one removed whose versions are stored.

    Raises:
        UnknownModelError: Neither declared nor stored (with the nearest name), or removed
            and asked for segments (its traits are no longer written: no rule could use them).
    """
    from segmint.models.errors import UnknownModelError
    from segmint.models.registry import versions
    from segmint.models.service import model_def

    try:
        model_def(ctx.workspace, name)
    except UnknownModelError:
        if not versions(ctx.workspace.store, name, newest_only=True):
            raise
        if write_segments:
            raise UnknownModelError(
                f"model {name!r} is no longer in segmint.yaml: its traits are not written any "
                "more, so no segment could use its clusters; declare it again under 'models:' "
                "to propose them"
            ) from None
        return False
    return True


def _write_segments(ctx: Context, name: str, report: dict[str, Any]) -> tuple[list[str], list[str]]:
    """Add each cluster's proposed rule as a segment, through the console's editor.

    Only the new entries' lines change, and each is validated before it is written. A
    segment of the proposed name already there is left as it is; it is named (the second
    list) when its rule is another one, the user's own or an older version's proposal.
    """
    from segmint.config.edit import DefinitionEditor

    editor = DefinitionEditor(ctx.workspace.path)
    existing = editor.entries("segments")
    written, kept = [], []
    for c in report.get("clusters", []):
        segment = f"{name}_cluster_{c['cluster']}"
        if segment in existing:
            mine = existing[segment][0]
            if not isinstance(mine, dict) or mine.get("rule") != c["proposed_rule"]:
                kept.append(segment)
            continue
        summary = f"proposed by model {name}: {c['summary']}"
        editor.put_segment(segment, {"rule": c["proposed_rule"], "description": summary})
        written.append(segment)
    return written, kept


def register(cli: click.Group) -> None:
    """Add the ``models`` group."""
    cli.add_command(models)
