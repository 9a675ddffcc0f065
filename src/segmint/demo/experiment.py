"""The demo's experiment: a subject-line test with a holdout, on simulated engagement.

Experiment ``subject_lines`` splits campaign ``subject_test`` (the vip segment): the
template's own subject (the control), an urgent subject, and a holdout arm sent nothing. The step
sends it for real through the ledger into an outbox folder (no SMTP), so every recipient's
arm is recorded; then it simulates what recipients do in the five days after (opens, some
of them by image proxies, clicks, orders; the urgent subject is opened more, and mail
brings more orders than none) and submits that through intake like real engagement. The
experiment report is what ``segmint experiments report subject_lines`` prints.
"""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta
from typing import Any

from rich.table import Table

from segmint.clock import FixedClock
from segmint.demo.emails import signing_secret
from segmint.demo.ingest import progress_bar
from segmint.demo.stage import DemoContext, need

CAMPAIGN = "subject_test"
EXPERIMENT = "subject_lines"
DAYS = 5
OPEN = {"control": 0.22, "urgent": 0.30}
ORDER = {"opened": 0.12, "unopened": 0.04, "holdout": 0.03}


def run_experiment(ctx: DemoContext) -> str:
    """Send the subject test into an outbox, simulate engagement, print the report."""
    (build_run,) = need("segmint.deliver.service", "build_run")
    (outbox_class,) = need("segmint.deliver.fake", "OutboxTransport")
    report_fn, lines_fn, table_fn = need(
        "segmint.measure.experiments", "experiment_report", "summary_lines", "summary_table"
    )
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
    headline, conclusion = lines_fn(data)
    columns, rows = table_fn(data)
    table = Table(title=f"Experiment report: {EXPERIMENT} ({DAYS} days after the send)",
                  title_justify="left")  # fmt: skip
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    ctx.console.print(headline, highlight=False, soft_wrap=True)
    ctx.console.print(table)
    ctx.console.print(conclusion, highlight=False, soft_wrap=True)
    return (
        f"{sent.sent:,} sent to {folder}/, {sent.skipped.get('holdout', 0):,} held out; "
        f"{len(messages):,} simulated engagement events"
    )


def simulate(ctx: DemoContext, rng: random.Random) -> list[dict[str, Any]]:
    """Return the opens, clicks and orders of the test's recipients in the days after."""
    (identities_of, message) = need(
        "segmint.deliver.engagement", "identities_of", "engagement_message"
    )
    store, as_of = ctx.ws.store, ctx.options.as_of
    arms = dict(store.fetchall(
        "SELECT profile_id, arm FROM experiment_assignments WHERE experiment = ? "
        "ORDER BY profile_id", [EXPERIMENT]))  # fmt: skip
    who = identities_of(store, list(arms))
    out: list[dict[str, Any]] = []

    def later(hours: float) -> Any:
        return as_of + timedelta(hours=rng.uniform(1.0, hours))

    for pid, arm in arms.items():
        base = {"campaign": CAMPAIGN, "email_id": f"{CAMPAIGN}:{pid}"}
        opened = arm in OPEN and rng.random() < OPEN[arm]
        if arm in OPEN and rng.random() < 0.15:  # an image proxy fetched the pixel
            out.append(message("Email Opened", who[pid], as_of + timedelta(seconds=2),
                               {**base, "machine_open": True}, key=f"{pid}|proxy"))  # fmt: skip
        if opened:
            out.append(message("Email Opened", who[pid], later(48),
                               {**base, "machine_open": False}, key=f"{pid}|open"))  # fmt: skip
            if rng.random() < 0.3:
                out.append(message("Email Link Clicked", who[pid], later(60),
                                   {**base, "url": "https://shop.example.com/winter",
                                    "machine_click": False}, key=f"{pid}|click"))  # fmt: skip
        chance = ORDER["holdout" if arm not in OPEN else "opened" if opened else "unopened"]
        if rng.random() < chance:
            total = round(rng.uniform(30, 180), 2)
            out.append({"type": "track", "event": "Order Completed", **who[pid],
                        "timestamp": later(24 * DAYS - 2).isoformat(),
                        "messageId": f"demo-exp-order-{pid}",
                        "properties": {"total": total, "order_id": f"exp-{pid}"}})  # fmt: skip
    return out
