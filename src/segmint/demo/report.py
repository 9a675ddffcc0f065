"""The end of the demo: what each step did, what to open, what to run next."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import orjson
from rich.panel import Panel
from rich.table import Table

from segmint.demo.stage import DemoContext, Outcome

SUMMARY_FILE = "summary.json"
_STYLE = {"done": "green", "unavailable": "yellow", "skipped": "yellow", "failed": "red"}


def next_steps(ctx: DemoContext, outcomes: Sequence[Outcome]) -> None:
    """Print the step table and a panel saying what to open and what to run next."""
    console = ctx.console
    console.rule("[bold]Done")
    table = Table(title="What the demo did", title_justify="left")
    table.add_column("step")
    table.add_column("status")
    table.add_column("detail", overflow="fold")
    for outcome in outcomes:
        style = _STYLE[outcome.status]
        table.add_row(outcome.stage, f"[{style}]{outcome.status}[/{style}]", outcome.detail)
    console.print(table)
    console.print(Panel("\n".join(_advice(ctx, outcomes)), title="Next", expand=False))


def _advice(ctx: DemoContext, outcomes: Sequence[Outcome]) -> list[str]:
    done = {o.stage for o in outcomes if o.status == "done"}
    ws = ctx.options.directory
    out = ctx.options.out
    lines = ["[bold]Open[/bold]"]
    previews = ctx.facts.get("previews", {})
    for segment, files in previews.items():
        if files:
            lines.append(f"  {files[0]}   (an email for the {segment} segment)")
    if "campaign" in done:
        lines.append(f"  {ctx.facts.get('outbox', out)}/   (the campaign's dry-run outbox)")
    lines.append(f"  {ws / 'segmint.yaml'}   (the traits, segments and campaigns)")
    lines.append(f"  {out / SUMMARY_FILE}   (everything above, as JSON)")
    lines.append("")
    lines.append("[bold]Run[/bold]")
    w = f"segmint -w {ws}"
    lines.append(f"  {w} status")
    if "refresh" in done:
        lines.append(f"  {w} segments list")
        lines.append(f"  {w} segments overlap")
        example = ctx.facts.get("example_profile")
        if example:
            lines.append(f"  {w} profile show {example}")
    if "previews" in done:
        lines.append(f"  {w} template preview lifecycle --segment churned --n 3 --out {out}")
    if "campaign" in done:
        lines.append(f"  {w} campaign send vip_early_access --dry-run")
    lines.append(f"  then edit a rule in {ws / 'segmint.yaml'} and run: {w} refresh")
    return lines


def write_summary(ctx: DemoContext, outcomes: Sequence[Outcome]) -> Path | None:
    """Write ``summary.json`` (options, step outcomes, figures) into the output folder."""
    out = ctx.options.out
    if not out.is_dir():
        return None
    options = ctx.options
    summary = {
        "options": {
            "customers": options.customers,
            "seed": options.seed,
            "as_of": options.as_of.isoformat(),
            "directory": str(options.directory),
            "out": str(options.out),
        },
        "steps": [o.__dict__ for o in outcomes],
        "facts": ctx.facts,
    }
    path = out / SUMMARY_FILE
    path.write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2, default=str))
    return path
