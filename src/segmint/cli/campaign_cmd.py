"""``segmint campaign send|list|report`` and ``segmint consent …``: email with consent."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from segmint.cli.groups import campaign
from segmint.cli.main import Context, pass_ctx
from segmint.cli.output import console, emit_json, emit_table, err_console, format_option
from segmint.cli.params import as_of_option as _instant_option
from segmint.cli.params import refuse_later_than_now
from segmint.clock import Clock, FixedClock, SystemClock

if TYPE_CHECKING:
    from segmint.deliver import consent as consent_api
    from segmint.deliver import subjects
    from segmint.deliver.report import CampaignReport
    from segmint.workspace import Workspace


ARM_REMOVED = (
    "{n} recipient(s) recorded in an experiment arm that is no longer among its variants "
    "(renamed or removed: it may have been the holdout) were not sent (arm_removed); put the "
    "arm back under its old name to send them its message"
)


def _clock(as_of: datetime | None) -> Clock:
    return FixedClock(as_of) if as_of else SystemClock()


as_of_option = _instant_option("The instant of the run", now_default=False)


def _recorded_at(as_of: datetime | None) -> datetime:
    """When a consent statement or suppression typed now took place: --as-of, or now.

    A later instant is refused: a statement dated in the future does not count until then
    (an unsubscribe dated tomorrow lets today's sends through) and outranks every statement
    recorded before it in the meantime (a grant dated next year overrides today's denial).
    """
    if as_of is None:
        return SystemClock().now()
    refuse_later_than_now(
        as_of, "--as-of",
        "a statement dated then does not count until then, and outranks every one recorded "
        "before it meanwhile; give the instant it happened",
    )  # fmt: skip
    return as_of


@contextmanager
def _progress(enabled: bool) -> Iterator[Any]:
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TimeRemainingColumn

    columns = ("{task.description}", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    bar = Progress(*columns, console=err_console, transient=True)
    task: list[TaskID] = []

    def update(done: int, total: int) -> None:
        if not task:  # shown once sending starts: an error before it is one line, no blank
            bar.start()
            task.append(bar.add_task("sending", total=None))
        bar.update(task[0], completed=done, total=total)

    try:
        yield update
    finally:
        if task:
            bar.stop()


@campaign.command("send")
@click.argument("name")
@click.option("--dry-run", is_flag=True, help="Write .eml files instead of sending.")
@click.option("--out", type=click.Path(path_type=Path), help="The dry run's folder.")
@click.option(
    "--retry-uncertain",
    is_flag=True,
    help="Re-send messages whose earlier attempt was interrupted (may duplicate them).",
)
@as_of_option
@format_option
@pass_ctx
def send(
    ctx: Context,
    name: str,
    dry_run: bool,
    out: Path | None,
    retry_uncertain: bool,
    as_of: datetime | None,
    fmt: str,
) -> None:
    """Send campaign NAME to its segment, with consent enforced; resumable."""
    if out is not None and not dry_run:
        raise click.UsageError("--out is the dry run's folder: use it with --dry-run")
    if as_of is not None and not dry_run:
        refuse_later_than_now(
            as_of, "--as-of",
            "the messages would be sent now but recorded (sent_at, Email Delivered, caps) at "
            "that instant; send it at that time, or add --dry-run to see what it would send",
        )  # fmt: skip
    from segmint.deliver.service import send_campaign

    with _progress(fmt != "json") as progress:
        report = send_campaign(
            ctx.workspace,
            name,
            clock=_clock(as_of),
            dry_run=dry_run,
            out=out,
            retry_uncertain=retry_uncertain,
            progress=progress,
        )
    _print_report(report, fmt)


def _print_report(report: CampaignReport, fmt: str) -> None:
    if fmt == "json":
        emit_json(report.to_dict())
        return
    title = f"campaign {report.campaign}" + (" (dry run: nothing sent)" if report.dry_run else "")
    emit_table(title, ["outcome", "reason", "profiles"], report.rows())
    console.print(f"audience {report.audience}, transient retries {report.retries}")
    if report.skipped.get("arm_removed"):
        warning = ARM_REMOVED.format(n=report.skipped["arm_removed"])
        err_console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False, soft_wrap=True)
    if report.outbox:
        console.print(f"{report.written} message(s) written to {report.outbox}, not sent")
    if report.uncertain:
        console.print(
            f"[yellow]{report.uncertain} interrupted attempt(s) not re-sent (at most once); "
            "see 'segmint campaign report' or use --retry-uncertain[/yellow]"
        )


@campaign.command("list")
@format_option
@pass_ctx
def list_(ctx: Context, fmt: str) -> None:
    """List the campaigns defined in segmint.yaml."""
    from segmint.deliver.service import list_campaigns

    rows = list_campaigns(ctx.workspace)
    if fmt == "json":
        emit_json(rows)
        return
    columns = ["name", "segment", "template", "topic", "from", "sent"]
    emit_table("campaigns", columns, [[r[c] for c in columns] for r in rows])


@campaign.command("report")
@click.argument("name")
@format_option
@pass_ctx
def report_(ctx: Context, name: str, fmt: str) -> None:
    """Show campaign NAME's send ledger by status and reason, and its engagement."""
    from segmint.deliver.service import campaign_status

    info = campaign_status(ctx.workspace, name, SystemClock())
    if fmt == "json":
        emit_json(info)
        return
    rows = [(s, r or "", n) for s, by in info["ledger"].items() for r, n in by.items()]
    gone = "" if info["defined"] else " (no longer in segmint.yaml)"
    emit_table(f"campaign {name}{gone}", ["status", "reason", "profiles"], rows)
    emit_table("engagement", ["measure", "count"], sorted(info["engagement"].items()))


@click.group("consent")
def consent_group() -> None:
    """Consent and suppressions: record, show, import."""


@consent_group.command("set")
@click.argument("person")
@click.argument("status", type=click.Choice(["granted", "denied", "unsubscribed"]))
@click.option("--topic", default="*", show_default=True, help="A topic, or * for all.")
@click.option("--source", default="cli", show_default=True, help="Where the change came from.")
@as_of_option
@pass_ctx
def consent_set(
    ctx: Context, person: str, status: Any, topic: str, source: str, as_of: datetime | None
) -> None:
    """Record that PERSON's consent for a topic is now STATUS.

    PERSON is a profile id, user id, anonymous id, email or KIND:VALUE. An email address no
    profile has yet is recorded for the address and counts once a profile has it; anything
    else that names nobody is refused.
    """
    from segmint.deliver import consent as consent_api
    from segmint.deliver import subjects

    ws = ctx.workspace
    consent_api.check_topic(ws.definition.consent, topic)
    at = _recorded_at(as_of)
    subject = subjects.consent_subject(
        ws.store, person, ws.definition.identifiers, field="PERSON", erased=_erased_note(ws)
    )
    subjects.record_subject_consent(ws.store, subject, topic, status, source=source, at=at)
    click.echo(f"{subject}: {topic} {status} ({source}, {at.isoformat()})")


def _erased_note(ws: Workspace) -> Callable[[str], str | None]:
    """What to say of an id that names an erased person (their address is not kept again)."""
    from segmint.privacy.erased import erased_note

    return lambda ref: erased_note(ws.privacy, ref)


CONSENT_COLUMNS = ("occurred_at", "topic", "status", "source", "recorded_under", "event_id")


@consent_group.command("show")
@click.argument("person")
@format_option
@pass_ctx
def consent_show(ctx: Context, person: str, fmt: str) -> None:
    """Show every consent statement that counts for PERSON, oldest first.

    PERSON is a profile id, user id, anonymous id, email or KIND:VALUE. Shown: statements
    recorded under the profile and the profiles merged into it, about its addresses, and its
    identify calls' consent traits (marked "not yet recorded" until the next send records
    them).
    """
    from segmint.deliver import subjects
    from segmint.intake.errors import UnknownPersonError

    ws = ctx.workspace
    try:
        subject, history = subjects.history_of(
            ws.store, person, ws.definition.consent, identifiers=ws.definition.identifiers,
            email_trait=ws.definition.email.email_trait,
        )  # fmt: skip
    except UnknownPersonError as exc:
        from segmint.privacy.erased import erased_note

        erased = erased_note(ws.privacy, person)  # an erased person: say when
        if erased is None:
            raise
        raise UnknownPersonError(person, erased, "PERSON") from exc
    if fmt == "json":
        emit_json(
            [
                {"occurred_at": c.occurred_at, "topic": c.topic, "status": c.status,
                 "source": c.source, "recorded_under": c.subject, "event_id": c.event_id,
                 "recorded": c.recorded}
                for c in history
            ]
        )  # fmt: skip
        return
    rows = [
        (c.occurred_at.isoformat().replace("+00:00", "Z"), c.topic, c.status,
         c.source if c.recorded else f"{c.source} (not yet recorded)", _origin(c, subject))
        for c in history
    ]  # fmt: skip
    emit_table(f"consent of {subject}", ["occurred_at", "topic", "status", "source", "from"], rows)


def _origin(change: consent_api.ConsentChange, subject: subjects.ConsentSubject) -> str:
    if change.address is not None:
        where = f"address {change.address}"
    elif change.profile_id != subject.profile_id:
        where = f"merged profile {change.profile_id}"
    else:
        where = "this profile"
    return f"{where}, event {change.event_id}" if change.event_id else where


@consent_group.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@as_of_option
@pass_ctx
def consent_import(ctx: Context, path: Path, as_of: datetime | None) -> None:
    """Record consent from a CSV file (profile_id|user_id|email, topic, status[, occurred_at]).

    A row whose statement is recorded already (same person, topic, status and occurred_at)
    is not recorded twice; a row dated later than --as-of (now) is refused.
    """
    from segmint.deliver.imports import import_consents_csv

    ws = ctx.workspace
    at = _recorded_at(as_of)
    result = import_consents_csv(
        ws.store, path, ws.definition.consent, source=f"import:{path.name}", at=at,
        erased=_erased_note(ws),
    )  # fmt: skip
    already = f", {result.already} recorded already" if result.already else ""
    click.echo(f"recorded {result.recorded} consent change(s){already}")
    for line, reason in result.refused:
        err_console.print(f"{path}:{line}: {reason}", highlight=False, soft_wrap=True)
    if result.refused and not (result.recorded or result.already):  # no success (as ingest)
        raise click.exceptions.Exit(1)


@consent_group.command("suppress")
@click.argument("address")
@click.option(
    "--reason",
    type=click.Choice(["manual", "bounce", "complaint"]),
    default="manual",
    show_default=True,
)
@as_of_option
@pass_ctx
def consent_suppress(ctx: Context, address: str, reason: str, as_of: datetime | None) -> None:
    """Block ADDRESS from all marketing email."""
    from segmint.deliver import consent as consent_api

    at = _recorded_at(as_of)
    consent_api.suppress(ctx.workspace.store, address, reason, source="cli", at=at)
    click.echo(f"suppressed {address} ({reason})")


@consent_group.command("unsuppress")
@click.argument("address")
@pass_ctx
def consent_unsuppress(ctx: Context, address: str) -> None:
    """Lift the suppression of ADDRESS."""
    from segmint.deliver import consent as consent_api

    found = consent_api.unsuppress(ctx.workspace.store, address)
    click.echo(f"{'lifted' if found else 'no'} suppression for {address}")


def register(cli: click.Group) -> None:
    """Add the consent group (campaign commands attach to the shared group on import)."""
    cli.add_command(consent_group)
