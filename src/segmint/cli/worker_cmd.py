"""``segmint worker``: real time for some partitions of the Kafka event topic."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import click

from segmint.cli.main import Context, pass_ctx
from segmint.cli.output import emit_json, format_option
from segmint.cli.params import as_of_option, check_kafka_url

KAFKA_ENV = "SEGMINT_KAFKA_URL"
KAFKA_HELP = (
    "The event topic: kafka://host:9092/TOPIC?group=segmint-workers&partitions=12 "
    f"(other query keys are librdkafka settings). Default: ${KAFKA_ENV}."
)


@click.command()
@click.option("--kafka", "kafka_url", envvar=KAFKA_ENV, metavar="URL", help=KAFKA_HELP)
@as_of_option("Decide every batch at this instant (a replay or a test)", now_default=False)
@click.option(
    "--batch-size", default=2000, show_default=True, type=click.IntRange(1, 100_000),
    help="Messages read per batch (one transaction).",
)  # fmt: skip
@click.option(
    "--idle-timeout", type=click.FloatRange(0), default=None, metavar="SECONDS",
    help="Stop after this long without a message (default: run until SIGTERM).",
)  # fmt: skip
@click.option("--name", default=None, help="This member's client id (default: by process).")
@click.option(
    "--log-level", default="warning", show_default=True,
    type=click.Choice(("error", "warning", "info", "debug"), case_sensitive=False),
)  # fmt: skip
@format_option
@pass_ctx
def worker(
    ctx: Context,
    kafka_url: str | None,
    as_of: datetime | None,
    batch_size: int,
    idle_timeout: float | None,
    name: str | None,
    log_level: str,
    fmt: str,
) -> None:
    """Apply real time for some partitions of the event topic, in a consumer group.

    Run several (on several machines) against one PostgreSQL store, with
    'segmint serve --role intake --kafka URL' publishing the events. Stops cleanly on
    SIGTERM or Ctrl-C: the partitions go to the other workers.
    """
    from segmint.clock import FixedClock, SystemClock
    from segmint.scale.kafka import KafkaTopic
    from segmint.scale.worker import PartitionWorker
    from segmint.workspace import Workspace

    if not kafka_url:
        raise click.UsageError(f"give the event topic with --kafka URL or ${KAFKA_ENV}")
    target = KafkaTopic.from_url(check_kafka_url(kafka_url))
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(message)s")
    workspace = Workspace.open(ctx.workspace_path)  # no catching up: the workers own it
    click.get_current_context().call_on_close(workspace.close)
    clock = FixedClock(as_of) if as_of is not None else SystemClock()
    member = PartitionWorker(workspace, target, clock, batch_size=batch_size, name=name)
    stop = threading.Event()
    click.echo(f"{member.name} consuming {target.topic} in group {target.group}", err=True)
    with _stop_on_signals(stop):
        report = member.run(stop, idle_timeout=idle_timeout)
    if fmt == "json":
        emit_json(report.as_dict())
        return
    click.echo(
        f"{member.name}: applied {report.applied:,} events and {report.merges:,} merges "
        f"from {report.received:,} messages in {report.batches:,} batches "
        f"({report.retries} retried, {report.rebalances} rebalances)"
    )


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """Set ``stop`` on SIGINT or SIGTERM: the current batch finishes, then the worker leaves."""

    def handler(_signum: int, _frame: Any) -> None:
        stop.set()

    handled = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, handler) for sig in handled}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def register(cli: click.Group) -> None:
    """Add ``worker``."""
    cli.add_command(worker)
