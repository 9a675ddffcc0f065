"""Membership commands: ``refresh``, ``reconcile``, ``segments list|show|overlap``, ``webhooks``.

Each command calls :class:`segmint.membership.service.Membership` and only prints.
"""

from __future__ import annotations

import sys
from dataclasses import asdict
from datetime import datetime
from typing import TYPE_CHECKING, Any

import click

from segmint.cli.groups import segments, webhooks
from segmint.cli.main import Context, pass_ctx
from segmint.cli.output import emit_json, emit_table, format_option
from segmint.cli.params import as_of_option, refuse_later_than_now
from segmint.cli.warehouse_cmd import refresh_on_spark, spark_options

if TYPE_CHECKING:
    from segmint.membership.service import Membership


def _membership(ctx: Context) -> Membership:
    from segmint.membership.service import Membership

    return Membership(ctx.workspace)


def _when(value: Any) -> str:
    return value.isoformat().replace("+00:00", "Z") if isinstance(value, datetime) else str(value)


@click.command()
@as_of_option("Evaluate at this instant")
@spark_options
@format_option
@pass_ctx
def refresh(
    ctx: Context,
    as_of: datetime,
    fmt: str,
    engine: str,
    events: str | None,
    maps: tuple[str, ...],
    master: str,
    output: str | None,
) -> None:
    """Recompute traits and every segment in batch; record enter/exit changes.

    With --engine spark, traits and memberships are computed on Spark from --events (a
    Parquet file from `segmint export events --parquet`, or a Spark table).
    """
    refuse_later_than_now(
        as_of, "--as-of",
        "the changes of that instant would be recorded now, and the next refresh would record "
        "them undone; to look ahead without recording, use 'segmint reconcile --as-of' or "
        "'segmint segments preview RULE --as-of'",
    )  # fmt: skip
    if engine == "spark":
        refresh_on_spark(ctx, as_of, fmt, events=events, maps=maps, master=master, output=output)
        return
    if events is not None or maps or output is not None:
        raise click.UsageError("--events, --map and --output need --engine spark")
    report = _membership(ctx).refresh(as_of)
    if fmt == "json":
        emit_json(asdict(report))
        return
    click.echo(
        f"refreshed {report.profiles} profiles at {_when(report.as_of)}: "
        f"{report.entered} entered, {report.exited} exited"
    )


@click.command()
@as_of_option("Compare at this instant")
@format_option
@pass_ctx
def reconcile(ctx: Context, as_of: datetime, fmt: str) -> None:
    """Compare live memberships with a batch recompute; exit 1 if they differ."""
    at = as_of
    found = _membership(ctx).reconcile(at)
    if fmt == "json":
        emit_json({"as_of": at, "differences": [asdict(d) for d in found]})
    elif found:
        rows = [
            (d.segment + (" (removed)" if d.removed else ""), d.profile_id, _yes(d.live),
             _yes(d.batch))
            for d in found
        ]  # fmt: skip
        emit_table("Differences", ["segment", "profile", "live", "batch"], rows)
        removed = sorted({d.segment for d in found if d.removed})
        if removed:
            click.echo(
                f"no longer defined in segmint.yaml: {', '.join(removed)}; their members exit "
                "at the next `segmint refresh`, `segmint rebuild` or `segmint serve` start"
            )
    else:
        click.echo(f"live memberships agree with the batch at {_when(at)}")
    if found:
        sys.exit(1)


def _yes(flag: bool) -> str:
    return "member" if flag else "-"


@segments.command("list")
@click.option("--tag", help="Only segments with this tag.")
@format_option
@pass_ctx
def segments_list(ctx: Context, tag: str | None, fmt: str) -> None:
    """List segments with their group, tags and size."""
    rows = _membership(ctx).segments(tag)
    if tag is not None and not rows:
        _unknown_tag(ctx, tag)
    if fmt == "json":
        emit_json(rows)
        return
    table = [
        (r["name"] + (" (archived)" if r.get("archived") else ""), r["size"], r["group"] or "",
         r["parent"] or "", ", ".join(r["tags"]), r["description"] or "")
        for r in rows
    ]  # fmt: skip
    emit_table("Segments", ["segment", "size", "group", "parent", "tags", "description"], table)


def _unknown_tag(ctx: Context, tag: str) -> None:
    """Say on standard error that no segment has ``tag``, with the nearest tag."""
    from segmint.common import did_you_mean

    tags = {t for s in ctx.workspace.definition.segments.values() for t in s.tags}
    hint = did_you_mean(tag, tags) or f"tags: {', '.join(sorted(tags)) or 'none'}"
    click.echo(f"note: no segment has tag '{tag}'; {hint}", err=True)


@segments.command("show")
@click.argument("name")
@click.option("--recent", default=20, show_default=True, help="How many recent changes.")
@format_option
@pass_ctx
def segments_show(ctx: Context, name: str, recent: int, fmt: str) -> None:
    """Show a segment's rule, size, size history and recent changes."""
    info = _membership(ctx).segment(name, recent)
    if fmt == "json":
        emit_json(info)
        return
    click.echo(f"{info['name']}: {info['rule'] or '(default of group ' + str(info['group']) + ')'}")
    click.echo(f"size {info['size']}" + (f", group {info['group']}" if info["group"] else ""))
    if info.get("archived"):
        click.echo("archived: evaluated by nothing; its history is kept")
    history = [
        (_when(p["day"])[:10], p["entered"], p["exited"], p["size"]) for p in info["history"]
    ]
    emit_table("Size history", ["day", "entered", "exited", "size"], history)
    changes = [
        (_when(c["occurred_at"]), c["profile_id"], c["change"], c["cause"].get("source", ""))
        for c in info["recent_changes"]
    ]
    emit_table("Recent changes", ["at", "profile", "change", "source"], changes)


@segments.command("overlap")
@click.option(
    "--segment",
    "names",
    multiple=True,
    metavar="NAME",
    help="Only pairs with this segment (repeatable: pairs with any of them).",
)
@click.option(
    "--min-overlap",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Only pairs sharing at least this many members.",
)
@click.option(
    "--top",
    type=click.IntRange(min=1),
    default=None,
    help="Only the N pairs sharing the most members, most first.",
)
@click.option(
    "--exclusive-pairs",
    is_flag=True,
    help="Also list pairs of one exclusive group (they never share members).",
)
@format_option
@pass_ctx
def segments_overlap(
    ctx: Context,
    names: tuple[str, ...],
    min_overlap: int,
    top: int | None,
    exclusive_pairs: bool,
    fmt: str,
) -> None:
    """Shared members and Jaccard index of pairs of segments.

    Pairs of one exclusive group are left out (they never share a member) unless
    --exclusive-pairs is given.
    """
    pairs = _membership(ctx).overlap(
        segments=names, min_overlap=min_overlap, top=top, exclusive_pairs=exclusive_pairs
    )
    if fmt == "json":
        emit_json(pairs)
        return
    if not pairs:
        click.echo("no pairs of segments match")
        return
    rows = [
        (p["a"], p["b"], p["size_a"], p["size_b"], p["both"], f"{p['jaccard']:.3f}") for p in pairs
    ]
    emit_table("Overlap", ["a", "b", "|a|", "|b|", "both", "jaccard"], rows)


@webhooks.command("status")
@format_option
@pass_ctx
def webhooks_status(ctx: Context, fmt: str) -> None:
    """Show the webhook outbox: pending, delivered and dead letters per webhook."""
    status = _membership(ctx).webhook_status()
    if fmt == "json":
        emit_json(status)
        return
    rows = [
        (name, s["pending"], s["delivered"], s["dead"], _when(s.get("next_attempt_at") or ""))
        for name, s in sorted(status["webhooks"].items())
    ]
    emit_table("Webhooks", ["webhook", "pending", "delivered", "dead", "next attempt"], rows)
    letters = [
        (d["id"], d["webhook"], d["attempts"], d["last_error"]) for d in status["dead_letters"]
    ]
    if letters:
        emit_table("Dead letters", ["id", "webhook", "attempts", "last error"], letters)


@webhooks.command("deliver")
@as_of_option("Deliver what is due at this instant")
@format_option
@pass_ctx
def webhooks_deliver(ctx: Context, as_of: datetime, fmt: str) -> None:
    """Deliver every outbox row that is due now (each once)."""
    refuse_later_than_now(
        as_of, "--as-of",
        "the deliveries due then would be sent now, signed with that instant, and a failed "
        "one retried only after it; run it at that time",
    )  # fmt: skip
    report = _membership(ctx).deliver_webhooks(as_of)
    if fmt == "json":
        emit_json({"as_of": as_of, "delivered": report.delivered, "retrying": report.retried,
                   "dead": report.dead, "dropped": report.dropped})  # fmt: skip
        return
    click.echo(f"delivered {report.delivered}, retrying {report.retried}, dead {report.dead}")


def register(cli: click.Group) -> None:
    """Add ``refresh`` and ``reconcile``; the rest attach to the shared groups."""
    cli.add_command(refresh)
    cli.add_command(reconcile)
