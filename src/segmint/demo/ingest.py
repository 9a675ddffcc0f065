"""The demo's ingest step: stream the synthetic shop through the intake pipeline.

The shop goes through :class:`segmint.intake.Intake` exactly as a user's own data would
(``segmint ingest`` and the tracking API use the same pipeline): validation, deduplication by
``messageId``, identity resolution, durable append. Nothing is written to the store directly.
"""

from __future__ import annotations

import time
from contextlib import closing

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from segmint.clock import FixedClock
from segmint.demo.chunks import Chunk, chunks
from segmint.demo.generator import ShopConfig, ShopStats
from segmint.demo.stage import DemoContext, count, need

SOURCE = "demo"


def progress_bar(ctx: DemoContext) -> Progress:
    """A progress bar in the house style, printing to the demo's console."""
    return Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[note]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=ctx.console,
        transient=False,
    )


def ingest_shop(ctx: DemoContext) -> str:
    """Generate the shop and submit it to the intake pipeline; return a one-line summary."""
    (intake_class,) = need("segmint.intake", "Intake")
    options = ctx.options
    config = ShopConfig(customers=options.customers, seed=options.seed, as_of=options.as_of)
    intake = intake_class(ctx.ws, FixedClock(options.as_of))
    totals = {"accepted": 0, "duplicates": 0, "quarantined": 0}
    stats = ShopStats()
    started = time.perf_counter()
    with progress_bar(ctx) as progress, closing(chunks(config)) as stream:
        task = progress.add_task("Ingesting customers", total=options.customers, note="")
        for chunk in stream:
            _remember(chunk, ctx.archetypes, ctx.provider)
            stats.add(chunk.stats)
            result = intake.submit(chunk.messages, source=SOURCE)
            for key in totals:
                totals[key] += getattr(result, key)
            note = f"{totals['accepted']:,} events"
            progress.update(task, completed=chunk.stop, note=note)
    seconds = time.perf_counter() - started
    ctx.facts["ingest"] = totals | {
        "messages": stats.messages,
        "customers": stats.customers,
        "identified": stats.identified,
        "seconds": round(seconds, 1),
        "by_event": dict(stats.by_event),
    }
    return (
        f"{count(stats.messages, 'message')} from {count(stats.customers, 'customer')} "
        f"({stats.anonymous_only:,} never identified): {totals['accepted']:,} stored, "
        f"{totals['duplicates']:,} duplicates, {totals['quarantined']:,} quarantined; "
        f"{stats.messages / max(seconds, 1e-9):,.0f} messages/s"
    )


def _remember(chunk: Chunk, archetypes: dict[str, str], provider: list[dict[str, str]]) -> None:
    """Note each customer's archetype, and what their email provider knows.

    Archetypes (by id) show later where customers landed; the provider's unsubscribes and
    bounces feed the consent step.
    """
    for anonymous_id, user_id, archetype in chunk.ids:
        archetypes[anonymous_id] = archetype
        if user_id is not None:
            archetypes[user_id] = archetype
    provider.extend(chunk.esp)
