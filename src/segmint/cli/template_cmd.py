"""``segmint template lint`` and ``segmint template preview``."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import click

from segmint.cli.groups import template
from segmint.cli.main import Context, pass_ctx
from segmint.cli.output import console, emit_json, err_console, format_option
from segmint.cli.params import as_of_option


@template.command("lint")
@click.argument("name", required=False)
@click.option("--strict", is_flag=True, help="Exit 1 on warnings too.")
@format_option
@pass_ctx
def lint(ctx: Context, name: str | None, strict: bool, fmt: str) -> None:
    """Check templates against the traits and segments; exit 1 on errors.

    Lints NAME (and the layouts and partials it uses), or every file in templates/.
    """
    from segmint.personalize.lint import lint_templates

    ws = ctx.workspace
    issues, sources = lint_templates(ws.templates_dir, ws.definition, [name] if name else None)
    errors = sum(i.severity == "error" for i in issues)
    warnings = len(issues) - errors
    if fmt == "json":
        emit_json(
            {
                "templates": sorted(sources),
                "errors": errors,
                "warnings": warnings,
                "issues": [i.to_dict() for i in issues],
            }
        )
    else:
        for issue in issues:
            color = "red" if issue.severity == "error" else "yellow"
            text = issue.detailed_message(sources.get(issue.template))
            console.print(f"[{color}]{text}[/{color}]", highlight=False, soft_wrap=True)
        summary = f"{len(sources)} template(s): {errors} error(s), {warnings} warning(s)"
        (err_console if issues else console).print(summary, highlight=False)
    if errors or (strict and warnings):
        raise SystemExit(1)


@template.command("preview")
@click.argument("name")
@click.option("--segment", help="Render for members of this segment.")
@click.option(
    "--profile",
    "profile_id",
    help="Render for this one person: profile id, user id, email or KIND:VALUE.",
)
@click.option(
    "--n",
    "count",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="How many members.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("previews"),
    show_default=True,
    help="Folder for the .html and .eml files.",
)
@click.option("--from", "sender", help="The From address (default: a campaign's, if any).")
@as_of_option("The message date")
@format_option
@pass_ctx
def preview(
    ctx: Context,
    name: str,
    segment: str | None,
    profile_id: str | None,
    count: int,
    out: Path,
    sender: str | None,
    as_of: datetime,
    fmt: str,
) -> None:
    """Render NAME for real members of --segment (or one --profile) to .html and .eml."""
    from segmint.personalize.preview import PreviewRequest, render_previews
    from segmint.privacy.erased import resolve_living

    if (segment is None) == (profile_id is None):
        raise click.UsageError("give exactly one of --segment or --profile")
    given = click.get_current_context().get_parameter_source("count")
    if profile_id is not None and given is click.core.ParameterSource.COMMANDLINE:
        raise click.UsageError("--n counts members of --segment; --profile renders one person")
    if sender is not None:
        _check_sender(sender)
    if profile_id is not None:
        ws = ctx.workspace
        profile_id = resolve_living(ws.privacy, profile_id, field="--profile")  # erased: when
    request = PreviewRequest(
        template=name,
        segment=segment,
        profile_id=profile_id,
        count=count,
        out=out,
        sender=sender,
        date=as_of,
    )
    result = render_previews(ctx.workspace, request)
    if fmt == "json":
        emit_json(result.to_dict())
    else:
        for item in result.written:
            console.print(f"{item['profile_id']}: {item['html']}  {item['eml']}", highlight=False)
        for failure in result.failed:
            err_console.print(
                f"[red]{failure['profile_id']}: {failure['error']}[/red]", highlight=False
            )
        console.print(
            f"{len(result.written)} written, {len(result.failed)} failed", highlight=False
        )
    if result.failed:
        raise SystemExit(1)


def _check_sender(sender: str) -> None:
    """Refuse a --from no message could carry before rendering one (each failed with it)."""
    from segmint.personalize.errors import TemplateRenderError
    from segmint.personalize.mime import address_header

    try:
        address_header("From", sender)
    except TemplateRenderError as exc:
        raise click.BadParameter(
            f"{exc}; write name@example.com or 'Shop <name@example.com>'", param_hint="--from"
        ) from None


def register(cli: click.Group) -> None:
    """The commands attach to the shared ``template`` group; nothing else to add."""
