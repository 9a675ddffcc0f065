"""``segmint demo``: build a synthetic shop, ingest it, and show what segmint does with it."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

import click

from segmint.cli.output import console
from segmint.cli.params import INSTANT
from segmint.demo.generator import DEFAULT_AS_OF, DEFAULT_CUSTOMERS, DEFAULT_SEED


@click.command()
@click.option(
    "--customers",
    type=click.IntRange(min=1),
    default=DEFAULT_CUSTOMERS,
    show_default=True,
    help="How many customers the synthetic shop has.",
)
@click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("demo-shop"),
    show_default=True,
    help="The demo workspace folder; reset on every run.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("demo-out"),
    show_default=True,
    help="Where previews, the campaign outbox and summary.json go; reset on every run.",
)
@click.option("--seed", type=int, default=DEFAULT_SEED, show_default=True, help="The shop's seed.")
@click.option(
    "--as-of",
    "as_of",
    default=DEFAULT_AS_OF.strftime("%Y-%m-%dT%H:%M:%SZ"),
    show_default=True,
    type=INSTANT,
    help="The end of the demo year (the shop covers the 12 months before it); ISO 8601.",
)
@click.option("--debug", is_flag=True, help="Print tracebacks of failed steps.")
def demo(
    customers: int, directory: Path, out: Path, seed: int, as_of: datetime, debug: bool
) -> None:
    """Build a demo shop: generate a year of customers, ingest, segment, preview, dry-run.

    Everything is deterministic: the same --seed and --as-of give the same shop. The demo
    resets --dir and --out on every run (and refuses folders it did not make).
    """
    from segmint.demo.runner import run_demo
    from segmint.demo.stage import DemoOptions

    root = click.get_current_context().find_root().command
    options = DemoOptions(
        customers=customers,
        directory=directory,
        out=out,
        seed=seed,
        as_of=as_of,
        debug=debug,
        commands=command_paths(root),
    )
    result = run_demo(options, console)
    if not result.ok:
        sys.exit(1)


def command_paths(root: click.Command) -> frozenset[str]:
    """Every command path of the CLI (``status``, ``segments list``…), two levels deep."""
    paths: set[str] = set()
    for name, command in getattr(root, "commands", {}).items():
        paths.add(name)
        paths.update(f"{name} {sub}" for sub in getattr(command, "commands", {}))
    return frozenset(paths)


def register(cli: click.Group) -> None:
    """Add the demo command."""
    cli.add_command(demo)
