"""``segmint ui``: the web console on a workspace, without the real-time engine."""

from __future__ import annotations

import click

from segmint.cli.main import Context, pass_ctx


@click.command("ui")
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to bind.")
@click.option(
    "--port", default=8000, show_default=True, type=click.IntRange(1, 65535),
    help="The port to bind.",
)  # fmt: skip
@click.option(
    "--log-format", type=click.Choice(("text", "json")), default="text", show_default=True,
    help="Server logs as text lines or as one JSON object per line.",
)  # fmt: skip
@pass_ctx
def ui(ctx: Context, host: str, port: int, log_format: str) -> None:
    """Serve the web console (and the REST API) for browsing and editing a workspace.

    The same server as 'segmint serve --no-realtime': memberships change only by
    'segmint refresh'. Log in at /ui with a key from 'segmint keys create --scope read'
    (read-only) or '--scope admin' (may save definitions into segmint.yaml), or with the
    session secret (admin): SEGMINT_CONSOLE_SECRET, else .segmint/console-secret.
    """
    from segmint.cli.intake_cmd import serve

    here = click.get_current_context()
    try:
        here.invoke(
            serve, host=host, port=port, log_level="warning", realtime=False,
            log_format=log_format, console=True,
        )  # fmt: skip
    except click.UsageError as exc:  # raised under serve's context: the help hint is ours
        exc.ctx = here
        raise


def register(cli: click.Group) -> None:
    """Add ``ui``."""
    cli.add_command(ui)
