"""The audit log: an append-only, hash-chained record of who did what to personal data.

Each entry's ``hash`` is SHA-256 over its position, its content and the previous entry's
hash, so editing an entry, removing one or swapping two breaks the chain from there on;
:func:`verify` walks it and names the first broken entry. The head (count and last hash) is
also kept in ``meta``; an entry cut from the end is found by comparing with it. Someone who
can rewrite the whole table and ``meta`` can rebuild a chain: copy the head that
``segmint audit verify`` prints somewhere else (a ticket, a commit) to anchor it.

Recorded: consent changes, erasures, exports, key events (enable, rotation), workspace
deploys, retention runs and admin API calls.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from segmint.privacy.errors import AuditChainBroken
from segmint.store import Store, read_meta, utcnow_naive, write_meta
from segmint.store.base import from_store_time

ACTIONS = (
    "api.admin", "consent.change", "consent.sync", "privacy.erase", "privacy.export",
    "privacy.key.enable", "privacy.key.rotate", "privacy.retention", "privacy.seal_existing",
    "quarantine.purge", "workspace.deploy",
)  # fmt: skip
"""The actions segmint writes to the log (``audit list --action`` suggests among them)."""

_GENESIS = "0" * 64
_HEAD = "audit_head"


@dataclass(frozen=True)
class AuditEntry:
    """One entry of the audit log."""

    id: int
    occurred_at: datetime
    actor: str
    action: str
    subject: str | None
    details: dict[str, Any]
    prev_hash: str | None
    hash: str | None


def _digest(position: int, entry: AuditEntry, prev: str) -> str:
    body = orjson.dumps(
        [position, entry.occurred_at.isoformat(), entry.actor, entry.action, entry.subject,
         entry.details, prev],
        option=orjson.OPT_SORT_KEYS,
    )  # fmt: skip
    return hashlib.sha256(body).hexdigest()


def _lock(store: Store) -> None:
    if store.dialect == "postgres":  # two servers appending must not fork the chain
        store.execute("LOCK TABLE audit_log IN EXCLUSIVE MODE")


def append(
    store: Store,
    action: str,
    *,
    actor: str,
    at: datetime,
    subject: str | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append one entry to the chain (in the caller's transaction, if any) and return it.

    Args:
        store: The store.
        action: What happened (``privacy.erase``, ``consent.change``, ``workspace.deploy``).
        actor: Who did it (``cli``, ``api:<key id>``, ``intake``).
        at: When.
        subject: Whom or what it concerns (a profile id, a receipt id); never plaintext PII.
        details: More, as JSON.
    """
    with store.transaction():
        _lock(store)
        count, prev = _head(store)
        entry = AuditEntry(0, utcnow_naive(at), actor, action, subject, details or {}, prev, None)
        digest = _digest(count + 1, entry, prev)
        rows = store.fetchall(
            "INSERT INTO audit_log (occurred_at, actor, action, subject, details, prev_hash, hash)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
            [entry.occurred_at, actor, action, subject, orjson.dumps(entry.details).decode(),
             prev, digest],
        )  # fmt: skip
        write_meta(store, _HEAD, f"{count + 1}:{digest}")
    return AuditEntry(int(rows[0][0]), entry.occurred_at, actor, action, subject,
                      entry.details, prev, digest)  # fmt: skip


def _head(store: Store) -> tuple[int, str]:
    head = read_meta(store, _HEAD)
    if head is None:
        return 0, _GENESIS
    count, _, digest = head.partition(":")
    return int(count), digest


def entries(
    store: Store,
    *,
    subject: str | Sequence[str] | None = None,
    action: str | None = None,
    actor: str | None = None,
    limit: int | None = None,
) -> list[AuditEntry]:
    """The chained entries in order: all, or those matching every filter given.

    Args:
        store: The store.
        subject: Only the entries about this subject (or any of these).
        action: Only the entries of this action (``privacy.erase``).
        actor: Only the entries by this actor (``cli``, ``api:<key id>``).
        limit: Only the newest ``limit`` matching entries (still oldest first); the query
            reads no more rows than that.
    """
    sql = (
        "SELECT id, occurred_at, actor, action, subject, details, prev_hash, hash "
        "FROM audit_log WHERE hash IS NOT NULL"
    )
    params: list[Any] = []
    if subject is not None and not isinstance(subject, str):
        sql += f" AND subject IN ({', '.join('?' for _ in subject) or 'NULL'})"
        params.extend(subject)
        subject = None
    for column, value in (("subject", subject), ("action", action), ("actor", actor)):
        if value is not None:
            sql += f" AND {column} = ?"
            params.append(value)
    if limit is None:
        rows = store.fetchall(sql + " ORDER BY id", params)
    else:
        # a limit past what a BIGINT holds is no limit (``--limit`` takes any count)
        cap = min(limit, 2**63 - 1)
        rows = store.fetchall(sql + " ORDER BY id DESC LIMIT ?", [*params, cap])[::-1]
    return [_entry(row) for row in rows]


def _entry(row: tuple[Any, ...]) -> AuditEntry:
    """An audit entry from its row."""
    rid, at, actor, action, subj, details, prev, digest = row
    parsed = orjson.loads(details) if isinstance(details, str | bytes) else details or {}
    when = from_store_time(at)
    assert when is not None
    return AuditEntry(int(rid), when.replace(tzinfo=None), actor, action, subj,
                      parsed, prev, digest)  # fmt: skip


def logged(store: Store, column: str) -> list[str]:
    """The distinct values of ``column`` (``action`` or ``actor``) in the log, sorted."""
    if column not in ("action", "actor"):
        raise ValueError(f"not a column listed by value: {column!r}")
    sql = f"SELECT DISTINCT {column} FROM audit_log WHERE hash IS NOT NULL"  # noqa: S608
    return sorted(str(a) for (a,) in store.fetchall(sql))


@dataclass(frozen=True)
class Verification:
    """What :func:`verify` found: the entries checked, the head and the problems."""

    entries: int
    head: str
    problems: list[str]

    @property
    def ok(self) -> bool:
        """Whether the chain verified."""
        return not self.problems


def check(store: Store) -> Verification:
    """Walk the chain and report every break (see :func:`verify`)."""
    problems: list[str] = []
    prev = _GENESIS
    chain = entries(store)
    for position, entry in enumerate(chain, start=1):
        if entry.prev_hash != prev:
            problems.append(
                f"entry {entry.id} ({entry.action}, position {position}) does not follow the "
                "entry before it: an entry was removed or reordered before it"
            )
        if _digest(position, entry, entry.prev_hash or "") != entry.hash:
            problems.append(
                f"entry {entry.id} ({entry.action}, position {position}) was edited: its "
                "content no longer matches its hash"
            )
        prev = entry.hash or ""
    count, head = _head(store)
    if count != len(chain) or (chain and head != prev):
        problems.append(
            f"the log holds {len(chain)} entries ending in {prev[:12]}, but its head says "
            f"{count} ending in {head[:12]}: entries were removed from the end or added "
            "outside segmint"
        )
    return Verification(len(chain), prev, problems)


def verify(store: Store) -> Verification:
    """Check the chain; raise if any entry was edited, removed or reordered.

    Raises:
        AuditChainBroken: With every break found, first first.
    """
    result = check(store)
    if result.problems:
        raise AuditChainBroken(
            f"the audit log is tampered with ({len(result.problems)} problems): "
            + result.problems[0],
            result.problems,
        )
    return result


def record_deploy(store: Store, workspace_file: Path, *, at: datetime, actor: str) -> bool:
    """Append a ``workspace.deploy`` entry if ``segmint.yaml`` changed since the last one.

    Returns:
        Whether an entry was appended (the file's SHA-256 differs from the last deploy's).
    """
    digest = hashlib.sha256(workspace_file.read_bytes()).hexdigest()
    if read_meta(store, "deployed_workspace") == digest:
        return False
    with store.transaction():
        append(store, "workspace.deploy", actor=actor, at=at, subject=workspace_file.name,
               details={"sha256": digest})  # fmt: skip
        write_meta(store, "deployed_workspace", digest)
    return True
