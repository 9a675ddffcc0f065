"""``segmint journeys list|show|run``: journeys, what they did, and a tick for cron."""

from __future__ import annotations

import sys
from datetime import datetime
from typing import Any

import click

from segmint.cli.main import Context, pass_ctx
from segmint.cli.output import console, emit_json, emit_table, err_console, format_option
from segmint.cli.params import INSTANT, refuse_later_than_now


@click.group()
def journeys() -> None:
    """Journeys: triggered, timed sequences of email under the delivery policy."""


@journeys.command("list")
@format_option
@pass_ctx
def list_(ctx: Context, fmt: str) -> None:
    """List the journeys with their entries, active instances, sends and conversion."""
    from segmint.journeys.insight import list_journeys

    rows = list_journeys(ctx.workspace)
    if fmt == "json":
        emit_json(rows)
        return
    columns = ["name", "trigger", "steps", "entered", "active", "sent", "exited", "conversion"]
    emit_table("journeys", columns, [[_cell(r[c]) for c in columns] for r in rows])


@journeys.command("show")
@click.argument("name")
@format_option
@pass_ctx
def show(ctx: Context, name: str, fmt: str) -> None:
    """Show journey NAME: instances per step, sends, skips and delays by reason, exits."""
    from segmint.journeys.insight import show_journey

    view = show_journey(ctx.workspace, name)
    if fmt == "json":
        emit_json(view)
        return
    trigger = view["trigger"] if view["defined"] else "no longer in segmint.yaml"
    console.print(
        f"journey {view['name']} ({trigger}): entered {view['entered']}, "
        f"active {view['active']}, sent {view['sent']}, refused {view['refused']}, "
        f"conversion {_cell(view['conversion'])}"
    )
    outcomes = sorted({k for s in view["per_step"] for k in s} - {"step", "kind", "active"})
    columns = ["step", "kind", "active", *outcomes]
    emit_table("steps", columns, [[_cell(s.get(c, 0)) for c in columns] for s in view["per_step"]])
    for key in ("skipped", "delayed", "exited", "failed", "retry", "refused"):
        counts = view[f"{key}_by_reason"]
        if counts:
            emit_table(key, ["reason", "count"], [[r or "-", n] for r, n in counts.items()])
    for note in view["notes"]:
        err_console.print(f"[yellow]warning:[/yellow] {note}", highlight=False, soft_wrap=True)


@journeys.command("run")
@click.option(
    "--as-of",
    "as_of",
    type=INSTANT,
    default=None,
    help="Take every step due until this instant (ISO 8601, no offset = UTC, 'now', '-7d'). "
    "Default: now.",
)
@click.option("--until", "until", type=INSTANT, default=None, help="Another name of --as-of.")
@click.option(
    "--since",
    type=INSTANT,
    default=None,
    help="Ignore triggers that happened before this instant (after a backfill).",
)
@format_option
@pass_ctx
def run(
    ctx: Context, as_of: datetime | None, until: datetime | None, since: datetime | None, fmt: str
) -> None:
    """Take the triggers recorded so far and every step due until --as-of/--until (now).

    Each step happens at its own instant (a wait of 2h ends 2h after it began, to the
    microsecond, whenever this runs); run it from cron, or let `segmint serve` do it.
    """
    from segmint.clock import FixedClock
    from segmint.journeys.service import run_journeys

    until = _one_instant(as_of, until)
    if since is not None and since > until:
        raise click.BadParameter(
            f"{since.isoformat()} is later than the run's instant, {until.isoformat()} "
            "(--as-of/--until, now by default): it would ignore every trigger up to it",
            param_hint="--since",
        )
    refuse_later_than_now(
        until, "--until",
        "the steps due then would be taken (their emails sent) now; run it at that time, or "
        "let `segmint serve` take each step at its instant",
    )  # fmt: skip
    report = run_journeys(ctx.workspace, FixedClock(until), until, since=since)
    data = report.to_dict()
    if fmt == "json":
        emit_json({"until": until, **data})
    else:
        console.print(
            f"journeys run until {until.isoformat()}: {data['steps']} step(s), "
            f"{data['sent']} sent, entered {data['entered'].get('entered', 0)}"
        )
        for key in ("skipped", "delayed", "exited", "failed"):
            if data[key]:
                rows = [[r or "-", n] for r, n in data[key].items()]
                emit_table(key, ["reason", "count"], rows)
    if data["skipped"].get("arm_removed"):
        from segmint.cli.campaign_cmd import ARM_REMOVED

        warning = ARM_REMOVED.format(n=data["skipped"]["arm_removed"])
        err_console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False, soft_wrap=True)
    problem = _not_sent(data)
    if problem is not None:  # the report is printed; the exit status tells cron
        err_console.print(f"[red]error:[/red] {problem}", highlight=False, soft_wrap=True)
        sys.exit(1)


def _not_sent(data: dict[str, Any]) -> str | None:
    """What kept due messages from the mail server (failures, a missing setting), if any."""
    held = data["delayed"].get("not_configured", 0)
    failed = sum(data["failed"].values())
    if not held and not failed:
        return None
    parts = []
    if held:
        parts.append(f"{held} held: the workspace cannot send yet (SEGMINT_SECRET, email.smtp)")
    if failed:
        reasons = ", ".join(f"{r} {n}" for r, n in data["failed"].items())
        parts.append(f"{failed} failed ({reasons}): check email.smtp")
    return (
        f"journey message(s) not sent: {'; '.join(parts)}; messages held or failed "
        "for a reason that passes are taken again by the next run"
    )


def _one_instant(as_of: datetime | None, until: datetime | None) -> datetime:
    """The instant of --as-of or --until (one option under two names), now by default."""
    from segmint.clock import SystemClock

    if as_of is not None and until is not None and as_of != until:
        raise click.BadParameter(
            f"--as-of {as_of.isoformat()} and --until {until.isoformat()} name two instants; "
            "--until is another name of --as-of: give one",
            param_hint="--as-of/--until",
        )
    return as_of or until or SystemClock().now()


@journeys.command("schema")
def schema() -> None:
    """Print the JSON Schema of a journey definition (for editors and UI builders)."""
    from segmint.config.journeys import journey_json_schema

    emit_json(journey_json_schema())


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)


def register(cli: click.Group) -> None:
    """Add the ``journeys`` group."""
    cli.add_command(journeys)
