"""The demo's email steps: personalised previews for three segments, and a campaign dry run.

Previews go through segmint's template preview (what ``segmint template preview`` runs); the
dry run through the campaign runner with an outbox instead of SMTP (what ``segmint campaign
send NAME --dry-run`` runs), whose report counts who would be sent and who is skipped, and why.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.markup import escape
from rich.table import Table

from segmint.clock import FixedClock
from segmint.demo.ingest import progress_bar
from segmint.demo.stage import DemoContext, need

TEMPLATE = "lifecycle"
PREVIEW_SEGMENTS = ("vip", "lapsing", "new_customer")
PREVIEWS_PER_SEGMENT = 2
CAMPAIGN = "winback"
MIN_SECRET = 16
"""The shortest signing secret segmint accepts."""


def preview_emails(ctx: DemoContext) -> str:
    """Render the lifecycle template for real members of three segments into the output."""
    request_class, render = need("segmint.personalize.preview", "PreviewRequest", "render_previews")
    written: dict[str, list[str]] = {}
    rows: list[tuple[str, str, str]] = []
    for segment in PREVIEW_SEGMENTS:
        if not _has_members(ctx, segment):
            rows.append((segment, "(no members to preview in this shop)", ""))
            written[segment] = []
            continue
        request = request_class(
            template=TEMPLATE,
            segment=segment,
            profile_id=None,
            count=PREVIEWS_PER_SEGMENT,
            out=ctx.options.out / "previews" / segment,
            sender=None,
            date=ctx.options.as_of,
        )
        result = render(ctx.ws, request)
        written[segment] = [item["html"] for item in result.written]
        rows += [(segment, item["subject"], item["html"]) for item in result.written]
        rows += [(segment, f"[red]failed: {escape(f['error'])}[/red]", "") for f in result.failed]
    ctx.facts["previews"] = written
    ctx.console.print(_previews_table(rows))
    total = sum(len(v) for v in written.values())
    failed = sum(1 for row in rows if row[1].startswith("[red]"))
    problems = f", {failed} failed to render" if failed else ""
    return (
        f"{total} personalised emails (.html and .eml) in {ctx.options.out / 'previews'}/{problems}"
    )


def _has_members(ctx: DemoContext, segment: str) -> bool:
    rows = ctx.ws.store.fetchall("SELECT 1 FROM memberships WHERE segment = ? LIMIT 1", [segment])
    return bool(rows)


def _previews_table(rows: list[tuple[str, str, str]]) -> Table:
    table = Table(title="Personalised previews", title_justify="left")
    table.add_column("segment")
    table.add_column("subject")
    table.add_column("file", overflow="fold")
    for row in rows:
        table.add_row(*row)
    return table


def dry_run_campaign(ctx: DemoContext) -> str:
    """Dry-run the winback campaign into an outbox and print its consent report."""
    (send_campaign,) = need("segmint.deliver.service", "send_campaign")
    ws = ctx.ws
    outbox = ctx.options.out / "outbox"
    with progress_bar(ctx) as bar, signing_secret(ctx):
        task = bar.add_task(f"Dry-running {CAMPAIGN}", total=None, note="")
        report = send_campaign(
            ws,
            CAMPAIGN,
            clock=FixedClock(ctx.options.as_of),
            dry_run=True,
            out=outbox,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    data: dict[str, Any] = report.to_dict()
    ctx.facts["campaign"] = data
    ctx.facts["outbox"] = str(outbox)
    ctx.console.print(_report_table(report.rows(), data))
    skipped = sum(data["skipped"].values())
    return (
        f"campaign {CAMPAIGN} (segment {ws.definition.campaigns[CAMPAIGN].segment}): "
        f"{data['audience']:,} in the audience, {data['written']:,} written to {outbox}/, "
        f"{skipped:,} skipped"
    )


@contextmanager
def signing_secret(ctx: DemoContext) -> Iterator[None]:
    """Make sure links can be signed: a throwaway secret when none is set, for this run only.

    The secret is saved to ``.segmint/demo-secret`` in the demo workspace so the user can
    export it and serve the very links the outbox holds.
    """
    name = ctx.ws.definition.email.secret_env
    if len(os.environ.get(name, "")) >= MIN_SECRET:
        yield
        return
    path = ctx.ws.state_dir / "demo-secret"
    secret = secrets.token_urlsafe(24)
    path.write_text(secret + "\n", encoding="utf-8")
    path.chmod(0o600)
    ctx.facts["secret"] = {"env": name, "file": str(path)}
    previous = os.environ.get(name)
    os.environ[name] = secret
    try:
        yield
    finally:
        if previous is None:
            del os.environ[name]
        else:
            os.environ[name] = previous


REASONS = {
    "no_consent": "did not opt in, or opted out",
    "unsubscribed": "unsubscribed (old provider's list)",
    "suppressed_bounce": "address hard-bounced",
    "complained": "marked mail as spam",
    "suppressed": "address blocked",
    "no_email": "no deliverable address",
    "left_segment": "left the segment mid-send",
}
"""What each skip reason of the consent gate means, in the demo's words."""


def _report_table(rows: list[tuple[str, str, int]], data: dict[str, Any]) -> Table:
    table = Table(
        title=f"Consent report: {data['campaign']} (dry run, audience {data['audience']:,})",
        title_justify="left",
    )
    table.add_column("outcome")
    table.add_column("reason")
    table.add_column("profiles", justify="right")
    table.add_column("meaning")
    for outcome, reason, count in rows:
        if count or outcome in ("written, not sent", "skipped"):
            table.add_row(outcome, reason, f"{count:,}", REASONS.get(reason, ""))
    return table
