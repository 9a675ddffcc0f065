"""The end of the demo: what each step did, what to open, what to run next."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import orjson
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from segmint.demo.stage import DemoContext, Outcome, count

SUMMARY_FILE = "summary.json"
_STYLE = {"done": "green", "unavailable": "yellow", "skipped": "yellow", "failed": "red"}


def next_steps(ctx: DemoContext, outcomes: Sequence[Outcome]) -> None:
    """Print the step table and a panel saying what to open and what to run next."""
    console = ctx.console
    console.rule("[bold]Done")
    table = Table(title="What the demo did", title_justify="left")
    table.add_column("step")
    table.add_column("status")
    table.add_column("time", justify="right")
    table.add_column("detail", overflow="fold")
    for outcome in outcomes:
        style = _STYLE[outcome.status]
        status = f"[{style}]{outcome.status}[/{style}]"
        took = f"{outcome.seconds:.1f} s" if outcome.status == "done" else ""
        table.add_row(outcome.stage, status, took, escape(outcome.detail))
    console.print(table)
    total = sum(o.seconds for o in outcomes)
    console.print(f"The demo took {total:.0f} s for {count(ctx.options.customers, 'customer')}.")
    console.print(Panel("\n".join(_advice(ctx, outcomes)), title="Next", expand=False))


def _advice(ctx: DemoContext, outcomes: Sequence[Outcome]) -> list[str]:
    done = {o.stage for o in outcomes if o.status == "done"}
    lines = ["[bold]Open[/bold]", *_to_open(ctx, done), "", "[bold]Run[/bold]"]
    known = ctx.options.commands
    for command, text in _to_run(ctx, done):
        if known is None or command in known:
            lines.append(f"  {text}")
    return lines


def _to_open(ctx: DemoContext, done: set[str]) -> list[str]:
    out = ctx.options.out
    lines = []
    for segment, files in ctx.facts.get("previews", {}).items():
        if files:
            lines.append(f"  {files[0]}   (an email for the {segment} segment)")
    if "consent" in done:
        lines.append(f"  {out / 'esp-export'}/   (the old provider's unsubscribes and bounces)")
    if "campaign" in done:
        lines.append(f"  {ctx.facts.get('outbox', out)}/   (the campaign's dry-run outbox)")
    lines.append(f"  {ctx.options.directory / 'segmint.yaml'}   (traits, segments, campaigns)")
    lines.append(f"  {out / SUMMARY_FILE}   (what the demo did, as JSON)")
    return lines


def _to_run(ctx: DemoContext, done: set[str]) -> list[tuple[str, str]]:
    """(command path, command line) suggestions, for the steps that ran."""
    w = f"segmint -w {ctx.options.directory}"
    at = f"--as-of {ctx.options.as_of:%Y-%m-%dT%H:%M:%SZ}"
    runs = [("status", f"{w} status")]
    if "refresh" in done:
        runs += [
            ("segments list", f"{w} segments list"),
            ("segments overlap", f"{w} segments overlap"),
            ("segments show", f"{w} segments show vip"),
        ]
        example = ctx.facts.get("example_profile")
        if example:
            runs.append(("profile show", f"{w} profile show {example} {at}   (a VIP)"))
        preview = ctx.options.out / "previews" / "churned"
        runs.append(
            (
                "template preview",
                f"{w} template preview lifecycle --segment churned {at} --out {preview}",
            )
        )
    if "campaign" in done:
        secret = ctx.facts.get("secret")
        prefix = f"{secret['env']}=$(cat {secret['file']}) " if secret else ""
        runs.append(("campaign send", f"{prefix}{w} campaign send vip_early_access --dry-run {at}"))
    read = ctx.options.as_of + timedelta(days=5)  # the days the demo simulates
    for step, name in (("experiment", "subject_lines"),
                       ("journey_experiment", "abandoned_cart.reminder")):  # fmt: skip
        if step in done:
            report = f"{w} experiments report {name} --as-of {read:%Y-%m-%dT%H:%M:%SZ}"
            runs.append(("experiments", report))
    runs += [
        (
            "refresh",
            f"edit a rule in {ctx.options.directory / 'segmint.yaml'}, then: {w} refresh {at}",
        ),
        ("quality", f"{w} quality   (data quality per source)"),
        ("serve", f"{w} serve   (the tracking API: point a Segment client at it)"),
    ]
    return runs


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
