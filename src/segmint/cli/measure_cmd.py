"""``segmint measure rebuild``, ``segmint report kpis`` and ``segmint experiments …``.

The commands call :mod:`segmint.measure` and only print.
"""

from __future__ import annotations

import csv
import sys
from datetime import datetime
from typing import Any

import click

from segmint.cli.groups import segments
from segmint.cli.main import Context, pass_ctx
from segmint.cli.output import console, emit_json, emit_table, err_console, format_option
from segmint.cli.params import INSTANT, as_of_option, deferred_choice, refuse_later_than_now


@click.group()
def measure() -> None:
    """Attribution of conversions to sends."""


@click.group()
def report() -> None:
    """Reports: KPIs of sends over a period."""


@click.group()
def experiments() -> None:
    """Experiments on campaigns and journey steps: list and report."""


@measure.command("rebuild")
@as_of_option("Attribute conversions up to this instant")
@format_option
@pass_ctx
def rebuild(ctx: Context, as_of: datetime, fmt: str) -> None:
    """Recompute which send earned each conversion (last touch within the window)."""
    from segmint.measure.attribution import rebuild as run

    refuse_later_than_now(
        as_of, "--as-of", "the stored attribution would say 'as of' an instant whose sends, "
        "conversions and windows are not all in yet, and later reports would read it; give a "
        "past instant, or none for now",
    )  # fmt: skip
    with err_console.status("attributing conversions", spinner="dots"):
        result = run(ctx.workspace.store, ctx.workspace.definition.measure, as_of)
    data = result.to_dict()
    if fmt == "json":
        emit_json(data)
        return
    console.print(
        f"{data['attributed']} of {data['conversions']} conversion(s) attributed "
        f"(revenue {data['revenue']:.2f}) as of {data['as_of']}"
    )
    rows = [(name, n) for name, n in data["by_campaign"].items()]
    if rows:
        emit_table("Attributed conversions", ["campaign", "conversions"], rows)


KPI_COLUMNS = (
    "sent", "delivered", "bounced", "opened", "machine_opened", "clicked", "click_to_open",
    "unsubscribed", "conversions", "revenue", "revenue_per_recipient",
)  # fmt: skip


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1 else f"{value:.2f}"
    return str(value)


@report.command("kpis")
@click.option(
    "--by",
    type=deferred_choice("segmint.measure.kpis", "GROUPINGS"),
    default="campaign",
    show_default=True,
    help="Group the sends by their campaign (a journey's by step), its template, its "
    "target segment, or journey.",
)
@click.option("--from", "start", type=INSTANT, default=None, help="Period start (exclusive).")
@click.option("--to", "--as-of", "end", type=INSTANT, default="now", show_default=True,
              help="Period end (inclusive); --as-of is the same.")  # fmt: skip
@click.option(
    "--churn-to",
    metavar="SEGMENT",
    default=None,
    help="With --by segment: count members who left for SEGMENT in the period.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "csv"]),
    default="table",
    show_default=True,
    help="Output for people (table) or scripts (json, csv).",
)
@pass_ctx
def kpis(
    ctx: Context, by: str, start: datetime | None, end: datetime, churn_to: str | None, fmt: str
) -> None:
    """Sends, opens, clicks, unsubscribes, conversions and revenue over a period."""
    from segmint.clock import parse_instant
    from segmint.measure.attribution import built_as_of
    from segmint.measure.kpis import kpi_report

    if start is not None and start >= end:
        raise click.BadParameter(
            f"--from {start.isoformat()} is not before --to {end.isoformat()}",
            param_hint="--from",
        )
    if churn_to is not None and by != "segment":
        raise click.UsageError("--churn-to counts exits of segments: use it with --by segment")
    ws = ctx.workspace
    data = kpi_report(ws.store, ws.definition, by, start, end, churn_to=churn_to).to_dict()
    built = built_as_of(ws.store)
    if fmt == "json":
        emit_json(data | {"attribution_built_as_of": built})  # as /v1/reports/kpis has it
        return
    extra = ["size_start", "size_end"] if by == "segment" else []
    extra += ["churned"] if churn_to is not None else []
    columns = [by, *KPI_COLUMNS, *extra]
    rows = [[row.get(c) for c in columns] for row in data["rows"]]
    total = ["(total)", *(data["total"].get(c) for c in KPI_COLUMNS), *([None] * len(extra))]
    if fmt == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([*rows, total])
        return
    # one column per group and a row per figure: fourteen figures never fit across
    groups = [str(r[0]) for r in rows] + ["(total)"]
    table = [[c, *(_cell(r[i]) for r in [*rows, total])] for i, c in enumerate(columns) if i]
    emit_table(f"KPIs by {by}", ["", *groups], table)
    if built is None:
        err_console.print("conversions are empty until `segmint measure rebuild` has run")
    elif parse_instant(built) < end:
        err_console.print(
            f"conversions are counted up to {built}, when `segmint measure rebuild` last "
            f"ran (--as-of): those until {end.isoformat()} need it run again",
            highlight=False, soft_wrap=True,
        )  # fmt: skip


@experiments.command("list")
@format_option
@pass_ctx
def list_experiments(ctx: Context, fmt: str) -> None:
    """List the experiments: campaign, arms and metric."""
    from segmint.measure.assign import GLOBAL_HOLDOUT
    from segmint.measure.experiments import experiment_list

    rows = experiment_list(ctx.workspace.definition)
    if fmt == "json":
        emit_json(rows)  # as GET /v1/reports/experiments lists them
        return

    def arm(experiment: str, each: dict[str, Any]) -> str:
        name = str(each["name"])
        if experiment == GLOBAL_HOLDOUT:
            return f"{name} ({each['weight']:g} %)" if each["holdout"] else name
        return name + (" (holdout)" if each["holdout"] else "")

    table = [(r["experiment"], r["campaign"] or "(all)", r["metric"],
              ", ".join(arm(r["experiment"], a) for a in r["arms"])) for r in rows]  # fmt: skip
    emit_table("Experiments", ["experiment", "campaign", "metric", "arms"], table)


@experiments.command("report")
@click.argument("name")
@as_of_option("Read the results at this instant")
@click.option("--from", "start", type=INSTANT, default=None,
              help="global_holdout only: count conversions after this instant.")  # fmt: skip
@format_option
@pass_ctx
def report_experiment(
    ctx: Context, name: str, as_of: datetime, start: datetime | None, fmt: str
) -> None:
    """Per arm: size, rate, lift with its interval, p-value, chance to win, SRM verdict."""
    from segmint.measure.assign import GLOBAL_HOLDOUT
    from segmint.measure.experiments import experiment_report

    if start is not None and name != GLOBAL_HOLDOUT:
        raise click.UsageError(
            f"--from applies to {GLOBAL_HOLDOUT} only: experiment {name!r} counts each "
            "person from their assignment (use --as-of to read it at another instant)"
        )
    if start is not None and start >= as_of:
        raise click.BadParameter(
            f"--from {start.isoformat()} is not before --as-of {as_of.isoformat()}",
            param_hint="--from",
        )
    ws = ctx.workspace
    data = experiment_report(ws.store, ws.definition, name, as_of, start=start).to_dict()
    if fmt == "json":
        emit_json(data)
        return
    from segmint.measure.experiments import summary_lines, summary_table

    headline, conclusion = summary_lines(data)
    console.print(headline, highlight=False, soft_wrap=True)
    columns, rows = summary_table(data)
    emit_table(None, columns, rows)
    console.print(conclusion, highlight=False, soft_wrap=True)


@segments.command("suggest")
@click.argument("name")
@as_of_option("Read outcomes and sizes at this instant")
@format_option
@pass_ctx
def suggest(ctx: Context, name: str, as_of: datetime, fmt: str) -> None:
    """How conversion varies across segment NAME's thresholds; a proposal (rule unchanged)."""
    from segmint.measure.suggest import suggest as run

    data = run(ctx.workspace, name, as_of).to_dict()
    if fmt == "json":
        emit_json(data)
        return
    rate = "" if data["rate"] is None else f", {data['rate']:.2%} converted"
    senders = [*data["campaigns"], *(f"journey {j}" for j in data["journeys"])]
    console.print(
        f"segment {data['segment']} ({data['size']:,} members): {data['rule']}\n"
        f"outcomes of {', '.join(senders)}: {data['recipients']:,} sends{rate}",
        highlight=False, soft_wrap=True,
    )  # fmt: skip
    if not data["recipients"]:
        how = (
            f"`segmint campaign send {data['campaigns'][0]}`"
            if data["campaigns"]
            else "journey messages: `segmint serve` or `segmint journeys run`"
        )
        console.print(f"nothing sent yet: suggestions need outcomes ({how})",
                      highlight=False, soft_wrap=True)  # fmt: skip
        return
    if not data["clauses"]:
        console.print("no numeric threshold in the rule to tune", highlight=False)
    for clause in data["clauses"]:
        rows = [(f"{b['low']:g} – {b['high']:g}", f"{b['n']:,}", f"{b['converted']:,}",
                 f"{b['rate']:.2%}") for b in clause["buckets"]]  # fmt: skip
        emit_table(clause["clause"], [clause["trait"], "sends", "converted", "rate"], rows)
        p = clause["proposal"]
        if p is None:
            console.print("  no change proposed", highlight=False)
            continue
        console.print(
            f"  proposal ({p['direction']}): {p['clause']} → {p['expected_size']:,} members, "
            f"expected rate {p['expected_rate']:.2%} ({p['why']}); the rule is unchanged",
            highlight=False, soft_wrap=True,
        )  # fmt: skip


def register(cli: click.Group) -> None:
    """Add the measurement commands."""
    for group in (measure, report, experiments):
        cli.add_command(group)
