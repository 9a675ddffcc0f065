"""Running a campaign: audience → ledger → consent gate → render → send → report.

:class:`CampaignRun` is what ``segmint campaign send`` calls. It is resumable: every
profile is in the send ledger before anything is attempted, so running it again after a
crash or a kill continues where the dead run stopped and sends nobody twice (the rule for
messages interrupted mid-transaction is in :mod:`segmint.deliver.ledger`).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parseaddr
from typing import Any, Protocol

from segmint.clock import Clock, ensure_utc
from segmint.common import did_you_mean, in_lists
from segmint.config.model import CampaignDef
from segmint.deliver.consent import check_topic, sync_trait_consents
from segmint.deliver.errors import (
    AuthenticationFailed,
    CampaignError,
    ConnectionDropped,
    DeliveryError,
    HardBounce,
)
from segmint.deliver.gate import ConsentGate, address_of
from segmint.deliver.group import GroupLedger
from segmint.deliver.ledger import FINAL, Bounce, MemoryLedger, SendLedger, send_key
from segmint.deliver.policy import DeliveryPolicy, Message, ledger_history, longest_window
from segmint.deliver.report import CampaignReport
from segmint.deliver.retry import RetryPolicy, with_retries
from segmint.deliver.transport import EmailTransport
from segmint.intake.identity import merge_roots
from segmint.measure.assign import assign
from segmint.personalize.errors import TemplateRenderError
from segmint.profiles import Profile, segment_members
from segmint.store import from_store_time
from segmint.workspace import Workspace

Progress = Callable[[int, int], None]
"""Called with (profiles done, profiles to do) as the run advances."""


class Composer(Protocol):
    """Builds one recipient's complete message (see :mod:`segmint.deliver.compose`)."""

    def __call__(
        self, profile: Profile, *, to: str, message_id: str, variant: str | None = None
    ) -> bytes:
        """Return the message bytes for ``variant`` (an experiment arm), if any.

        Raises ``TemplateRenderError`` for this recipient.
        """
        ...


def campaign_def(workspace: Workspace, name: str) -> CampaignDef:
    """Return the named campaign's definition.

    Raises:
        CampaignError: If there is no such campaign, with the nearest name.
    """
    campaigns = workspace.definition.campaigns
    parts = name.split(":")
    if name not in campaigns and len(parts) > 1 and parts[0] == "journey" and parts[1]:
        step = f"step {parts[2]!r} of " if len(parts) > 2 else ""  # (KPIs' label of a step)
        raise CampaignError(
            f"{name!r} is {step}journey {parts[1]!r}, not a campaign: "
            f"`segmint journeys show {parts[1]}` shows its sends, skips and exits"
        )
    if name not in campaigns:
        close = did_you_mean(name, campaigns)
        hint = f"; {close}" if close else ""
        known = ", ".join(sorted(campaigns)) or "none defined"
        raise CampaignError(f"unknown campaign {name!r} (campaigns: {known}){hint}")
    return campaigns[name]


@functools.lru_cache(maxsize=256)
def envelope_address(sender: str) -> str:
    """The bare address of a ``From`` value (``Shop <news@shop.example>`` → the address).

    Cached: parsing a header costs more than composing the rest of a message's ids.
    """
    return parseaddr(sender)[1]


def message_id_for(key: str, sender: str) -> str:
    """Return the Message-ID of a send, stable per (campaign, profile).

    A re-send after an uncertain attempt carries the same id, so receivers can drop it.
    """
    domain = envelope_address(sender).rpartition("@")[2] or "segmint.invalid"
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@{domain}>"


@dataclass
class CampaignRun:
    """One run of a campaign.

    Attributes:
        workspace: The workspace (definitions and store).
        name: The campaign's name in ``segmint.yaml``.
        clock: The time of every decision and ledger stamp; ``as_of`` is its reading at
            the start of the run.
        transport: Where messages go (the SMTP pool, or an outbox for a dry run).
        composer: Builds each message.
        dry_run: Keep the ledger in memory and announce nothing.
        retry: Backoff for transient failures.
        concurrency: Messages in flight at once (the pool's size).
        retry_uncertain: Re-send interrupted attempts (at-least-once for those rows).
        announce: Submits engagement messages to intake (``Email Delivered``, ``Email
            Bounced``), read from the ledger at the start (what a dead run left) and end.
        progress: Called as profiles are done.
    """

    workspace: Workspace
    name: str
    clock: Clock
    transport: EmailTransport
    composer: Composer
    dry_run: bool = False
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    concurrency: int = 4
    retry_uncertain: bool = False
    announce: Callable[[list[dict[str, Any]]], object] | None = None
    progress: Progress | None = None

    def __post_init__(self) -> None:
        self.definition = campaign_def(self.workspace, self.name)
        ws = self.workspace.definition
        if self.definition.segment not in ws.segments:
            raise CampaignError(
                f"campaign {self.name!r} targets unknown segment {self.definition.segment!r}"
            )
        check_topic(ws.consent, self.definition.topic)
        self.store = self.workspace.store
        ledger_type = MemoryLedger if self.dry_run else SendLedger
        self.ledger = ledger_type(self.store, self.name, self.clock)
        self.ledger.topic, self.ledger.priority = self.definition.topic, self.definition.priority
        self.report = CampaignReport(self.name, dry_run=self.dry_run)
        self.envelope_from = envelope_address(self.definition.sender)
        self._halted: DeliveryError | None = None
        self.arms: dict[str, str] = {}  # profile → experiment arm, when the campaign has one

    async def run(self) -> CampaignReport:
        """Send the campaign to every eligible member not yet sent it; return the report.

        Raises:
            CampaignError: The mail server refused the credentials, or could not be reached
                before any message got through: the run stops rather than fail every
                recipient in turn; those not attempted stay pending for the next run.
        """
        as_of = self.clock.now()
        self._announce()  # what an earlier run recorded but died before announcing
        members = self._audience()
        todo = self._prepare(members, as_of)
        self._done, self._total = 0, len(todo)
        self._tick(0)
        queue: asyncio.Queue[tuple[Profile, str]] = asyncio.Queue()
        for item in todo:
            queue.put_nowait(item)
        self.group = GroupLedger(self.ledger)
        workers = [self._worker(queue) for _ in range(max(1, self.concurrency))]
        try:
            await asyncio.gather(*workers)
        finally:
            await self.group.drain()
            await self.transport.close()
        self._announce()
        if self._halted is not None:
            raise CampaignError(
                f"campaign {self.name!r} stopped: {self._halted}; {queue.qsize()} profile(s) "
                "not attempted stay pending: check email.smtp and run it again"
            )
        return self.report

    def _audience(self) -> dict[str, Profile]:
        types = {n: t.type for n, t in self.workspace.definition.traits.items() if t.type}
        members = segment_members(self.store, self.definition.segment, types)
        return {p.profile_id: p for p in members}

    def _prepare(self, members: dict[str, Profile], as_of: datetime) -> list[tuple[Profile, str]]:
        ws = self.workspace.definition
        # Derived from stored identify events and idempotent, so a dry run syncs too: it
        # must see the same consent a real run would.
        sync_trait_consents(self.store, ws.consent)
        self.report.audience = len(members)
        self.ledger.plan(members)
        self.report.recovered = self.ledger.recover()
        if self.retry_uncertain:
            self.ledger.release_uncertain()
        gate = ConsentGate(
            self.store, ws.consent, self.definition.topic, as_of, ws.email.email_trait,
            global_holdout=ws.measure.global_holdout_percent,
        )  # fmt: skip
        # consent, caps and quiet hours: the one policy journeys follow too
        policy = DeliveryPolicy(
            ws.delivery,
            {self.definition.topic: gate},
            ledger_history(self.store, members, as_of - longest_window(ws.delivery)),
            timezone_trait=ws.email.timezone_trait,
            default_zone=ws.timezone,
        )
        skipped: list[tuple[str, str]] = []
        todo: list[tuple[Profile, str]] = []
        taken = self.ledger.taken_addresses()
        rows = sorted(self.ledger.rows(), key=lambda r: r.profile_id)
        # a person already mailed under a profile merged into this one since: not again
        roots = merge_roots(self.store)
        mailed = {roots[r.profile_id] for r in rows if r.status in FINAL and r.profile_id in roots}
        for row in rows:
            if row.status in FINAL:
                self.report.already_sent += row.status == "sent"
                self.report.uncertain += row.status == "uncertain"
                continue
            profile = members.get(row.profile_id)
            reason = "left_segment" if profile is None else self._decide(policy, profile, as_of)
            address = "" if profile is None else address_of(profile, ws.email.email_trait) or ""
            if reason is None and address.lower() in taken:
                reason = "duplicate_address"  # two profiles, one inbox: one message
            if reason is None and row.profile_id in mailed:
                reason = "sent_before_merge"
            if reason is not None:
                skipped.append((row.profile_id, reason))
            elif profile is not None:
                taken.add(address.lower())
                todo.append((profile, address))
        todo = self._split(todo, skipped, as_of)
        self.ledger.skip(skipped)
        self.report.skipped.update(reason for _, reason in skipped)
        return todo

    def _split(
        self, todo: list[tuple[Profile, str]], skipped: list[tuple[str, str]], as_of: datetime
    ) -> list[tuple[Profile, str]]:
        """Assign the eligible recipients to the campaign experiment's arms, if it has one.

        The holdout arm is skipped (``holdout``); the others are sent their arm's variant.
        """
        from segmint.measure.experiments import campaign_experiment, decide_winner

        found = campaign_experiment(self.workspace.definition, self.name)
        if found is None:
            return todo
        name, experiment = found
        pids = [p.profile_id for p, _ in todo]
        winner = decide_winner(self.store, self.workspace.definition, name, as_of,
                               record=not self.dry_run)  # fmt: skip
        self.arms = assign(self.store, name, experiment.variants, pids, as_of,
                           record=not self.dry_run, winner=winner)  # fmt: skip
        self.report.winner = winner
        held = {v.name for v in experiment.variants if v.holdout}
        skipped += [(pid, "holdout") for pid in pids if self.arms[pid] in held]
        # recorded in an arm renamed or removed since: it may have been the holdout
        gone = {pid for pid in pids if self.arms[pid] not in {v.name for v in experiment.variants}}
        skipped += [(pid, "arm_removed") for pid in sorted(gone)]
        held |= {self.arms[pid] for pid in gone}
        # send-time arms: planned at created_at, sent by the first run after their delay
        delays = {v.name: v.delay for v in experiment.variants if v.delay is not None}
        planned = self._planned([p for p in pids if self.arms[p] in delays])
        later = {
            pid for pid, at in planned.items() if at + delays[self.arms[pid]] > as_of
        }  # fmt: skip
        skipped += [(pid, "variant_delay") for pid in sorted(later)]
        todo = [(p, a) for p, a in todo
                if self.arms[p.profile_id] not in held and p.profile_id not in later]  # fmt: skip
        # an arm sent another template: its rows name it (Email Delivered, KPIs by template)
        templates = {v.name: v.template for v in experiment.variants if v.template}
        chosen = {p.profile_id: self.arms[p.profile_id] for p, _ in todo}
        self.ledger.templates({p: templates[a] for p, a in chosen.items() if a in templates})
        return todo

    def _planned(self, pids: list[str]) -> dict[str, datetime]:
        """When each profile's ledger row was planned (a send-time arm counts from it)."""
        out: dict[str, datetime] = {}
        for marks, chunk in in_lists(pids):
            for pid, at in self.store.fetchall(
                f"SELECT profile_id, created_at FROM sends WHERE campaign = ? "
                f"AND profile_id IN ({marks})",
                [self.name, *chunk],
            ):
                out[str(pid)] = ensure_utc(from_store_time(at) or at)
        return out

    def _decide(self, policy: DeliveryPolicy, profile: Profile, as_of: datetime) -> str | None:
        """The skip reason of one recipient now (a delay is a skip: the next run decides)."""
        message = Message(profile, self.definition.topic, as_of, self.definition.priority)
        decision = policy.decide(message)
        return None if decision.action == "send" else decision.reason

    async def _worker(self, queue: asyncio.Queue[tuple[Profile, str]]) -> None:
        while not queue.empty() and self._halted is None:
            profile, address = queue.get_nowait()
            await self._deliver(profile, address)
            self._done += 1
            self._tick(self._done)

    async def _deliver(self, profile: Profile, address: str) -> None:
        pid = profile.profile_id
        message_id = message_id_for(send_key(self.name, pid), self.definition.sender)
        try:
            variant = self.arms.get(pid)
            message = self.composer(profile, to=address, message_id=message_id, variant=variant)
        except TemplateRenderError as exc:
            self.group.failed(pid, f"render_error:{exc.reason}")
            self.report.failed[f"render_error:{exc.reason}"] += 1
            return
        if not await self.group.claim(pid, address, message_id):
            self.report.already_sent += 1
            return
        try:
            await with_retries(
                lambda: self.transport.send(message, self.envelope_from, [address]),
                self.retry,
                on_retry=self._count_retry,
            )
        except DeliveryError as exc:
            await self._failed(pid, address, exc)
            return
        self.group.sent(pid)
        if self.dry_run:
            self.report.written += 1
        else:
            self.report.sent += 1

    async def _failed(self, pid: str, address: str, exc: DeliveryError) -> None:
        reason = exc.reason if exc.code is None else f"{exc.reason}:{exc.code}"
        self.report.failed[reason] += 1
        unreachable = isinstance(exc, ConnectionDropped) and not (
            self.report.sent or self.report.written
        )
        if unreachable or isinstance(exc, AuthenticationFailed):
            self._halted = self._halted or exc  # the server's fault, not this recipient's
        if isinstance(exc, HardBounce):
            # committed with the suppression before going on: a crash cannot lose it
            await self.group.bounced(Bounce(pid, address, reason, exc.code, self.clock.now()))
        else:
            self.group.failed(pid, reason)

    def _count_retry(self, attempt: int, exc: BaseException) -> None:
        self.report.retries += 1

    def _tick(self, done: int) -> None:
        if self.progress is not None:
            self.progress(done, self._total)

    def _announce(self) -> None:
        """Submit the ledger's unannounced bounces and deliveries, then mark them."""
        if self.announce is None or self.dry_run:
            return
        from segmint.deliver.engagement import announce_ledger

        announce_ledger(self.store, self.ledger, self.definition, self.announce)
