"""The send ledger: one row per (campaign, profile), written before anything is attempted.

Row states::

    pending ─► attempting ─► sent                  (never attempted again)
       │            └──────► failed                (attempted again by the next run)
       └─► skipped (with its reason)               (checked again by the next run)
    attempting, found by a later run ─► uncertain  (not re-sent: at most once)

A hard bounce fails its row and is recorded on it (``bounced_at``, ``bounce_code``) in the
transaction that suppresses the address; its ``Email Bounced`` event is announced from the
ledger (:meth:`SendLedger.unannounced_bounces`) like ``Email Delivered``, so a run that dies
loses neither, and a later run announces what an earlier one could not.

A row is claimed (``attempting``, with the Message-ID it will carry) in a committed
transaction before its SMTP transaction starts, and marked ``sent`` once the server accepted
the message. Claims and marks of concurrent sends share commits
(:class:`~segmint.deliver.group.GroupLedger`), so a ``sent`` mark may trail the acceptance
by one commit. If the process dies between claim and mark, nobody can tell whether the
server accepted the message.

The rule: **uncertain rows are at-most-once.** A resumed run turns them ``uncertain`` and
does not send them again (they are reported, never re-sent blindly); an operator who prefers
at-least-once for them runs ``campaign send --retry-uncertain``, which re-sends them with
the same Message-ID so receiving systems can drop a duplicate.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from segmint.clock import Clock
from segmint.common import batched, in_lists
from segmint.deliver.consent import open_address, seal_address, suppress
from segmint.store import Store, from_store_time, utcnow_naive
from segmint.store.bulk import rows_table

FINAL = ("sent", "uncertain", "attempting")
"""States a run never attempts again (``attempting`` only while another run holds it)."""


def send_key(campaign: str, profile_id: str) -> str:
    """Return the ledger key of ``profile_id`` in ``campaign``."""
    return f"{campaign}:{profile_id}"


@dataclass(frozen=True)
class Bounce:
    """A hard bounce: the recipient's row, address, SMTP code and instant.

    Attributes:
        profile_id: The recipient.
        address: The refused address (suppressed with the bounce).
        reason: The ledger reason, e.g. ``hard_bounce:550``.
        code: The SMTP reply code, when the server gave one.
        at: When the server refused it.
    """

    profile_id: str
    address: str
    reason: str
    code: int | None
    at: datetime


@dataclass(frozen=True)
class LedgerRow:
    """One ledger row as a run sees it."""

    profile_id: str
    status: str
    reason: str | None
    message_id: str | None


ClaimRow = tuple[str, str, str | None, int | None, str, str]
"""(campaign, profile_id, topic, priority, address, message_id) of :func:`claim_many`."""

UnannouncedRow = tuple[str, str, str | None, Any, str | None]
"""(profile_id, message_id, address, sent_at, template) of a sent, unannounced row."""


def claim_many(
    store: Store, rows: Sequence[ClaimRow], at: datetime, *, new: bool = False
) -> set[str]:
    """Add or claim many rows of many campaigns at once, like ``plan`` then ``claim``.

    For senders whose rows span many campaigns (a journey's are one per step and entry).
    A row not in the ledger is inserted ``attempting``; a row there is claimed unless it
    is sent, uncertain or held by another run (one statement per 300 rows; on DuckDB, a
    batch of new rows only is one insert from an Arrow table).

    Args:
        store: The store holding ``sends``.
        rows: The rows to claim.
        at: Their ``created_at`` and ``updated_at``.
        new: The caller read that none of these rows is in the ledger (the only sender of
            their campaigns): they are inserted without looking. Should one be there after
            all, the insert fails, and with it the caller's transaction: nothing is sent.

    Returns:
        The send keys claimed.
    """
    now = utcnow_naive(at)
    unique = list({send_key(r[0], r[1]): r for r in rows}.items())
    privacy = getattr(store, "privacy", None)
    if privacy is not None:
        privacy.prepare(r[1] for _, r in unique)  # the keys sealing the addresses, at once
    table = [
        (key, campaign, pid, seal_address(store, pid, address), message_id, topic, priority)
        for key, (campaign, pid, topic, priority, address, message_id) in unique
    ]  # (sealed with PII encryption on)
    if new:
        _insert_claims(store, table, now)
        return {row[0] for row in table}
    with rows_table(store, _CLAIM_COLUMNS, table) as name:
        # all new (a journey's step, the first time): a plain insert, about half the
        # work of the conflict check on DuckDB; rows already there take the general way
        if name is not None and not store.fetchall(
            f"SELECT 1 FROM sends s JOIN {name} k ON s.send_key = k.send_key LIMIT 1"
        ):
            _insert_from(store, name, now)
            return {row[0] for row in table}
    granted: set[str] = set()
    for chunk in batched(table, 300):
        marks, params = _claim_values(chunk, now)
        found = store.fetchall(f"{_CLAIM_INSERT} VALUES {marks} {_CLAIM_CONFLICT}", params)
        granted |= {str(r[0]) for r in found}
    return granted


def _insert_claims(store: Store, table: Sequence[tuple[Any, ...]], now: object) -> None:
    """Insert new ``attempting`` rows (tuples in ``_CLAIM_COLUMNS`` order), no conflict."""
    with rows_table(store, _CLAIM_COLUMNS, table) as name:
        if name is not None:
            _insert_from(store, name, now)
            return
    for chunk in batched(table, 300):
        marks, params = _claim_values(chunk, now)
        store.execute(f"{_CLAIM_INSERT} VALUES {marks}", params)


def _insert_from(store: Store, name: str, now: object) -> None:
    """Insert the rows of the registered table ``name`` ``attempting``."""
    store.execute(
        f"{_CLAIM_INSERT} SELECT send_key, campaign, profile_id, address, "
        f"'attempting', message_id, 1, ?, ?, topic, priority FROM {name}",
        [now, now],
    )


def _claim_values(chunk: Sequence[tuple[Any, ...]], now: object) -> tuple[str, list[object]]:
    """The ``VALUES`` list and parameters inserting ``chunk`` ``attempting``."""
    marks = ", ".join("(?, ?, ?, ?, 'attempting', ?, 1, ?, ?, ?, ?)" for _ in chunk)
    params: list[object] = []
    for key, campaign, pid, stored, message_id, topic, priority in chunk:
        params += [key, campaign, pid, stored, message_id, now, now, topic, priority]
    return marks, params


def record_templates(store: Store, chosen: Mapping[str, str]) -> None:
    """Record the template of each row (send key → template) sent another than its own.

    A row's ``template`` is NULL when it is sent its campaign's (or journey step's)
    template; an experiment arm's or a template split's is recorded here, so ``Email
    Delivered`` and the KPIs by template name the one the recipient got.
    """
    by_template: dict[str, list[str]] = {}
    for key, template in chosen.items():
        by_template.setdefault(template, []).append(key)
    for template, keys in sorted(by_template.items()):
        for marks, chunk in in_lists(keys):
            store.execute(
                f"UPDATE sends SET template = ? WHERE send_key IN ({marks})", [template, *chunk]
            )


def sent_many_at(store: Store, rows: Sequence[tuple[str, datetime]]) -> None:
    """Mark many claimed rows of many campaigns ``sent``, each at its own instant.

    ``rows``: (send key, instant) pairs; the instant is the row's ``sent_at`` and
    ``updated_at`` (a journey's messages are each sent at the step's due instant). One
    statement for them all on DuckDB (pipelined statements elsewhere).
    """
    table = [(key, utcnow_naive(at)) for key, at in rows]
    with rows_table(store, ["send_key", "instant"], table) as name:
        if name is not None:
            store.execute(
                "UPDATE sends SET status = 'sent', reason = NULL, sent_at = k.instant, "
                f"updated_at = k.instant FROM {name} k WHERE sends.send_key = k.send_key"
            )
            return
    if table and store.dialect == "duckdb":  # a few rows: one statement all the same
        marks = ", ".join("(?, CAST(? AS TIMESTAMP))" for _ in table)
        store.execute(
            "UPDATE sends SET status = 'sent', reason = NULL, sent_at = k.instant, "
            f"updated_at = k.instant FROM (VALUES {marks}) k(send_key, instant) "
            "WHERE sends.send_key = k.send_key",
            [value for row in table for value in row],
        )
        return
    store.executemany(
        "UPDATE sends SET status = 'sent', reason = NULL, sent_at = ?, updated_at = ? "
        "WHERE send_key = ?",
        [(at, at, key) for key, at in table],
    )


_CLAIM_COLUMNS = (
    "send_key", "campaign", "profile_id", "address", "message_id", "topic", "priority"
)  # fmt: skip
_CLAIM_INSERT = (
    "INSERT INTO sends (send_key, campaign, profile_id, address, status, message_id, "
    "attempts, created_at, updated_at, topic, priority)"
)
_CLAIM_CONFLICT = (
    "ON CONFLICT (send_key) DO UPDATE SET status = 'attempting', "
    "address = excluded.address, message_id = excluded.message_id, "
    "attempts = sends.attempts + 1, reason = NULL, updated_at = excluded.updated_at "
    "WHERE sends.status NOT IN ('sent', 'uncertain', 'attempting') RETURNING send_key"
)


class SendLedger:
    """The ``sends`` rows of one campaign.

    Args:
        store: The store holding ``sends``.
        campaign: The campaign name.
        clock: Stamps ``created_at``, ``updated_at`` and ``sent_at``.
        topic: The consent topic recorded on new rows (frequency caps count by it).
        priority: The priority recorded on new rows.
    """

    def __init__(
        self,
        store: Store,
        campaign: str,
        clock: Clock,
        *,
        topic: str | None = None,
        priority: int | None = None,
    ) -> None:
        self.store = store
        self.campaign = campaign
        self.clock = clock
        self.topic = topic
        self.priority = priority

    def _now(self) -> object:
        return utcnow_naive(self.clock.now())

    def plan(self, profile_ids: Iterable[str]) -> int:
        """Add a ``pending`` row for each profile not in the ledger yet; return how many."""
        known = {r.profile_id for r in self.rows()}
        new = [p for p in dict.fromkeys(profile_ids) if p not in known]
        now = self._now()
        for chunk in batched(new, 400):
            marks = ", ".join("(?, ?, ?, 'pending', 0, ?, ?, ?, ?)" for _ in chunk)
            params: list[object] = []
            for pid in chunk:
                params += [send_key(self.campaign, pid), self.campaign, pid, now, now,
                           self.topic, self.priority]  # fmt: skip
            self.store.execute(
                "INSERT INTO sends (send_key, campaign, profile_id, status, attempts, "
                f"created_at, updated_at, topic, priority) VALUES {marks} "
                "ON CONFLICT DO NOTHING",
                params,
            )
        return len(new)

    def recover(self) -> int:
        """Turn rows left ``attempting`` by a dead run into ``uncertain``; return how many."""
        rows = self.store.fetchall(
            "UPDATE sends SET status = 'uncertain', reason = 'interrupted_in_transaction', "
            "updated_at = ? WHERE campaign = ? AND status = 'attempting' RETURNING send_key",
            [self._now(), self.campaign],
        )
        return len(rows)

    def rows(self) -> list[LedgerRow]:
        """Return every row of the campaign."""
        return [
            LedgerRow(*r)
            for r in self.store.fetchall(
                "SELECT profile_id, status, reason, message_id FROM sends WHERE campaign = ?",
                [self.campaign],
            )
        ]

    def taken_addresses(self) -> set[str]:
        """Return the (lower-cased) addresses already sent, held or uncertain in the store."""
        rows = self.store.fetchall(
            "SELECT profile_id, address FROM sends WHERE campaign = ? AND address IS NOT "
            "NULL AND status IN ('sent', 'uncertain', 'attempting')",
            [self.campaign],
        )
        privacy = getattr(self.store, "privacy", None)
        if privacy is not None:
            privacy.prepare(r[0] for r in rows)  # sealed addresses: one vault query
        return {str(open_address(self.store, r[1])).lower() for r in rows}

    def release_uncertain(self) -> int:
        """Make ``uncertain`` rows attemptable again (``--retry-uncertain``)."""
        rows = self.store.fetchall(
            "UPDATE sends SET status = 'pending', reason = NULL, updated_at = ? "
            "WHERE campaign = ? AND status = 'uncertain' RETURNING send_key",
            [self._now(), self.campaign],
        )
        return len(rows)

    def skip(self, skipped: Sequence[tuple[str, str]]) -> None:
        """Mark (profile_id, reason) pairs ``skipped``, in one transaction."""
        now = self._now()
        with self.store.transaction():
            for chunk in batched(skipped, 500):
                self.store.executemany(
                    "UPDATE sends SET status = 'skipped', reason = ?, updated_at = ? "
                    "WHERE send_key = ? AND status NOT IN ('sent', 'uncertain', 'attempting')",
                    [(reason, now, send_key(self.campaign, pid)) for pid, reason in chunk],
                )

    def claim(self, profile_id: str, address: str, message_id: str) -> bool:
        """Mark a row ``attempting`` (committed) before its SMTP transaction.

        Returns:
            False if the row is already sent, uncertain or held by another run.
        """
        rows = self.store.fetchall(
            "UPDATE sends SET status = 'attempting', address = ?, message_id = ?, "
            "attempts = attempts + 1, reason = NULL, updated_at = ? "
            "WHERE send_key = ? AND status NOT IN ('sent', 'uncertain', 'attempting') "
            "RETURNING send_key",
            [
                seal_address(self.store, profile_id, address),
                message_id,
                self._now(),
                send_key(self.campaign, profile_id),
            ],  # fmt: skip
        )
        return bool(rows)

    def sent(self, profile_id: str) -> None:
        """Mark a claimed row ``sent``."""
        now = self._now()
        self.store.execute(
            "UPDATE sends SET status = 'sent', reason = NULL, sent_at = ?, updated_at = ? "
            "WHERE send_key = ?",
            [now, now, send_key(self.campaign, profile_id)],
        )

    def sent_many(self, profile_ids: Sequence[str]) -> None:
        """Mark many claimed rows ``sent`` (one statement; per 500 rows off DuckDB)."""
        now = self._now()
        keys = [(send_key(self.campaign, p),) for p in profile_ids]
        with rows_table(self.store, ["send_key"], keys) as name:
            if name is not None:
                self.store.execute(
                    "UPDATE sends SET status = 'sent', reason = NULL, sent_at = ?, "
                    f"updated_at = ? FROM {name} k WHERE sends.send_key = k.send_key",
                    [now, now],
                )
                return
        for chunk in batched(profile_ids, 500):
            marks = ", ".join("?" for _ in chunk)
            self.store.execute(
                "UPDATE sends SET status = 'sent', reason = NULL, sent_at = ?, updated_at = ? "
                f"WHERE send_key IN ({marks})",
                [now, now, *(send_key(self.campaign, p) for p in chunk)],
            )

    def failed(self, profile_id: str, reason: str) -> None:
        """Mark a row ``failed`` with a machine-readable reason."""
        self.store.execute(
            "UPDATE sends SET status = 'failed', reason = ?, updated_at = ? WHERE send_key = ?",
            [reason, self._now(), send_key(self.campaign, profile_id)],
        )

    def bounced(self, bounce: Bounce) -> None:
        """Fail a claimed row with its hard bounce and suppress the address, atomically."""
        at = utcnow_naive(bounce.at)
        with self.store.transaction():
            suppress(self.store, bounce.address, "bounce", source=f"smtp:{self.campaign}",
                     at=bounce.at)  # fmt: skip
            self.store.execute(
                "UPDATE sends SET status = 'failed', reason = ?, bounced_at = ?, "
                "bounce_code = ?, bounce_announced = FALSE, updated_at = ? WHERE send_key = ?",
                [bounce.reason, at, bounce.code, self._now(),
                 send_key(self.campaign, bounce.profile_id)],
            )  # fmt: skip

    def unannounced_bounces(self) -> list[tuple[str, int | None, datetime]]:
        """Return hard bounces whose ``Email Bounced`` event was not yet submitted.

        Returns:
            (profile_id, SMTP code, bounced_at) tuples, oldest first.
        """
        rows = self.store.fetchall(
            "SELECT profile_id, bounce_code, bounced_at FROM sends WHERE campaign = ? "
            "AND bounced_at IS NOT NULL AND NOT coalesce(bounce_announced, FALSE) "
            "ORDER BY bounced_at, profile_id",
            [self.campaign],
        )
        out = []
        for pid, code, at in rows:
            when = from_store_time(at)
            assert when is not None
            out.append((pid, None if code is None else int(code), when))
        return out

    def bounces_announced(self, profile_ids: Sequence[str]) -> None:
        """Remember that ``Email Bounced`` was submitted for these rows."""
        for marks, chunk in in_lists(profile_ids):
            self.store.execute(
                f"UPDATE sends SET bounce_announced = TRUE WHERE send_key IN ({marks})",
                [send_key(self.campaign, p) for p in chunk],
            )

    def counts(self) -> dict[str, Counter[str]]:
        """Return, per status, the count of rows by reason (``""`` when none)."""
        out: dict[str, Counter[str]] = {}
        for status, reason, n in self.store.fetchall(
            "SELECT status, coalesce(reason, ''), count(*) FROM sends WHERE campaign = ? "
            "GROUP BY 1, 2",
            [self.campaign],
        ):
            out.setdefault(status, Counter())[reason] += int(n)
        return out

    def templates(self, chosen: Mapping[str, str]) -> None:
        """Record the template each profile is sent when it is not the campaign's own."""
        record_templates(self.store, {send_key(self.campaign, p): t for p, t in chosen.items()})

    def unannounced(self) -> list[UnannouncedRow]:
        """Return sent rows whose ``Email Delivered`` event was not yet submitted.

        Returns:
            (profile_id, message_id, address, sent_at, template) tuples; ``template`` is
            None when the row was sent the campaign's own.
        """
        return [
            (r[0], r[1], open_address(self.store, r[2]), r[3], r[4])
            for r in self.store.fetchall(
                "SELECT profile_id, message_id, address, sent_at, template FROM sends "
                "WHERE campaign = ? AND status = 'sent' AND NOT announced ORDER BY sent_at",
                [self.campaign],
            )
        ]

    def announced(self, profile_ids: Sequence[str]) -> None:
        """Remember that ``Email Delivered`` was submitted for these rows."""
        for chunk in batched(profile_ids, 500):
            marks = ", ".join("?" for _ in chunk)
            self.store.execute(
                f"UPDATE sends SET announced = TRUE WHERE send_key IN ({marks})",
                [send_key(self.campaign, p) for p in chunk],
            )

    def apply(
        self,
        claims: Sequence[tuple[str, str, str]],
        sent: Sequence[str],
        failed: Sequence[tuple[str, str]],
        bounces: Sequence[Bounce] = (),
    ) -> list[bool]:
        """Apply marks and claims in one transaction (one durable commit for them all).

        Args:
            claims: (profile_id, address, message_id) rows to claim.
            sent: Claimed rows the server accepted.
            failed: (profile_id, reason) rows that failed.
            bounces: Hard bounces to record (their addresses are suppressed).

        Returns:
            For each claim, whether it was granted.
        """
        with self.store.transaction():
            self.sent_many(sent)
            for pid, reason in failed:
                self.failed(pid, reason)
            for bounce in bounces:
                self.bounced(bounce)
            return [self.claim(*claim) for claim in claims]


class MemoryLedger(SendLedger):
    """A ledger for dry runs: starts from the real rows, keeps every change in memory.

    A dry run thus reports what a real run would do now (who was already sent, who would
    be skipped) without writing to the store.
    """

    def __init__(self, store: Store, campaign: str, clock: Clock) -> None:
        super().__init__(store, campaign, clock)
        self._rows = {r.profile_id: r for r in SendLedger.rows(self)}

    def _set(self, pid: str, status: str, reason: str | None, message_id: str | None) -> None:
        self._rows[pid] = LedgerRow(pid, status, reason, message_id)

    def plan(self, profile_ids: Iterable[str]) -> int:
        """Add pending rows in memory."""
        new = [p for p in dict.fromkeys(profile_ids) if p not in self._rows]
        for pid in new:
            self._set(pid, "pending", None, None)
        return len(new)

    def recover(self) -> int:
        """Count rows a real run would turn uncertain."""
        stuck = [r for r in self._rows.values() if r.status == "attempting"]
        for row in stuck:
            self._set(row.profile_id, "uncertain", "interrupted_in_transaction", row.message_id)
        return len(stuck)

    def rows(self) -> list[LedgerRow]:
        """Return the in-memory rows."""
        return list(self._rows.values())

    def release_uncertain(self) -> int:
        """Make uncertain rows pending, in memory."""
        rows = [r for r in self._rows.values() if r.status == "uncertain"]
        for row in rows:
            self._set(row.profile_id, "pending", None, row.message_id)
        return len(rows)

    def skip(self, skipped: Sequence[tuple[str, str]]) -> None:
        """Mark rows skipped in memory."""
        for pid, reason in skipped:
            if self._rows[pid].status not in FINAL:
                self._set(pid, "skipped", reason, None)

    def claim(self, profile_id: str, address: str, message_id: str) -> bool:
        """Claim a row in memory."""
        if self._rows[profile_id].status in FINAL:
            return False
        self._set(profile_id, "attempting", None, message_id)
        return True

    def sent(self, profile_id: str) -> None:
        """Mark a row sent in memory."""
        self._set(profile_id, "sent", None, self._rows[profile_id].message_id)

    def sent_many(self, profile_ids: Sequence[str]) -> None:
        """Mark rows sent in memory."""
        for pid in profile_ids:
            self.sent(pid)

    def failed(self, profile_id: str, reason: str) -> None:
        """Mark a row failed in memory."""
        self._set(profile_id, "failed", reason, self._rows[profile_id].message_id)

    def counts(self) -> dict[str, Counter[str]]:
        """Count the in-memory rows by status and reason."""
        out: dict[str, Counter[str]] = {}
        for row in self._rows.values():
            out.setdefault(row.status, Counter())[row.reason or ""] += 1
        return out

    def bounced(self, bounce: Bounce) -> None:
        """Fail the row in memory; a dry run suppresses nobody."""
        self.failed(bounce.profile_id, bounce.reason)

    def templates(self, chosen: Mapping[str, str]) -> None:
        """A dry run records nothing."""

    def unannounced(self) -> list[UnannouncedRow]:
        """A dry run announces nothing."""
        return []

    def unannounced_bounces(self) -> list[tuple[str, int | None, datetime]]:
        """A dry run announces nothing."""
        return []
