"""The ``segmint demo`` walk-through: each step in turn, reported honestly.

Steps: lay out the workspace → ingest the shop → refresh traits and segments → the segment
table → models (CLV, churn risk, clusters) → email previews → consent (identify calls, the
old provider's unsubscribes and bounces) → a campaign dry run → a subject-line experiment →
the journeys → the report of the abandoned-cart reminder's experiment → what to open and
run next.
A step whose API is not available says so and the demo goes on; a step that depends on one
that did not run is skipped with the reason; a step that fails prints its error and the demo
goes on, ending with a non-zero exit status.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from rich.console import Console
from rich.markup import escape

from segmint.demo.consent import record_consent
from segmint.demo.emails import dry_run_campaign, preview_emails
from segmint.demo.experiment import report_journey_experiment, run_experiment
from segmint.demo.ingest import ingest_shop
from segmint.demo.insight import refresh_segments, segment_table
from segmint.demo.journeys import run_journeys
from segmint.demo.layout import (
    check_resettable,
    check_separate,
    lay_out_workspace,
    reset_folder,
)
from segmint.demo.models import train_models
from segmint.demo.report import next_steps, write_summary
from segmint.demo.stage import DemoContext, DemoOptions, Outcome, StageUnavailable, Status
from segmint.errors import SegmintError
from segmint.workspace import Workspace

Step = Callable[[DemoContext], str]


@dataclass(frozen=True)
class StepDef:
    """One step: its name, what it does, and the steps it needs."""

    name: str
    title: str
    run: Step
    needs: tuple[str, ...] = ()


def lay_out(ctx: DemoContext) -> str:
    """Reset the demo workspace and output folders and open the workspace."""
    options = ctx.options
    lay_out_workspace(options.directory)
    reset_folder(options.out, "output folder")
    ctx.workspace = Workspace.open(options.directory)
    definition = ctx.workspace.definition
    store = ctx.workspace.store
    where = f"{store.dialect} store"
    if os.environ.get("SEGMINT_DATABASE_URL"):
        where += " from SEGMINT_DATABASE_URL (the demo does not empty that database)"
    return (
        f"{options.directory}/ with {len(definition.traits)} traits, "
        f"{len(definition.segments)} segments and {len(definition.campaigns)} campaigns, "
        f"on the {where}"
    )


STEPS: tuple[StepDef, ...] = (
    StepDef("workspace", "Creating the demo workspace", lay_out),
    StepDef("ingest", "Generating the shop and ingesting it", ingest_shop, ("workspace",)),
    StepDef("refresh", "Computing traits and segments", refresh_segments, ("ingest",)),
    StepDef("segments", "Segments", segment_table, ("refresh",)),
    StepDef(
        "models",
        "Training models: lifetime value, churn risk, clusters",
        train_models,
        ("refresh",),
    ),  # fmt: skip
    StepDef("previews", "Previewing personalised email", preview_emails, ("refresh",)),
    StepDef("consent", "Recording consent, unsubscribes and bounces", record_consent, ("ingest",)),
    StepDef("campaign", "Dry-running a campaign", dry_run_campaign, ("refresh", "consent")),
    StepDef(
        "experiment",
        "Running a subject-line experiment with a holdout",
        run_experiment,
        ("refresh", "consent"),
    ),
    StepDef(
        "journeys", "Running the journeys (abandoned cart …)", run_journeys, ("refresh", "consent")
    ),
    StepDef(
        "journey_experiment",
        "The abandoned-cart reminder's experiment: a personal subject and a holdout",
        report_journey_experiment,
        ("journeys",),
    ),
)


@dataclass
class DemoResult:
    """What the demo did: one outcome per step, and the context it built."""

    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no step failed (unavailable steps are not failures)."""
        return all(o.status != "failed" for o in self.outcomes)

    def status(self, stage: str) -> str | None:
        """The status of ``stage``, or None if it was not attempted."""
        return next((o.status for o in self.outcomes if o.stage == stage), None)


def run_demo(options: DemoOptions, console: Console | None = None) -> DemoResult:
    """Run every step of the demo and print what happened.

    Args:
        options: What to build and where.
        console: Where to print (a new console on standard output when omitted).

    Returns:
        The outcome of each step.

    Raises:
        DemoError: Before anything is written, if a folder is not the demo's to reset.
    """
    check_separate(options.directory, options.out)
    check_resettable(options.directory, "workspace")
    check_resettable(options.out, "output folder")
    ctx = DemoContext(options, console or Console())
    result = DemoResult()
    try:
        for step in STEPS:
            result.outcomes.append(_run_step(step, ctx, result))
        next_steps(ctx, result.outcomes)
        write_summary(ctx, result.outcomes)
    finally:
        if ctx.workspace is not None:
            ctx.workspace.close()
    return result


def _run_step(step: StepDef, ctx: DemoContext, result: DemoResult) -> Outcome:
    console = ctx.console
    console.rule(f"[bold]{step.title}")
    missing = [n for n in step.needs if result.status(n) != "done"]
    if missing:
        detail = f"skipped: needs the {', '.join(missing)} step, which did not run"
        console.print(f"[yellow]{escape(detail)}[/yellow]")
        return Outcome(step.name, "skipped", detail)
    started = time.perf_counter()
    status, detail = _attempt(step, ctx)
    return Outcome(step.name, status, detail, round(time.perf_counter() - started, 1))


def _attempt(step: StepDef, ctx: DemoContext) -> tuple[Status, str]:
    console = ctx.console
    try:
        detail = step.run(ctx)
    except StageUnavailable as exc:
        console.print(f"[yellow]not available in this build:[/yellow] {escape(str(exc))}")
        return "unavailable", str(exc)
    except SegmintError as exc:
        console.print(f"[red]failed:[/red] {escape(exc.detailed_message())}", highlight=False)
        return "failed", str(exc)
    except Exception as exc:  # a bug in one step must not hide what the others show
        if ctx.options.debug:
            console.print_exception()
        detail = f"{type(exc).__name__}: {exc}"
        console.print(f"[red]failed:[/red] {escape(detail)}", highlight=False)
        return "failed", detail
    console.print(f"[green]✓[/green] {escape(detail)}", highlight=False)
    return "done", detail
