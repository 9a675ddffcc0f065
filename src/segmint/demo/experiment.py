"""The demo's experiment: a subject-line test with a holdout, on simulated engagement.

Experiment ``subject_lines`` splits campaign ``subject_test`` (the vip segment): the
template's own subject (the control), an urgent subject, and a holdout arm sent nothing. The step
sends it for real through the ledger into an outbox folder (no SMTP), so every recipient's
arm is recorded; then it simulates what recipients do in the five days after (opens, some
of them by image proxies, clicks, orders; the urgent subject is opened more, and mail
brings more orders than none) and submits that through intake like real engagement. The
experiment report is what ``segmint experiments report subject_lines`` prints.

After the journeys, the report of the abandoned-cart reminder's own experiment
(``abandoned_cart.reminder``: a personal subject, the template's, and a holdout), judged on
the shop's orders.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from rich.table import Table

from segmint.clock import FixedClock
from segmint.demo.emails import signing_secret
from segmint.demo.ingest import progress_bar
from segmint.demo.stage import DemoContext, need

CAMPAIGN = "subject_test"
EXPERIMENT = "subject_lines"
JOURNEY_EXPERIMENT = "abandoned_cart.reminder"
"""The abandoned-cart journey's reminder step: subject arms and a holdout."""
DAYS = 5


def run_experiment(ctx: DemoContext) -> str:
    """Send the subject test into an outbox, simulate engagement, print the report."""
    (build_run,) = need("segmint.deliver.service", "build_run")
    (outbox_class,) = need("segmint.deliver.fake", "OutboxTransport")
    (report_fn,) = need("segmint.measure.experiments", "experiment_report")
    ws, as_of = ctx.ws, ctx.options.as_of
    folder = ctx.options.out / "experiment"
    with progress_bar(ctx) as bar, signing_secret(ctx):
        task = bar.add_task(f"Sending {CAMPAIGN} to its outbox", total=None, note="")

        def tick(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        run = build_run(ws, CAMPAIGN, clock=FixedClock(as_of), transport=outbox_class(folder),
                        progress=tick)  # fmt: skip
        sent = asyncio.run(run.run())
    messages = simulate(ctx, random.Random(ctx.options.seed))  # noqa: S311 (a simulation)
    (intake_class,) = need("segmint.intake", "Intake")
    intake_class(ws, FixedClock(as_of + timedelta(days=DAYS))).submit(messages, source="email")
    data = report_fn(ws.store, ws.definition, EXPERIMENT, as_of + timedelta(days=DAYS)).to_dict()
    ctx.facts["experiment"] = data
    ctx.facts["experiment_events"] = len(messages) + sent.sent  # and an Email Delivered each
    print_report(ctx, data, f"{EXPERIMENT} ({DAYS} days after the send)")
    return (
        f"{sent.sent:,} sent to {folder}/, {sent.skipped.get('holdout', 0):,} held out; "
        f"{len(messages):,} simulated engagement events"
    )


def report_journey_experiment(ctx: DemoContext) -> str:
    """Simulate the days after the abandoned-cart reminders and print their experiment.

    The journeys sent each reminder at its instant in the demo's last days (the holdout arm
    nothing); recipients then open (the personal subject more often) and order (after a
    reminder more often than without), submitted through intake. The report is what
    ``segmint experiments report abandoned_cart.reminder`` prints five days on.
    """
    (report_fn,) = need("segmint.measure.experiments", "experiment_report")
    (intake_class,) = need("segmint.intake", "Intake")
    ws, read = ctx.ws, ctx.options.as_of + timedelta(days=DAYS)
    rng = random.Random(ctx.options.seed + 1)  # noqa: S311 (a simulation)
    messages = simulate(ctx, rng, JOURNEY_EXPERIMENT, JOURNEY_RATES)
    intake_class(ws, FixedClock(read)).submit(messages, source="email")
    data = report_fn(ws.store, ws.definition, JOURNEY_EXPERIMENT, read).to_dict()
    ctx.facts["journey_experiment"] = data
    ctx.facts["experiment_events"] = ctx.facts.get("experiment_events", 0) + len(messages)
    print_report(ctx, data, f"{JOURNEY_EXPERIMENT} ({DAYS} days after the demo's instant)")
    arms = ", ".join(f"{a['n']:,} {a['arm']}" for a in data["arms"])
    return f"{arms}; {len(messages):,} simulated engagement events"


def print_report(ctx: DemoContext, data: dict[str, Any], title: str) -> None:
    """Print an experiment report as ``segmint experiments report`` does."""
    lines_fn, table_fn = need("segmint.measure.experiments", "summary_lines", "summary_table")
    headline, conclusion = lines_fn(data)
    columns, rows = table_fn(data)
    table = Table(title=f"Experiment report: {title}", title_justify="left")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    ctx.console.print(headline, highlight=False, soft_wrap=True)
    ctx.console.print(table)
    ctx.console.print(conclusion, highlight=False, soft_wrap=True)


@dataclass(frozen=True)
class Rates:
    """Simulated behaviour: open chance per arm sent something; order chance by outcome."""

    open: dict[str, float]
    order: dict[str, float]


SUBJECT_RATES = Rates({"control": 0.22, "urgent": 0.30},
                      {"opened": 0.12, "unopened": 0.04, "holdout": 0.03})  # fmt: skip
JOURNEY_RATES = Rates({"control": 0.30, "personal": 0.36},
                      {"opened": 0.20, "unopened": 0.08, "holdout": 0.06})  # fmt: skip


def simulate(
    ctx: DemoContext, rng: random.Random, experiment: str = EXPERIMENT,
    rates: Rates = SUBJECT_RATES,
) -> list[dict[str, Any]]:  # fmt: skip
    """Return the opens, clicks and orders of an experiment's people in the days after.

    Each person's clock starts at their send (its ledger row), or at their assignment for
    an arm sent nothing; engagement carries the campaign their message did.
    """
    (identities_of, message) = need(
        "segmint.deliver.engagement", "identities_of", "engagement_message"
    )
    store = ctx.ws.store
    exp = ctx.ws.definition
    (find,) = need("segmint.measure.experiments", "find_experiment")
    base = find(exp, experiment).campaign
    rows = store.fetchall(
        "SELECT a.profile_id, a.arm, a.assigned_at, s.campaign, s.sent_at "
        "FROM experiment_assignments a LEFT JOIN sends s ON s.profile_id = a.profile_id "
        "AND (s.campaign = ? OR s.campaign LIKE ?) AND s.status = 'sent' "
        "WHERE a.experiment = ? ORDER BY a.profile_id",
        [base, f"{base}:%", experiment],
    )
    people = {pid: (arm, campaign or base, _utc(sent_at or assigned_at))
              for pid, arm, assigned_at, campaign, sent_at in rows}  # fmt: skip
    who = identities_of(store, list(people))
    # the subject test's keys are as they always were; others' name their experiment
    prefix = "" if experiment == EXPERIMENT else f"{experiment}|"
    out: list[dict[str, Any]] = []
    for pid, (arm, campaign, at) in people.items():

        def later(hours: float, at: datetime = at) -> datetime:
            return at + timedelta(hours=rng.uniform(1.0, hours))

        key = f"{prefix}{pid}"
        props = {"campaign": campaign, "email_id": f"{campaign}:{pid}"}
        opened = arm in rates.open and rng.random() < rates.open[arm]
        if arm in rates.open and rng.random() < 0.15:  # an image proxy fetched the pixel
            out.append(message("Email Opened", who[pid], at + timedelta(seconds=2),
                               {**props, "machine_open": True}, key=f"{key}|proxy"))  # fmt: skip
        if opened:
            out.append(message("Email Opened", who[pid], later(48),
                               {**props, "machine_open": False}, key=f"{key}|open"))  # fmt: skip
            if rng.random() < 0.3:
                out.append(message("Email Link Clicked", who[pid], later(60),
                                   {**props, "url": "https://shop.example.com/winter",
                                    "machine_click": False}, key=f"{key}|click"))  # fmt: skip
        outcome = "holdout" if arm not in rates.open else "opened" if opened else "unopened"
        if rng.random() < rates.order[outcome]:
            total = round(rng.uniform(30, 180), 2)
            order = f"exp-{key.replace('|', '-')}"
            out.append({"type": "track", "event": "Order Completed", **who[pid],
                        "timestamp": later(24 * DAYS - 2).isoformat(),
                        "messageId": f"demo-{order.replace('exp-', 'exp-order-', 1)}",
                        "properties": {"total": total, "order_id": order}})  # fmt: skip
    return out


def _utc(value: Any) -> datetime:
    (from_store_time,) = need("segmint.store", "from_store_time")
    found: datetime = from_store_time(value)
    return found
