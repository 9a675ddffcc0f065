"""The demo's consent step: what the shop's customers agreed to, before any campaign.

Three sources, as in a real migration to segmint:

1. consent stated in identify calls (``email_consent``), recorded by deliver's
   ``sync_trait_consents`` (a real send does this first; a dry run writes nothing, so the
   demo runs it here);
2. the previous email provider's unsubscribe list, written to ``esp-export/unsubscribes.csv``
   and imported the way ``segmint consent import`` does;
3. its hard bounces, written to ``esp-export/bounces.csv``; each address is suppressed the
   way ``segmint consent suppress`` does.
"""

from __future__ import annotations

import csv
from pathlib import Path

from segmint.clock import parse_instant
from segmint.demo.stage import DemoContext, need

EXPORT = "esp-export"


def record_consent(ctx: DemoContext) -> str:
    """Record consent from identify calls, unsubscribes and bounces; return a summary."""
    sync, suppress = need("segmint.deliver", "sync_trait_consents", "suppress")
    (import_csv,) = need("segmint.deliver.imports", "import_consents_csv")
    ws = ctx.ws
    folder = ctx.options.out / EXPORT
    folder.mkdir(parents=True, exist_ok=True)
    unsubscribes = [r for r in ctx.provider if r["kind"] == "unsubscribed"]
    bounces = [r for r in ctx.provider if r["kind"] == "bounced"]
    with ctx.console.status("Recording the consent stated in identify calls…"):
        stated = sync(ws.store, ws.definition.consent)
    rows = [[r["user_id"], "*", "unsubscribed", r["occurred_at"]] for r in unsubscribes]
    path = _write(folder / "unsubscribes.csv", ["user_id", "topic", "status", "occurred_at"], rows)
    imported = import_csv(
        ws.store, path, ws.definition.consent, source="import:esp", at=ctx.options.as_of
    )
    _write(folder / "bounces.csv", ["email", "bounced_at"],
           [[r["email"], r["occurred_at"]] for r in bounces])  # fmt: skip
    for row in bounces:
        suppress(ws.store, row["email"], "bounce", source="import:esp",
                 at=parse_instant(row["occurred_at"]))  # fmt: skip
    refused = len(imported.refused)
    ctx.facts["consent"] = {
        "from_identify": stated,
        "unsubscribes_imported": imported.recorded,
        "unsubscribes_refused": refused,
        "bounces_suppressed": len(bounces),
        "export": str(folder),
    }
    problems = f" ({refused} rows refused)" if refused else ""
    return (
        f"{stated:,} consent statements from identify calls; {imported.recorded:,} unsubscribes"
        f"{problems} and {len(bounces):,} bounced addresses from the previous email provider "
        f"({folder}/)"
    )


def _write(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path
