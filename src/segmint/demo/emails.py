"""The demo's email steps: personalised previews for three segments, and a campaign dry run.

Previews go through segmint's template preview (what ``segmint template preview`` runs); the
dry run through the campaign runner with an outbox instead of SMTP (what ``segmint campaign
send NAME --dry-run`` runs), whose report counts who would be sent and who is skipped, and why.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.table import Table

from segmint.demo.stage import DemoContext, need

TEMPLATE = "lifecycle"
PREVIEW_SEGMENTS = ("vip", "lapsing", "new_customer")
PREVIEWS_PER_SEGMENT = 2
CAMPAIGN = "winback"


def preview_emails(ctx: DemoContext) -> str:
    """Render the lifecycle template for real members of three segments into the output."""
    (preview,) = need("segmint.personalize", "preview")
    written: dict[str, list[str]] = {}
    for segment in PREVIEW_SEGMENTS:
        folder = ctx.options.out / "previews" / segment
        folder.mkdir(parents=True, exist_ok=True)
        files = preview(
            ctx.ws,
            TEMPLATE,
            segment=segment,
            n=PREVIEWS_PER_SEGMENT,
            out=folder,
            as_of=ctx.options.as_of,
        )
        written[segment] = sorted(str(f) for f in _files(files, folder) if f.suffix == ".html")
    ctx.facts["previews"] = written
    total = sum(len(v) for v in written.values())
    return f"{total} previews (.html and .eml) in {ctx.options.out / 'previews'}/"


def _files(result: Any, folder: Path) -> list[Path]:
    if isinstance(result, list | tuple) and all(isinstance(p, str | Path) for p in result):
        return [Path(p) for p in result]
    return sorted(folder.iterdir())


def dry_run_campaign(ctx: DemoContext) -> str:
    """Dry-run the winback campaign into an outbox and print its consent report."""
    (send,) = need("segmint.deliver", "send_campaign")
    outbox = ctx.options.out / "outbox"
    report = send(ctx.ws, CAMPAIGN, dry_run=True, outbox=outbox, as_of=ctx.options.as_of)
    data: dict[str, Any] = report.to_dict()
    ctx.facts["campaign"] = data
    ctx.facts["outbox"] = str(outbox)
    ctx.console.print(_report_table(report.rows(), data))
    skipped = sum(data["skipped"].values())
    return (
        f"campaign {CAMPAIGN}: {data['audience']:,} in the audience, {data['sent']:,} "
        f"written to {outbox}/, {skipped:,} skipped"
    )


def _report_table(rows: list[tuple[str, str, int]], data: dict[str, Any]) -> Table:
    table = Table(
        title=f"Consent report: {data['campaign']} (dry run, audience {data['audience']:,})",
        title_justify="left",
    )
    table.add_column("outcome")
    table.add_column("reason")
    table.add_column("profiles", justify="right")
    for outcome, reason, count in rows:
        if count or outcome in ("sent", "skipped"):
            table.add_row(outcome, reason, f"{count:,}")
    return table
