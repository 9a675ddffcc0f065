"""Intake commands: ``serve``, ``keys create|list|revoke``, ``quarantine list|replay``."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable, Iterator
from dataclasses import asdict
from datetime import datetime
from typing import TYPE_CHECKING, Any

import click
import orjson

from segmint.cli import groups
from segmint.cli.main import Context, pass_ctx
from segmint.cli.output import confirm, emit_json, emit_table, format_option
from segmint.cli.params import INSTANT, check_kafka_url, deferred_choice
from segmint.clock import SystemClock

if TYPE_CHECKING:
    from segmint.workspace import Workspace

LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to bind.")
@click.option(
    "--port", default=8000, show_default=True, type=click.IntRange(1, 65535),
    help="The port to bind.",
)  # fmt: skip
@click.option(
    "--log-level",
    default="warning",
    show_default=True,
    type=click.Choice(LOG_LEVELS, case_sensitive=False),
    help="uvicorn's log level.",
)
@click.option(
    "--realtime/--no-realtime",
    default=True,
    show_default=True,
    help="Keep traits and segment memberships current as events arrive.",
)
@click.option(
    "--log-format", type=click.Choice(("text", "json")), default="text", show_default=True,
    help="Server logs as text lines or as one JSON object per line.",
)  # fmt: skip
@click.option(
    "--max-lag-events", type=click.IntRange(0), default=None, envvar="SEGMINT_MAX_LAG_EVENTS",
    help="Refuse new events (503, Retry-After) while real time is more than this many "
         "events behind (0: no limit).  [default: 100000]",
)  # fmt: skip
@click.option(
    "--max-lag-seconds", type=click.FloatRange(0), default=None,
    envvar="SEGMINT_MAX_LAG_SECONDS",
    help="… or while the oldest event not yet applied has waited this long (0: no limit). "
         " [default: 30]",
)  # fmt: skip
@click.option(
    "--role", type=click.Choice(("all", "intake")), default="all", show_default=True,
    help="intake: publish stored events to Kafka (--kafka) for 'segmint worker' processes "
    "instead of applying real time in this process.",
)  # fmt: skip
@click.option(
    "--kafka", "kafka_url", envvar="SEGMINT_KAFKA_URL", metavar="URL",
    help="With --role intake: the event topic, kafka://host:9092/TOPIC?partitions=12.",
)  # fmt: skip
@pass_ctx
def serve(
    ctx: Context,
    host: str,
    port: int,
    log_level: str,
    realtime: bool,
    log_format: str = "text",
    max_lag_events: int | None = None,
    max_lag_seconds: float | None = None,
    role: str = "all",
    kafka_url: str | None = None,
    console: bool = False,
) -> None:
    """Serve the tracking API (Segment compatible), the REST API and the web console (/ui).

    Other commands (ingest, refresh, campaign send, …) keep working beside it: on DuckDB
    this server runs their statements; on PostgreSQL they write the store themselves.
    Either way their events reach real time here within a second.
    """
    import uvicorn

    from segmint.api.app import create_app
    from segmint.api.backpressure import LagLimit
    from segmint.api.logs import configure
    from segmint.intake.pipeline import Intake
    from segmint.membership.recovery import serving
    from segmint.membership.service import attach_realtime
    from segmint.workspace import Workspace

    if role == "intake":
        if not kafka_url:
            raise click.UsageError("--role intake publishes to Kafka: give --kafka URL")
        check_kafka_url(kafka_url)
        if realtime and _given(click.get_current_context(), "realtime"):
            raise click.UsageError(
                "--realtime with --role intake: this server only stores and publishes; the "
                "'segmint worker' processes apply real time (drop --realtime, or use --role all)"
            )
        realtime = False  # the workers apply it
    elif kafka_url and _given(click.get_current_context(), "kafka_url"):
        raise click.UsageError(
            "--kafka is where --role intake publishes; this server applies real time "
            "itself (--role all): add --role intake, or drop --kafka"
        )  # (from $SEGMINT_KAFKA_URL, meant for the workers too, it is ignored)
    listener = _bind(host, port)  # before catching up: a busy port fails at once
    # Not the CLI's catching-up workspace: serve catches up itself, with progress.
    workspace = Workspace.open(ctx.workspace_path)
    click.get_current_context().call_on_close(workspace.close)
    _refuse_second_server(workspace)
    # sealed, but no key here: every request would fail (500) storing nothing; say it once
    workspace.privacy.require_key("serving (storing input)")
    share_reads = getattr(workspace.store, "share_reads", None)
    if share_reads is not None:  # DuckDB: read-only commands read through this process
        share_reads()
    clock = SystemClock()
    service = None
    try:
        with serving(workspace.store) if realtime else contextlib.nullcontext():
            try:
                with _stop_on_signals():  # uvicorn handles them once it runs
                    intake = Intake(workspace, clock)
                    # Real-time listeners attach here, before the server starts:
                    if realtime:
                        service = attach_realtime(workspace, intake, clock, _catch_up_progress)
                        if workspace.definition.models:  # CLV re-scored on each order
                            from segmint.models.live import attach_live_scores

                            attach_live_scores(workspace, intake, service.engine, clock)
                        if workspace.definition.journeys:  # steps fire in the same loop
                            from segmint.journeys.service import attach_journeys

                            attach_journeys(workspace, intake, service, clock)
                    lag = service.follower.lag if service and service.follower else None
                    limit = LagLimit.from_env(max_lag_events, max_lag_seconds)
                    if kafka_url and role == "intake":
                        relay = _start_relay(workspace, kafka_url)
                        intake.add_listener(relay)
                        click.get_current_context().call_on_close(relay.close)
                    app = create_app(workspace, clock, intake=intake, realtime_lag=lag,
                                     lag_limit=limit)  # fmt: skip
                    _privacy_duties(workspace, clock, _leading(workspace))
                from segmint.common import tune_gc_for_serving

                tune_gc_for_serving()
                loop = "uvloop" if _has("uvloop") else "asyncio"
                http = "httptools" if _has("httptools") else "h11"
                config = uvicorn.Config(app, host=host, port=port, loop=loop, http=http,
                                        log_level=log_level.lower(), access_log=False)  # fmt: skip
                configure(log_format, log_level)  # after uvicorn set up its own loggers
                click.echo(_banner(workspace.definition.name, host, port, console), err=True)
                # a stop ends the once-per-store duties at once (no message is sent, no
                # webhook called after it), while requests under way are answered
                on_stop = service.request_stop if service is not None else None
                _graceful_server_class(on_stop)(config).run(sockets=[listener])
            finally:
                if service is not None:
                    service.close()  # writes the trait state the engine holds
    except _Stopped as stopped:
        # ``serving`` stays marked: the next start, or the next command, applies the rest
        click.echo(f"segmint stopped by {stopped} while starting", err=True)
        return
    click.echo("segmint stopped" + ("; real-time state saved" if realtime else ""), err=True)


def _given(ctx: click.Context, name: str) -> bool:
    """Whether the option ``name`` was given on the command line (not by default or env)."""
    from click.core import ParameterSource

    return ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE


def _banner(name: str, host: str, port: int, console: bool) -> str:
    """The line a started server prints (``segmint ui``: where to log in to the console)."""
    if console:
        return (f"segmint console on http://{host}:{port}/ui (log in with a read or admin key, "
                "or the session secret in .segmint/console-secret)")  # fmt: skip
    return f"segmint serving {name} on http://{host}:{port}"


def _refuse_second_server(workspace: Any) -> None:
    """One server per DuckDB workspace: another one would run its writes through the first."""
    from segmint.store import StoreLocked
    from segmint.store.sharedwrite import SharedWriteStore

    store = workspace.store
    if isinstance(store, SharedWriteStore):
        raise StoreLocked(
            f"the store {store.path} is served by {store.holder}: one 'segmint serve' or "
            "'segmint ui' per DuckDB workspace, and that server has the console at /ui too "
            "(commands run beside it; use PostgreSQL to run several servers)",
            holder=store.holder,
        )


def _start_relay(workspace: Any, url: str) -> Any:
    """Publish the stored events to Kafka from a connection of its own (see scale.kafka)."""
    from segmint.scale.kafka import EventRelay, KafkaTopic
    from segmint.store import open_store

    target = KafkaTopic.from_url(url)
    store = open_store(workspace.definition.store, workspace_dir=workspace.path)
    click.get_current_context().call_on_close(store.close)  # after the relay's close
    relay = EventRelay(store, target)
    relay.start()
    click.echo(f"publishing events to Kafka topic {target.topic} at {target.brokers}", err=True)
    return relay


def _leading(workspace: Workspace) -> Callable[[], bool]:
    """Whether this server runs retention, asked again at each check.

    On PostgreSQL every server, whatever its role (``all``, ``intake``, ``--no-realtime``),
    competes for one leadership of the store's duties on a connection of its own, so one
    of them runs it (the real-time lead is held only by servers applying real time: a
    ``--role intake`` beside them would run it too).
    """
    from segmint.membership.follow import Leadership

    reopen = getattr(workspace.store, "reopen", None)
    if reopen is None:  # DuckDB: the one server
        return lambda: True
    store = reopen()
    click.get_current_context().call_on_close(store.close)  # frees the lock
    return Leadership(store, role="duties").try_take


def _privacy_duties(workspace: Workspace, clock: SystemClock, leading: Callable[[], bool]) -> None:
    """Log a changed ``segmint.yaml`` as a deploy; the leader enforces retention daily."""
    from segmint.config.scaffold import WORKSPACE_FILE
    from segmint.privacy.audit import record_deploy
    from segmint.privacy.retention import start_daily

    record_deploy(workspace.store, workspace.path / WORKSPACE_FILE, at=clock.now(),
                  actor="serve")  # fmt: skip
    stop = start_daily(workspace.privacy, clock, leading=leading)
    click.get_current_context().call_on_close(stop)


class _Stopped(Exception):
    """SIGINT or SIGTERM arrived while the server was starting (catching up)."""


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[None]:
    """Turn SIGINT and SIGTERM into :class:`_Stopped` inside the block (main thread only)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    received: list[str] = []

    def stop(signum: int, _frame: Any) -> None:
        received.append(signal.Signals(signum).name)
        raise _Stopped(received[0])

    handled = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, stop) for sig in handled}
    try:
        yield
    except Exception as exc:
        # A store may turn the signal into its own error ("Query interrupted" in DuckDB)
        if received and not isinstance(exc, _Stopped):
            raise _Stopped(received[0]) from exc
        raise
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _bind(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` for the server, or a clear error naming the options."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise click.BadParameter(
            f"cannot listen on {host}:{port}: {reason}", param_hint="'--host' / '--port'"
        ) from None
    sock.set_inheritable(True)
    return sock


def _graceful_server_class(on_stop: Callable[[], None] | None = None) -> type[Any]:
    """The uvicorn server, made to return after a signal instead of dying by it.

    uvicorn re-raises SIGINT/SIGTERM once its shutdown is done, so the process died (exit
    143) before ``serve`` could write the real-time trait state it holds. This server only
    asks uvicorn to shut down and returns: ``serve`` then saves and exits 0. ``on_stop`` is
    called when the signal arrives (from the signal handler: it must only set flags).
    """
    import signal
    import threading

    import uvicorn

    class GracefulServer(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            handled = (signal.SIGINT, signal.SIGTERM)
            previous = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

        def handle_exit(self, sig: int, frame: Any) -> None:
            super().handle_exit(sig, frame)
            if on_stop is not None:
                on_stop()

    return GracefulServer


def _catch_up_progress(done: int, total: int) -> None:
    """Say on standard error how far the engine is through events stored while it was down."""
    click.echo(f"applying stored events to segments: {done:,} of {total:,}", err=True)


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


@groups.keys.command("create")
@click.option("--name", required=True, help="What the key is for; events carry it as source.")
@click.option(
    "--scope",
    "scopes",
    type=deferred_choice("segmint.intake.keys", "SCOPES"),
    multiple=True,
    default=("write",),
    show_default=True,
    help="What the key may do (repeat for both).",
)
@click.option(
    "--origin",
    "origins",
    multiple=True,
    metavar="URL",
    help="A web origin browsers may send from, e.g. https://shop.example (repeat for more); "
    "makes the key public: write only, CORS for these origins, rate-limited per IP.",
)
@click.option(
    "--ip-rate",
    type=float,
    default=None,
    metavar="N",
    help="A public key's requests/s per client IP (default 50; 0: no limit).",
)
@click.option(
    "--consent-category",
    default=None,
    metavar="NAME",
    help="Store no event whose consent context refuses this category (e.g. Analytics).",
)
@format_option
@pass_ctx
def keys_create(
    ctx: Context,
    name: str,
    scopes: tuple[str, ...],
    origins: tuple[str, ...],
    ip_rate: float | None,
    consent_category: str | None,
    fmt: str,
) -> None:
    """Create an API key and print it once; only its hash is kept."""
    from segmint.intake.keys import create_key

    key, secret = create_key(ctx.workspace.store, name, scopes=scopes, now=SystemClock().now(),
                             origins=origins, ip_rate=ip_rate,
                             consent_category=consent_category)  # fmt: skip
    if fmt == "json":
        emit_json(asdict(key) | {"key": secret})
        return
    click.echo(secret)
    click.echo(
        f"key {key.key_id} ({key.name}, {','.join(key.scopes)}): store it now, "
        "it is not shown again",
        err=True,
    )
    if key.public:
        rate = f"{key.ip_rate:g} requests/s per IP" if key.ip_rate else "no per-IP limit"
        click.echo(f"public browser key for {', '.join(key.origins)}; {rate}", err=True)


@groups.keys.command("list")
@format_option
@pass_ctx
def keys_list(ctx: Context, fmt: str) -> None:
    """List API keys (never their secrets)."""
    from segmint.intake.keys import list_keys

    found = list_keys(ctx.workspace.store)
    if fmt == "json":
        emit_json([asdict(k) for k in found])
        return
    rows = [(k.key_id, k.name, ",".join(k.scopes), " ".join(k.origins), k.created_at,
             k.revoked_at) for k in found]  # fmt: skip
    emit_table("API keys", ("id", "name", "scopes", "origins", "created", "revoked"), rows)


@groups.keys.command("revoke")
@click.argument("key")
@pass_ctx
def keys_revoke(ctx: Context, key: str) -> None:
    """Revoke KEY (its id, or its name when unique)."""
    from segmint.intake.keys import revoke_key

    now = SystemClock().now()
    revoked = revoke_key(ctx.workspace.store, key, now=now)
    if revoked.revoked_at is not None and revoked.revoked_at < now:  # revoked before
        when = f"{revoked.revoked_at:%Y-%m-%d %H:%M} UTC"
        click.echo(f"{revoked.key_id} ({revoked.name}) was already revoked on {when}")
        return
    click.echo(f"revoked {revoked.key_id} ({revoked.name})")


@groups.quarantine.command("list")
@click.option("--all", "include_replayed", is_flag=True, help="Include replayed messages.")
@format_option
@pass_ctx
def quarantine_list(ctx: Context, include_replayed: bool, fmt: str) -> None:
    """List quarantined messages and why they were held."""
    from segmint.intake.quarantine import list_quarantine

    items = list_quarantine(ctx.workspace.store, include_replayed=include_replayed)
    if fmt == "json":
        emit_json([asdict(i) for i in items])
        return
    rows = [(i.id, i.received_at, i.source, _call(i), i.message_id, i.field, i.reason)
            for i in items]  # fmt: skip
    columns = ("id", "received", "source", "call", "messageId", "field", "reason")
    emit_table("Quarantine", columns, rows)
    unread = [i for i in items if i.sealed is not None]
    if unread:
        click.echo(f"{len(unread)} payloads cannot be read ("
                   + ", ".join(sorted({i.sealed or "" for i in unread})) + ")")  # fmt: skip


def _call(item: Any) -> str:
    """``track Order Completed``, ``identify`` …, from the row's clear metadata."""
    return " ".join(p for p in (item.type, item.event) if p) or "?"


@groups.quarantine.command("show")
@click.argument("row_id", metavar="ID", type=int)
@format_option
@pass_ctx
def quarantine_show(ctx: Context, row_id: int, fmt: str) -> None:
    """Show one quarantined message with its payload (opened in memory when sealed)."""
    from segmint.intake.quarantine import list_quarantine

    found = list_quarantine(ctx.workspace.store, include_replayed=True, ids=[row_id])
    if not found:
        known = [i.id for i in list_quarantine(ctx.workspace.store, include_replayed=True)]
        hint = f"ids run from {min(known)} to {max(known)}" if known else "the quarantine is empty"
        raise click.BadParameter(f"no quarantined message has id {row_id} ({hint})",
                                 param_hint="ID")  # fmt: skip
    item = found[0]
    if fmt == "json":
        emit_json(asdict(item))
        return
    click.echo(f"#{item.id} {_call(item)} from {item.source or '?'} at {item.received_at}")
    click.echo(f"reason: {item.reason}")
    if item.replayed_at is not None:
        click.echo(f"replayed at {item.replayed_at}")
    if item.sealed == "erased":
        click.echo("payload: [erased] (a person it names was erased; nobody can read it)")
    elif item.sealed == "no key":
        click.echo("payload: [sealed] (set the master key to read it)")
    else:
        click.echo(orjson.dumps(item.payload, option=orjson.OPT_INDENT_2).decode())


@groups.quarantine.command("replay")
@click.option("--id", "ids", type=int, multiple=True, help="Replay only these rows (repeat).")
@format_option
@pass_ctx
def quarantine_replay(ctx: Context, ids: tuple[int, ...], fmt: str) -> None:
    """Run open quarantined messages through the pipeline again."""
    from segmint.intake.pipeline import Intake
    from segmint.intake.quarantine import list_quarantine

    store = ctx.workspace.store
    before = len(list_quarantine(store, ids=ids or None))
    if ids:
        _check_open(store, ids)
    intake = Intake(ctx.workspace, SystemClock())
    result = intake.replay(ids or None)
    remaining = before - result.accepted - result.duplicates - result.unreadable
    summary = {"stored": result.accepted, "duplicates": result.duplicates,
               "still_held": remaining, "unreadable": result.unreadable}  # fmt: skip
    if fmt == "json":
        emit_json(summary)
        return
    click.echo(
        f"stored {result.accepted}, already stored {result.duplicates}, still held {remaining}"
        + (f", skipped {result.unreadable} unreadable (erased)" if result.unreadable else "")
    )


@groups.quarantine.command("purge")
@click.option("--before", type=INSTANT, required=True,
              help="Delete what arrived before this instant (e.g. '-30d').")  # fmt: skip
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@format_option
@pass_ctx
def quarantine_purge(ctx: Context, before: datetime, yes: bool, fmt: str) -> None:
    """Delete quarantined messages that arrived before a date, replayed or not.

    With PII encryption on, the keys of the payloads that named nobody (not JSON, no id)
    and arrived before that day are destroyed too, so no backup can read them either.
    """
    from segmint.intake.quarantine import purge_quarantine
    from segmint.privacy import audit as log

    store = ctx.workspace.store
    if not yes:
        confirm(f"delete every quarantined message received before {before}?")
    with store.transaction():
        result = purge_quarantine(store, before)
        log.append(store, "quarantine.purge", actor="cli", at=SystemClock().now(),
                   details={"before": before.isoformat(), **result})  # fmt: skip
    if fmt == "json":
        emit_json(result)
        return
    click.echo(f"deleted {result['deleted']} quarantined messages received before {before}"
               + (f"; destroyed {result['day_keys_destroyed']} day keys"
                  if result["day_keys_destroyed"] else ""))  # fmt: skip


def _check_open(store: Any, ids: tuple[int, ...]) -> None:
    """Fail naming the ids that are no open quarantined message (replayed, or unknown)."""
    from segmint.intake.quarantine import list_quarantine

    found = {i.id: i for i in list_quarantine(store, include_replayed=True, ids=ids)}
    problems = [
        f"{i} was already replayed" if i in found else f"{i} is no quarantined message"
        for i in dict.fromkeys(ids)
        if i not in found or found[i].replayed_at is not None
    ]
    if problems:
        hint = " (see 'segmint quarantine list')"
        raise click.BadParameter("; ".join(problems) + hint, param_hint="--id")


def register(cli: click.Group) -> None:
    """Add ``serve``; the keys and quarantine commands attach to the shared groups."""
    cli.add_command(serve)
