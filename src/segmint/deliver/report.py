"""The outcome of a campaign run, for people (a table) and scripts (JSON)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class CampaignReport:
    """What one run of a campaign did.

    Attributes:
        campaign: The campaign's name.
        dry_run: Whether messages went to an outbox folder instead of the SMTP server.
        audience: Members of the campaign's segment at the start of the run.
        sent: Messages the server accepted in this run (always 0 in a dry run).
        written: Messages a dry run wrote to its outbox folder instead of sending them.
        skipped: Profiles skipped in this run, by reason (``no_consent``, ``no_email`` …).
        failed: Profiles whose message failed in this run, by reason.
        already_sent: Profiles sent this campaign by an earlier run.
        uncertain: Profiles whose earlier attempt was interrupted mid-transaction (at most
            once: not re-sent; see :mod:`segmint.deliver.ledger`).
        recovered: Rows this run found interrupted and turned ``uncertain``.
        retries: Transient failures retried.
        outbox: The dry run's folder.
        winner: The campaign experiment's winner, once picked (the rest of the audience
            is sent it).
    """

    campaign: str
    dry_run: bool = False
    audience: int = 0
    sent: int = 0
    written: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    already_sent: int = 0
    uncertain: int = 0
    recovered: int = 0
    retries: int = 0
    outbox: str | None = None
    winner: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the report as JSON-ready data.

        A dry run reports ``written`` where a real run reports ``sent``: no key of a dry
        run's report claims a send it did not make (``already_sent`` counts real sends
        of earlier runs).
        """
        done = {"written": self.written} if self.dry_run else {"sent": self.sent}
        return {
            "campaign": self.campaign,
            "dry_run": self.dry_run,
            "audience": self.audience,
            **done,
            "skipped": dict(sorted(self.skipped.items())),
            "failed": dict(sorted(self.failed.items())),
            "already_sent": self.already_sent,
            "uncertain": self.uncertain,
            "recovered": self.recovered,
            "retries": self.retries,
            "outbox": self.outbox,
            "winner": self.winner,
        }

    def rows(self) -> list[tuple[str, str, int]]:
        """Return (outcome, reason, count) rows for a table."""
        out = [("written, not sent", "", self.written) if self.dry_run else ("sent", "", self.sent)]
        out += [("skipped", r, n) for r, n in sorted(self.skipped.items())]
        out += [("failed", r, n) for r, n in sorted(self.failed.items())]
        out += [("already sent", "", self.already_sent), ("uncertain", "", self.uncertain)]
        return out
