"""The campaign operations the CLI and the API call: send, list, report.

These assemble the parts (signer, composer, transport, intake) for a workspace, so the CLI
holds no logic of its own.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from segmint.clock import Clock
from segmint.deliver.campaign import CampaignRun, Progress, campaign_def
from segmint.deliver.compose import TemplateComposer
from segmint.deliver.errors import CampaignError
from segmint.deliver.fake import OutboxTransport
from segmint.deliver.ledger import SendLedger
from segmint.deliver.links import LinkSigner
from segmint.deliver.report import CampaignReport
from segmint.deliver.retry import RetryPolicy
from segmint.deliver.transport import EmailTransport, SmtpPool
from segmint.workspace import Workspace


def outbox_folder(workspace: Workspace, name: str) -> Path:
    """Return the default dry-run folder: ``.segmint/outbox/<campaign>/``."""
    return workspace.state_dir / "outbox" / name


def build_run(
    workspace: Workspace,
    name: str,
    *,
    clock: Clock,
    dry_run: bool = False,
    out: Path | None = None,
    retry_uncertain: bool = False,
    retry: RetryPolicy | None = None,
    transport: EmailTransport | None = None,
    progress: Progress | None = None,
) -> CampaignRun:
    """Assemble a :class:`CampaignRun` for ``name`` from the workspace settings.

    Args:
        workspace: The workspace.
        name: The campaign's name.
        clock: The run's clock (``as_of`` is its reading at the start).
        dry_run: Write ``.eml`` files to ``out`` instead of sending; change no state.
        out: The dry run's folder (default :func:`outbox_folder`).
        retry_uncertain: Re-send rows interrupted mid-transaction (at-least-once).
        retry: Backoff for transient failures (default :class:`RetryPolicy`).
        transport: Overrides the SMTP pool (tests inject faults this way).
        progress: Called with (done, total).

    Raises:
        CampaignError: Unknown campaign, segment or topic, no signing secret, or a dry
            run's folder that is a file.
        TemplateError: The campaign's template cannot be compiled.
    """
    definition = campaign_def(workspace, name)
    email = workspace.definition.email
    composer = TemplateComposer(workspace, name, definition, LinkSigner.from_email(email), clock)
    folder = out or outbox_folder(workspace, name)
    if dry_run and folder.exists() and not folder.is_dir():
        raise CampaignError(f"{folder} is a file; a dry run writes its .eml files to a folder")
    if transport is None:
        transport = OutboxTransport(folder) if dry_run else SmtpPool(email.smtp)
    announce = None
    if not dry_run:
        from segmint.deliver.engagement import email_announcer
        from segmint.intake import Intake

        announce = email_announcer(Intake(workspace, clock))

    run = CampaignRun(
        workspace,
        name,
        clock,
        transport,
        composer,
        dry_run=dry_run,
        retry=retry or RetryPolicy(),
        concurrency=max(1, email.smtp.pool_size),
        retry_uncertain=retry_uncertain,
        announce=announce,
        progress=progress,
    )
    run.report.outbox = str(folder) if dry_run else None
    return run


def send_campaign(
    workspace: Workspace, name: str, *, clock: Clock, **options: Any
) -> CampaignReport:
    """Run a campaign to completion (see :func:`build_run` for the options)."""
    return asyncio.run(build_run(workspace, name, clock=clock, **options).run())


def list_campaigns(workspace: Workspace) -> list[dict[str, Any]]:
    """Return each campaign's definition and how many profiles it was sent to."""
    sent = dict(
        workspace.store.fetchall(
            "SELECT campaign, count(*) FROM sends WHERE status = 'sent' GROUP BY campaign"
        )
    )
    return [
        {
            "name": name,
            "segment": c.segment,
            "template": c.template,
            "topic": c.topic,
            "from": c.sender,
            "sent": int(sent.get(name, 0)),
        }
        for name, c in sorted(workspace.definition.campaigns.items())
    ]


def campaign_status(workspace: Workspace, name: str, clock: Clock) -> dict[str, Any]:
    """Return the ledger's counts for a campaign, and its opens and clicks so far.

    Opens are counted with and without machine opens (``machine_open``); clicks and opens
    are counted as events and as distinct profiles. A campaign removed from ``segmint.yaml``
    whose sends are in the ledger is reported too (``defined`` False).

    Raises:
        CampaignError: No such campaign defined and none sent under that name.
    """
    defined = name in workspace.definition.campaigns
    counts = SendLedger(workspace.store, name, clock).counts()
    if not defined and not counts:
        campaign_def(workspace, name)  # raises, with the nearest name
    engagement = _engagement(workspace, name)
    return {
        "campaign": name,
        "defined": defined,
        "ledger": {s: dict(sorted(c.items())) for s, c in sorted(counts.items())},
        "sent": sum(counts.get("sent", Counter()).values()),
        "engagement": engagement,
    }


def _engagement(workspace: Workspace, name: str) -> dict[str, int]:
    rows = workspace.store.fetchall(
        "SELECT event, profile_id, CAST(properties AS TEXT) FROM events WHERE type = 'track' "
        "AND event IN ('Email Opened', 'Email Link Clicked', 'Email Unsubscribed') "
        "AND CAST(properties AS TEXT) LIKE ?",
        [f"%{name}%"],
    )
    out = Counter[str]()
    people: dict[str, set[str]] = {}
    for event, profile_id, raw in rows:
        props = orjson.loads(raw) if raw else {}
        if props.get("campaign") != name:
            continue
        key = event.removeprefix("Email ").lower().replace(" ", "_")
        out[key] += 1
        people.setdefault(key, set()).add(profile_id)
        if key == "opened" and not props.get("machine_open"):
            out["opened_by_people"] += 1
            people.setdefault("opened_by_people", set()).add(profile_id)
    return dict(out) | {f"{k}_profiles": len(v) for k, v in people.items()}
