"""Erasure (the right to be forgotten): crypto-shred a person, delete what names them.

:func:`erase` resolves the id typed (following merges: every profile merged into the
person goes too), then in one store transaction:

- deletes events, identities, trait values and state, memberships, the schedule, consents,
  journey instances, experiment assignments, identity conflicts, merges and failures;
- anonymises what keeps aggregate counts: send ledger rows (profile id and address gone,
  status and campaign kept), membership changes, journey history and attributions;
- deletes the quarantined messages naming any identity of the person, and their queued
  webhook deliveries (delivered ones keep their row, with an empty payload);
- keeps a salted hash of each identifier (``erased_subjects``) so a later import of the same
  address is held back (:mod:`segmint.privacy.guard`), and a receipt without personal data;
- appends an ``privacy.erase`` entry to the audit log;

and finally destroys the profiles' data keys in the vault, and the subject keys of every
identity of the person (:mod:`segmint.privacy.subjects`: what quarantined payloads naming
them are sealed under). A copy of the store taken before the erasure then holds only
ciphertext for that person (with a master key configured: see
:mod:`segmint.privacy.keys`).

The store and the vault commit apart, so the names of the keys to destroy are written in
the store transaction (``erasure_keys``) and deleted once the vault has destroyed them. A
process stopped between the two leaves them listed:
:func:`~segmint.privacy.erased.finish_erasures` destroys them, and runs at the start of
every erasure and whenever a workspace opens its vault
(:attr:`segmint.workspace.Workspace.privacy`), so no key outlives its receipt for longer
than until the next command. What is kept of the erased, and finding them again, is
:mod:`segmint.privacy.erased`.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from segmint.common import in_lists
from segmint.intake.identity import PROFILE, USER
from segmint.intake.quarantine import about_subjects
from segmint.privacy import audit
from segmint.privacy.erased import (
    destroy_keys,
    finish_erasures,
    person_profiles,
    resolve_living,
    unlinked_identities,
)
from segmint.privacy.keys import is_sealed
from segmint.privacy.protect import Privacy
from segmint.privacy.subjects import all_subject_names
from segmint.store import Store, utcnow_naive
from segmint.store.base import table_exists

ERASED_ID = "erased"
"""The profile id anonymised rows carry after an erasure."""

_DELETE = (
    ("events", "profile_id"),
    ("identities", "profile_id"),
    ("trait_values", "profile_id"),
    ("trait_state", "profile_id"),
    ("memberships", "profile_id"),
    ("schedule", "profile_id"),
    ("consents", "profile_id"),
    ("journey_instances", "profile_id"),
    ("experiment_assignments", "profile_id"),
    ("realtime_failures", "profile_id"),
    ("identity_conflicts", "owner_profile"),
    ("identity_conflicts", "claimant_profile"),
    ("profile_merges", "from_profile"),
    ("profile_merges", "into_profile"),
    ("profiles", "profile_id"),
    ("profile_traits", "profile_id"),  # the batch refresh's wide table, when it exists
)


@dataclass(frozen=True)
class Receipt:
    """What an erasure did, without personal data: kept in ``erasure_receipts``."""

    receipt_id: str
    erased_at: datetime
    profiles: int
    keys_destroyed: int
    deleted: dict[str, int]
    anonymised: dict[str, int]
    suppressed: int
    encrypted: bool

    def as_dict(self) -> dict[str, Any]:
        """The receipt as JSON-ready data."""
        return {
            "receipt_id": self.receipt_id,
            "erased_at": self.erased_at.isoformat(),
            "profiles": self.profiles,
            "keys_destroyed": self.keys_destroyed,
            "deleted": self.deleted,
            "anonymised": self.anonymised,
            "identifiers_suppressed": self.suppressed,
            "crypto_shredded": self.encrypted,
        }


def erase(
    privacy: Privacy, ref: str, *, at: datetime, actor: str = "cli"
) -> tuple[str | None, Receipt]:
    """Erase the person ``ref`` names; return the surviving profile id and the receipt.

    Someone no profile holds (:func:`unlinked_identities`: named only by quarantined
    messages or an address's consent or suppression) is erased too: the profile id is then
    None, and what names them goes.

    Raises:
        UnknownPersonError: ``ref`` names nobody (also after an erasure: the person is gone).
        AmbiguousPersonError: ``ref`` names two people.
        MasterKeyError: The workspace seals PII but no master key is configured (the
            person's keys could not be destroyed nor their sealed identifiers read).
    """
    store = privacy.store
    privacy.require_key("erasing a person")
    finish_erasures(privacy)
    unlinked = unlinked_identities(privacy, ref)
    root = None if unlinked else resolve_living(privacy, ref)
    profiles = [] if root is None else person_profiles(store, root)
    found = set(unlinked) if root is None else identifiers_of(privacy, profiles)
    subjects = subjects_of(privacy, profiles, found)
    hashes = {privacy.subject_hash(kind, value) for kind, value in found}
    # the profile ids too: naming one again says when it was erased (held back: nothing)
    gone = {privacy.subject_hash(PROFILE, pid) for pid in profiles} - hashes
    # suppressions and address consents are kept by address_key (a keyed hash when on)
    # and plaintext, for rows written before encryption was enabled
    emails = [v for k, v in found if k == "email"]
    addresses = sorted({privacy.address_key(v) for v in emails} | set(emails))
    receipt_id = "er_" + secrets.token_hex(8)
    when = utcnow_naive(at)
    # the profiles' keys, and their identities' subject keys
    keys = [*profiles, *(s for s in subjects if s.startswith("s_"))]
    with store.transaction():
        _lock_profiles(store, profiles)
        deleted = _anonymise_and_delete(store, profiles)
        anonymised = deleted.pop("_anonymised")
        deleted["quarantine"] = _delete_quarantined(store, subjects)
        deleted["webhook_outbox"], anonymised["webhook_outbox"] = _drop_webhooks(store, profiles)
        for table in ("address_consents", "suppressions"):
            deleted[table] = 0
            for marks, chunk in in_lists(addresses):
                deleted[table] += _delete(store, table, "address", marks, list(chunk))
        store.executemany(
            "INSERT INTO erased_subjects (hash, receipt_id, erased_at) VALUES (?, ?, ?) "
            "ON CONFLICT (hash) DO NOTHING",
            [(h, receipt_id, when) for h in sorted(hashes | gone)],
        )
        receipt = Receipt(receipt_id, at, len(profiles), 0, deleted, anonymised, len(hashes),
                          privacy.encrypting)  # fmt: skip
        store.execute(
            "INSERT INTO erasure_receipts (receipt_id, erased_at, receipt) VALUES (?, ?, ?)",
            [receipt_id, when, orjson.dumps(receipt.as_dict()).decode()],
        )
        details = {"profiles": len(profiles), "rows": sum(deleted.values()),
                   "profile_ids": profiles}  # fmt: skip
        audit.append(store, "privacy.erase", actor=actor, at=at, subject=receipt_id,
                     details=details)  # fmt: skip
        if privacy.keyring is not None:
            store.executemany(
                "INSERT INTO erasure_keys (receipt_id, key_name) VALUES (?, ?)",
                [(receipt_id, name) for name in dict.fromkeys(keys)],
            )
    destroyed = destroy_keys(privacy, receipt_id, keys)
    return root, Receipt(**{**receipt.__dict__, "keys_destroyed": destroyed})


def _lock_profiles(store: Store, profiles: Sequence[str]) -> None:
    """Hold off real-time writes for the profiles before deleting anything of theirs.

    PostgreSQL: lock them. A real-time engine writing their memberships, changes, schedule
    or trait state locks them too (:func:`segmint.membership.live.lock_profiles`, shared):
    it writes before the erasure, which then deletes what it wrote, or after, finds them
    gone and writes nothing. DuckDB: writers commit one at a time; the store's erasure
    hint moves now, inside this transaction, so an engine's next write checks its profiles
    (:meth:`segmint.store.duckdb.DuckDBStore.erasure_hint`).
    """
    note = getattr(store, "note_erasure", None)
    if note is not None:
        note()
    if store.dialect == "postgres":
        store.fetchall(
            "SELECT profile_id FROM profiles WHERE profile_id = ANY(?) "
            "ORDER BY profile_id FOR UPDATE",
            [sorted(profiles)],
        )


def identifiers_of(privacy: Privacy, profiles: Sequence[str]) -> set[tuple[str, str]]:
    """Every identifier (kind, plaintext value) the profiles have, read before anything goes."""
    store = privacy.store
    found: set[tuple[str, str]] = set()
    kinds = set(privacy.identifiers)
    for marks, chunk in in_lists(list(profiles)):
        for kind, value in store.fetchall(
            f"SELECT kind, value FROM identities WHERE profile_id IN ({marks})", list(chunk)
        ):
            if kind == USER or (kind in kinds and not str(value).startswith("bi:")):
                found.add((kind, str(value)))
        # identifiers kept hashed (PII encryption) are read back from the identify calls
        for (raw,) in store.fetchall(
            f"SELECT traits FROM events WHERE profile_id IN ({marks}) AND type = 'identify'",
            list(chunk),
        ):
            traits = orjson.loads(raw) if isinstance(raw, str | bytes) else raw or {}
            for kind in kinds & set(traits):
                value = privacy.unseal(traits[kind]) if is_sealed(traits[kind]) else traits[kind]
                if isinstance(value, str) and value.strip() and value != "[erased]":
                    found.add((kind, value.strip().lower() if kind == "email" else value))
    return found


def _identities(store: Store, profiles: Sequence[str]) -> set[tuple[str, str]]:
    """Every identity of the profiles as ``identities`` keeps it (emails maybe hashed)."""
    found: set[tuple[str, str]] = set()
    for marks, chunk in in_lists(list(profiles)):
        sql = f"SELECT kind, value FROM identities WHERE profile_id IN ({marks})"
        found.update((str(k), str(v)) for k, v in store.fetchall(sql, list(chunk)))
    return found


def subjects_of(
    privacy: Privacy, profiles: Sequence[str], found: set[tuple[str, str]] | None = None
) -> list[str]:
    """The subject names of every identity of the profiles (see :mod:`.subjects`).

    ``found`` is :func:`identifiers_of` when the caller has it already.
    """
    known = found if found is not None else identifiers_of(privacy, profiles)
    return all_subject_names(privacy, _identities(privacy.store, profiles) | known)


def _delete_quarantined(store: Store, subjects: Sequence[str]) -> int:
    """Delete the quarantined messages naming any of ``subjects``; return how many."""
    ids = about_subjects(store, subjects)
    for marks, chunk in in_lists(ids):
        store.execute(f"DELETE FROM quarantine WHERE id IN ({marks})", list(chunk))  # noqa: S608
    return len(ids)


def _drop_webhooks(store: Store, profiles: Sequence[str]) -> tuple[int, int]:
    """Drop the person's queued webhook deliveries; empty the payloads of delivered ones.

    A payload names its profile: sealed (``enc:<profile>:…``) or in its JSON body.
    """
    patterns = [p for pid in profiles for p in (f"enc:{pid}:%", f'%"profile_id":"{pid}"%')]
    dropped = emptied = 0
    for start in range(0, len(patterns), 100):
        part = patterns[start : start + 100]
        where = "(" + " OR ".join("payload LIKE ?" for _ in part) + ")"
        dropped += len(store.fetchall(
            f"DELETE FROM webhook_outbox WHERE status <> 'delivered' AND {where} RETURNING 1",  # noqa: S608
            part,
        ))  # fmt: skip
        emptied += len(store.fetchall(
            f"UPDATE webhook_outbox SET payload = '{{}}' WHERE {where} RETURNING 1",  # noqa: S608
            part,
        ))  # fmt: skip
    return dropped, emptied


def _anonymise_and_delete(store: Store, profiles: Sequence[str]) -> dict[str, Any]:
    deleted: dict[str, int] = {}
    anonymised: dict[str, int] = {}
    ids = list(profiles)
    for marks, chunk in in_lists(ids):
        params = list(chunk)
        anonymised["sends"] = anonymised.get("sends", 0) + _anonymise_sends(store, marks, params)
        for table, column, sets in (
            ("membership_changes", "profile_id", "profile_id = ?, cause = NULL"),
            ("attributions", "profile_id", "profile_id = ?"),
        ):
            sql = f"UPDATE {table} SET {sets} WHERE {column} IN ({marks}) RETURNING 1"  # noqa: S608
            n = len(store.fetchall(sql, [ERASED_ID, *params]))
            anonymised[table] = anonymised.get(table, 0) + n
        instances = [
            r[0]
            for r in store.fetchall(
                f"SELECT instance_id FROM journey_instances WHERE profile_id IN ({marks})",
                params,
            )
        ]
        for imarks, ichunk in in_lists(instances):
            store.execute(
                f"UPDATE journey_history SET instance_id = ? WHERE instance_id IN ({imarks})",
                [ERASED_ID, *ichunk],
            )
        anonymised["journey_history"] = anonymised.get("journey_history", 0) + len(instances)
        for table, column in _DELETE:
            if table == "profile_traits" and not table_exists(store, table):
                continue
            n = _delete(store, table, column, marks, params)
            deleted[table] = deleted.get(table, 0) + n
    return {**deleted, "_anonymised": anonymised}


def _delete(store: Store, table: str, column: str, marks: str, params: list[str]) -> int:
    """Delete the rows whose ``column`` is one of ``params``; return how many (one pass)."""
    sql = f"DELETE FROM {table} WHERE {column} IN ({marks}) RETURNING 1"  # noqa: S608
    return len(store.fetchall(sql, params))


def _anonymise_sends(store: Store, marks: str, params: list[str]) -> int:
    keys = store.fetchall(f"SELECT send_key FROM sends WHERE profile_id IN ({marks})", params)
    # the ledger key names the profile: each row gets an opaque one; counts stay
    store.executemany(
        "UPDATE sends SET send_key = ?, profile_id = ?, address = NULL WHERE send_key = ?",
        [(f"{ERASED_ID}:{secrets.token_hex(8)}", ERASED_ID, k) for (k,) in keys],
    )
    return len(keys)


__all__ = [
    "ERASED_ID",
    "Receipt",
    "erase",
    "identifiers_of",
    "subjects_of",
]
