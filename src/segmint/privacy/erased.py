"""What is kept of erased people, and finding them again.

An erasure (:mod:`segmint.privacy.erase`) leaves a receipt (``erasure_receipts``), a salted
hash of each of the person's ids (``erased_subjects``) and, until the vault has destroyed
them, the names of the keys it is to destroy (``erasure_keys``). This module reads them:

- :func:`resolve_living` and :func:`erased_note` say when an id typed names someone erased,
  :func:`erasure_receipt` gives that erasure's receipt, :func:`audit_subjects` what the
  audit log names them by;
- :func:`finish_erasures` destroys the keys of an erasure whose process stopped between the
  store's commit and the vault's delete (every erasure and every opening of the vault runs
  it), :func:`destroy_keys` the keys of one erasure;
- :func:`unlinked_identities` finds someone no profile holds (named only by quarantined
  messages or an address's consent or suppression), whom erasure and export take too.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson

from segmint.intake.errors import AmbiguousPersonError, UnknownPersonError
from segmint.intake.identifiers import identifier_value
from segmint.intake.identity import (
    ANONYMOUS,
    PROFILE,
    USER,
    merge_roots,
    resolve_person,
    split_ref,
)
from segmint.intake.quarantine import about_subjects
from segmint.privacy import audit
from segmint.privacy.errors import MasterKeyError
from segmint.privacy.protect import Privacy
from segmint.privacy.subjects import all_subject_names
from segmint.store import Store


def person_profiles(store: Store, profile_id: str) -> list[str]:
    """``profile_id`` and every profile merged into it (chains followed)."""
    merged = [gone for gone, root in merge_roots(store).items() if root == profile_id]
    return [profile_id, *sorted(merged)]


def unlinked_identities(privacy: Privacy, ref: str) -> list[tuple[str, str]]:
    """The identities ``ref`` may be that name someone no profile holds, or none.

    Someone whose every message failed validation is named only by quarantined messages;
    an address consented to or suppressed before any profile had it, only by those rows.
    None when ``ref`` names a person (erased too), or nothing is held under it.
    """
    try:
        resolve_person(privacy.store, ref, privacy.identifiers)
    except AmbiguousPersonError:
        return []  # people hold it: the resolver's error is the caller's to raise
    except UnknownPersonError:
        if _erased_receipt(privacy, ref) is not None:
            return []
    else:
        return []
    kind, value = split_ref(ref, privacy.identifiers)
    kinds = [kind] if kind is not None else [USER, *privacy.identifiers, ANONYMOUS]
    found = []
    for each in dict.fromkeys(k for k in kinds if k != PROFILE):
        text = value if each in (USER, ANONYMOUS) else identifier_value(each, value)
        if text and _held_unlinked(privacy, each, text):
            found.append((each, text))
    return found


def _held_unlinked(privacy: Privacy, kind: str, value: str) -> bool:
    """Whether a quarantined message names the identity, or (an email) an address row."""
    if about_subjects(privacy.store, all_subject_names(privacy, [(kind, value)])):
        return True
    if kind != "email" or "@" not in value:
        return False
    keys = sorted({privacy.address_key(value), value})
    return any(
        privacy.store.fetchall(
            f"SELECT 1 FROM {table} WHERE address IN (?, ?) LIMIT 1",  # noqa: S608
            [keys[0], keys[-1]],
        )  # fmt: skip
        for table in ("address_consents", "suppressions")
    )


def finish_erasures(privacy: Privacy) -> dict[str, int]:
    """Destroy the keys of erasures that stopped after their store commit.

    An erasure lists the vault keys it is to destroy in its store transaction and deletes
    the list once they are destroyed; what is still listed belongs to an erasure whose
    process stopped (crash, kill, a vault error) in between. Safe to run at any time, and
    from two processes at once: destroying a key twice destroys it once.

    Returns:
        The keys destroyed (those the vault still held) by receipt id, for every erasure
        finished now; empty without a master key (the keys wait for it).
    """
    if privacy.keyring is None:
        return {}
    pending: dict[str, list[str]] = {}
    rows = privacy.store.fetchall(
        "SELECT receipt_id, key_name FROM erasure_keys ORDER BY receipt_id, key_name"
    )
    for receipt_id, name in rows:
        pending.setdefault(str(receipt_id), []).append(str(name))
    return {rid: destroy_keys(privacy, rid, names) for rid, names in pending.items()}


def destroy_keys(privacy: Privacy, receipt_id: str, names: Sequence[str]) -> int:
    """Destroy the vault keys ``names``, then strike them off the erasure's list.

    The stored receipt, written before they went, then counts them.
    """
    if privacy.keyring is None:
        return 0
    destroyed = privacy.keyring.destroy(names)
    store = privacy.store
    with store.transaction():
        found = _stored_receipt(store, receipt_id)
        if destroyed and found is not None:
            found["keys_destroyed"] = int(found.get("keys_destroyed") or 0) + destroyed
            store.execute("UPDATE erasure_receipts SET receipt = ? WHERE receipt_id = ?",
                          [orjson.dumps(found).decode(), receipt_id])  # fmt: skip
        store.execute("DELETE FROM erasure_keys WHERE receipt_id = ?", [receipt_id])
    return destroyed


def _stored_receipt(store: Store, receipt_id: str) -> dict[str, Any] | None:
    """The receipt ``erasure_receipts`` keeps under ``receipt_id``, or None."""
    rows = store.fetchall("SELECT receipt FROM erasure_receipts WHERE receipt_id = ?",
                          [receipt_id])  # fmt: skip
    if not rows:
        return None
    raw = rows[0][0]
    return dict(orjson.loads(raw) if isinstance(raw, str | bytes) else raw)


def erasure_receipt(privacy: Privacy, ref: str) -> dict[str, Any] | None:
    """The receipt of the erasure of the person ``ref`` names, or None (not erased).

    As :func:`erase` answered it: with ``profile_id`` (from the erasure's audit entry, when
    it names it) and the keys destroyed since.
    """
    found = _erased_receipt(privacy, ref)
    if found is None:
        return None
    kept = _stored_receipt(privacy.store, found[0]) or {"receipt_id": found[0]}
    ids = _erased_profiles(privacy.store, found[0])
    return {"profile_id": ids[0], **kept} if ids else kept


def _erased_profiles(store: Store, receipt_id: str) -> list[str]:
    """The profile ids the erasure ``receipt_id`` erased, the person's own first.

    Its audit entry names them (erasures recorded before it did: none).
    """
    rows = audit.entries(store, subject=receipt_id, action="privacy.erase", limit=1)
    return [str(p) for e in rows for p in e.details.get("profile_ids", [])]


def resolve_living(privacy: Privacy, ref: str, *, field: str | None = None) -> str:
    """:func:`~segmint.intake.identity.resolve_person`, saying when ``ref`` was erased.

    Raises:
        UnknownPersonError: Nobody matches; when an erased person had that identifier,
            the message says when and names the receipt (erasing twice is no mystery); when
            ``ref`` may be a sealed identifier (an email) and the master key is missing, it
            says that the key is needed to find it.
        AmbiguousPersonError: ``ref`` names two people.
    """
    try:
        return resolve_person(privacy.store, ref, privacy.identifiers, field=field)
    except UnknownPersonError as exc:
        message = erased_note(privacy, ref) or _keyless_note(privacy, ref, exc)
        if message is None:
            raise
        raise UnknownPersonError(ref, message, field) from exc


def audit_subjects(privacy: Privacy, ref: str) -> list[str]:
    """What the audit log names the person ``ref`` by, with ``ref`` itself first.

    The log never names a person by an identifier: their profile ids (those merged into
    theirs too) and, once they are erased, the erasure's receipt id and the profile ids it
    erased. ``ref`` naming nobody (a receipt id, a file name) is taken as it is.

    Raises:
        AmbiguousPersonError: ``ref`` names two people.
        UnknownPersonError: ``ref`` may be a sealed identifier (an email) and the master key
            that finds it is missing.
    """
    store = privacy.store
    try:
        root = resolve_person(store, ref, privacy.identifiers)
    except UnknownPersonError as exc:
        found = _erased_receipt(privacy, ref)
        if found is None:
            keyless = _keyless_note(privacy, ref, exc)
            if keyless is not None:
                raise UnknownPersonError(ref, keyless) from exc
            return [ref]
        return list(dict.fromkeys([ref, found[0], *_erased_profiles(store, found[0])]))
    return list(dict.fromkeys([ref, *person_profiles(store, root)]))


def _keyless_note(privacy: Privacy, ref: str, exc: UnknownPersonError) -> str | None:
    """Why an email was not found in a sealed workspace whose key is missing, or None.

    Its identities are keyed hashes then: without the key no address matches any of them.
    """
    kind, value = split_ref(ref, privacy.identifiers)
    if (kind or ("email" if "@" in value else None)) not in privacy.names:
        return None
    try:
        privacy.require_key("finding a person by a sealed identifier")
    except MasterKeyError as missing:
        return f"{exc}; {missing}"
    return None


def erased_note(privacy: Privacy, ref: str) -> str | None:
    """What to tell a person who names someone erased (when, which receipt), or None.

    For a command that looks ``ref`` up its own way and found nobody.
    """
    found = _erased_receipt(privacy, ref)
    if found is None:
        return None
    receipt_id, erased_at = found
    return (f"{ref!r} was erased on {erased_at:%Y-%m-%d %H:%M} UTC (receipt {receipt_id}): "
            "nothing is held on them any more")  # fmt: skip


def _erased_receipt(privacy: Privacy, ref: str) -> tuple[str, datetime] | None:
    if not privacy.has_salt():  # no erasure ever hashed a subject
        return None
    kind, value = split_ref(ref, privacy.identifiers)
    kinds = [kind] if kind is not None else [PROFILE, USER, *privacy.identifiers]
    hashes = []
    for each in kinds:
        text = identifier_value(each, value) if each not in (USER, PROFILE) else value
        if text:
            hashes.append(privacy.subject_hash(each, text))
    if not hashes:
        return None
    marks = ", ".join("?" for _ in hashes)
    rows = privacy.store.fetchall(
        f"SELECT receipt_id, erased_at FROM erased_subjects WHERE hash IN ({marks}) "  # noqa: S608
        "ORDER BY erased_at DESC LIMIT 1",
        hashes,
    )
    return (str(rows[0][0]), rows[0][1]) if rows else None


__all__ = [
    "audit_subjects",
    "destroy_keys",
    "erased_note",
    "erasure_receipt",
    "finish_erasures",
    "person_profiles",
    "resolve_living",
    "unlinked_identities",
]
