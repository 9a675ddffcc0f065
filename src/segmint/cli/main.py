"""Entry point of the ``segmint`` command: global options, error handling, sub-commands.

Each command module registers its commands on :data:`cli`; they call the Python API and
hold no business logic. A :class:`~segmint.errors.SegmintError` is printed as one clear
message (with its source excerpt) and exit status 1; ``--debug`` adds the traceback.
"""

from __future__ import annotations

import importlib
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from segmint._version import __version__
from segmint.cli.output import emit_json, err_console, format_option
from segmint.errors import SegmintError

if TYPE_CHECKING:
    from segmint.workspace import Workspace

COMMAND_MODULES: tuple[str, ...] = (
    "groups",
    "demo",
    "intake_cmd",
    "web_cmd",
    "ingest_cmd",
    "traits_cmd",
    "campaign_cmd",
    "rules_cmd",
    "template_cmd",
    "membership_cmd",
    "models_cmd",
    "measure_cmd",
    "warehouse_cmd",
    "journeys_cmd",
    "governance_cmd",
    "worker_cmd",
    "privacy_cmd",
)
"""Modules under ``segmint.cli`` that add commands; each defines ``register(cli)``."""


READS_ONLY: frozenset[str] = frozenset({
    "status", "reconcile", "quality",
    "segments list", "segments show", "segments overlap", "segments sql", "memberships sql",
    "export dbt", "export events",
    "traits list", "traits sql", "profile show", "template lint", "template preview",
    "campaign list", "campaign report", "consent show", "keys list", "quarantine list",
    "quarantine show",
    "webhooks status", "models list", "models show", "report kpis", "experiments list",
    "experiments report", "segments suggest", "journeys list", "journeys show", "segments preview",
    "segments lint", "segments diff",
    "audit verify", "audit list",
})  # fmt: skip
"""Commands that only read the store: they work while ``segmint serve`` holds DuckDB."""


class Context:
    """What every command receives: the workspace location and global flags."""

    def __init__(self, workspace: Path, debug: bool) -> None:
        self.workspace_path = workspace
        self.debug = debug
        self._workspace: Workspace | None = None

    @property
    def workspace(self) -> Workspace:
        """The workspace, opened on first use."""
        if self._workspace is None:
            # catches up after a server stopped without saving, before anything reads
            from segmint.cli.recovering import RecoveringWorkspace

            reads_only = _command_path() in READS_ONLY
            self._workspace = RecoveringWorkspace.open(self.workspace_path, reads_only=reads_only)
        return self._workspace

    def close(self) -> None:
        """Close the workspace if it was opened."""
        if self._workspace is not None:
            self._workspace.close()


def _command_path() -> str:
    """The running command's path without the program name (``segments list``)."""
    current = click.get_current_context(silent=True)
    return " ".join(current.command_path.split()[1:]) if current is not None else ""


pass_ctx = click.make_pass_decorator(Context)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="segmint")
@click.option(
    "-w",
    "--workspace",
    type=click.Path(path_type=Path),
    default=Path("."),
    envvar="SEGMINT_WORKSPACE",
    show_default=True,
    help="The workspace folder.",
)
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
@click.pass_context
def cli(ctx: click.Context, workspace: Path, debug: bool) -> None:
    """segmint: customer profiles, exact segments and personalised email."""
    ctx.obj = Context(workspace, debug)
    ctx.call_on_close(ctx.obj.close)


@cli.command()
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--name", help="The workspace name (default: the folder name).")
def init(directory: Path, name: str | None) -> None:
    """Create a workspace in DIRECTORY with a commented example shop."""
    from segmint.workspace import Workspace

    ws = Workspace.init(directory, name=name or directory.resolve().name)
    ws.close()
    click.echo(f"Created workspace '{ws.definition.name}' in {directory}")
    click.echo(f"  edit {directory / 'segmint.yaml'}, then run: segmint -w {directory} status")


@cli.command()
@format_option
@pass_ctx
def status(ctx: Context, fmt: str) -> None:
    """Show the store backend, schema version, counts and real-time lag."""
    from segmint.clock import SystemClock
    from segmint.membership.follow import realtime_status

    info = ctx.workspace.status()
    info["realtime"] = realtime_status(ctx.workspace.store, SystemClock().now())
    if ctx.workspace.store.dialect == "postgres":
        from segmint.scale.kafka import START_KEY
        from segmint.store import read_meta

        if read_meta(ctx.workspace.store, START_KEY) is not None:  # segmint worker applies
            from segmint.scale.worker import worker_lag

            info["realtime"]["workers"] = worker_lag(ctx.workspace.store)
    if fmt == "json":
        emit_json(info)
        return
    store = info["store"]
    click.echo(f"workspace  {info['workspace']}  ({info['path']})")
    click.echo(f"store      {store['backend']}  {store['url']}")
    click.echo(f"schema     v{store['schema_version']} (latest v{store['latest_schema_version']})")
    width = max(12, *(len(key) + 1 for key in info["counts"]))
    for key, value in info["counts"].items():
        click.echo(f"{key:<{width}}{value}")
    _echo_realtime(info["realtime"])


def _echo_realtime(realtime: dict[str, Any]) -> None:
    """The real-time lines of ``status``: each running server's lag, or the stored backlog."""
    running = [s for s in realtime["servers"] if s["running"]]
    for server in running:
        role = {True: "leads: applies events, runs timers; ", False: "stands by; "}.get(
            server.get("leading"), ""
        )  # (a report from before 'leading' was published says neither)
        click.echo(
            f"realtime   {server['server']}: {role}{server['events']} events, "
            f"{server['seconds']:.1f} s behind ({server['applied']} applied from other writers)"
        )
    workers = realtime.get("workers")
    if workers is not None:
        oldest = workers["oldest_pending_seq"]
        click.echo(
            f"realtime   kafka workers: {workers['pending_events']} stored events not yet "
            "applied" + (f" (the oldest is seq {oldest})" if oldest is not None else "")
        )
    elif not running:
        click.echo(
            f"realtime   no server running; {realtime['stored_since_checkpoint']} events stored "
            "since the last real-time save"
        )


def _register_commands() -> None:
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"segmint.cli.{name}")
        module.register(cli)


_DUCKDB_INTERRUPT = "Query interrupted"
"""What DuckDB raises (a RuntimeError) when Ctrl-C arrives while a statement runs."""


def _interrupted(exc: BaseException) -> bool:
    """Whether ``exc`` is Ctrl-C in disguise: it, or an error it caused or led to.

    Ctrl-C does not always arrive as KeyboardInterrupt: DuckDB turns it into an error of its
    own, a clean-up statement in the aborted transaction can fail on top of that, and an
    import interrupted half-way re-raises it as a RuntimeError.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, KeyboardInterrupt | click.exceptions.Abort):
            return True
        if isinstance(current, RuntimeError) and str(current) == _DUCKDB_INTERRUPT:
            return True
        current = current.__cause__ or current.__context__
    return False


def main(argv: list[str] | None = None) -> Any:
    """Run the CLI, turning segmint errors into one clear message and a non-zero exit.

    With ``--format json`` the error is also written to standard output as JSON
    (:func:`_emit_error`), so that a script reading the output always reads JSON.
    """
    _register_commands()
    args = argv if argv is not None else sys.argv[1:]
    debug, as_json = "--debug" in args, _wants_json(args)
    try:
        return cli.main(args=argv, prog_name="segmint", standalone_mode=False)
    except click.exceptions.Abort:
        _aborted(as_json)
    except click.ClickException as exc:
        if as_json:
            _emit_error(exc, exc.format_message(), exc.exit_code, _option_of(exc))
        exc.show()
        sys.exit(exc.exit_code)
    except SegmintError as exc:
        from rich.markup import escape  # a message quotes source text: "[a, b]" is not markup

        if debug:
            traceback.print_exc()
        field = getattr(exc, "field", None)
        if as_json:
            _emit_error(exc, exc.detailed_message(), 1, field if isinstance(field, str) else None)
        err_console.print(
            f"[red]error:[/red] {escape(exc.detailed_message())}", highlight=False, soft_wrap=True
        )
        sys.exit(1)
    except Exception as exc:
        if not _interrupted(exc):
            raise
        if debug:
            traceback.print_exc()
        _aborted(as_json)


def _aborted(as_json: bool) -> NoReturn:
    """Ctrl-C (or a refused confirmation): say so and exit 130."""
    if as_json:
        _emit_error(None, "aborted", 130, None)
    err_console.print("aborted")
    sys.exit(130)


def _wants_json(args: list[str]) -> bool:
    """Whether the command line asks for ``--format json`` (or ``--format=json``)."""
    pairs = zip(args, [*args[1:], None], strict=True)
    return any(a == "--format=json" or (a == "--format" and b == "json") for a, b in pairs)


def _option_of(exc: click.ClickException) -> str | None:
    """The option or argument a usage error is about (``--as-of``), if it names one."""
    if not isinstance(exc, click.BadParameter):
        return None
    if isinstance(exc.param_hint, str):
        return exc.param_hint
    if exc.param is not None:
        return exc.param.opts[0] if exc.param.opts else exc.param.name
    return None


def _emit_error(exc: BaseException | None, message: str, status: int, field: str | None) -> None:
    """Write the error as JSON on standard output: type, message, field, exit status."""
    kind = "Aborted" if exc is None else type(exc).__name__
    emit_json({"error": {"type": kind, "message": message, "field": field, "exit_status": status}})
