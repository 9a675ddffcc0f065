"""``segmint demo``: build an example workspace and show what segmint does with it."""

from __future__ import annotations

from pathlib import Path

import click

from segmint.workspace import Workspace


@click.command()
@click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path),
    default=Path("demo-shop"),
    show_default=True,
    help="Where the demo workspace is created.",
)
def demo(directory: Path) -> None:
    """Create the demo shop workspace (if missing) and print its status."""
    if not (directory / "segmint.yaml").exists():
        Workspace.init(directory, name="demo-shop").close()
        click.echo(f"Created demo workspace in {directory}")
    with Workspace.open(directory) as ws:
        info = ws.status()
    click.echo(f"workspace {info['workspace']} on {info['store']['backend']}")
    for key, value in info["counts"].items():
        click.echo(f"  {key:<12}{value}")


def register(cli: click.Group) -> None:
    """Add the demo command."""
    cli.add_command(demo)
