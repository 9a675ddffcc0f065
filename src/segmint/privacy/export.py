"""Access and portability: everything held on one person, as one JSON document.

:func:`export_person` follows merges like erasure does, opens sealed values, and returns
``{"manifest": …, "profile": …, "identities": …, "events": …, "traits": …,
"memberships": …, "membership_changes": …, "consents": …, "sends": …, "journeys": …,
"quarantine": …}`` (quarantined messages naming any identity of the person, opened).
The manifest lists each section with its row count and SHA-256, so a recipient can check
the document is whole. Each export is recorded in the audit log.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson

from segmint.common import in_lists
from segmint.privacy import audit
from segmint.privacy.erase import subjects_of
from segmint.privacy.erased import person_profiles, resolve_living, unlinked_identities
from segmint.privacy.keys import is_sealed
from segmint.privacy.protect import Privacy
from segmint.profiles import decode_traits
from segmint.store import Store

SECTIONS: dict[str, tuple[str, str]] = {
    # section: (table, columns); every row whose profile_id is one of the person's
    "profiles": ("profiles", "profile_id, created_at, updated_at, merged_into"),
    "identities": ("identities", "kind, value, profile_id, first_seen_at"),
    "events": (
        "events",
        "message_id, type, event, profile_id, user_id, anonymous_id, timestamp, received_at, "
        "source, properties, traits, context",
    ),
    "memberships": ("memberships", "segment, profile_id, entered_at"),
    "membership_changes": (
        "membership_changes", "segment, profile_id, change, occurred_at, cause",
    ),
    "consents": ("consents", "profile_id, topic, status, source, occurred_at, event_id"),
    "sends": (
        "sends", "campaign, profile_id, address, status, reason, message_id, attempts, "
        "created_at, updated_at, sent_at, topic",
    ),
    "journeys": (
        "journey_instances", "journey, profile_id, entry, step, status, entered_at, exit_reason",
    ),
    "experiments": ("experiment_assignments", "experiment, profile_id, arm, assigned_at"),
}  # fmt: skip
_JSON = {"properties", "traits", "context", "cause"}
_ORDER = {"events": "timestamp, seq", "membership_changes": "id", "consents": "id"}


def export_person(
    privacy: Privacy, ref: str, *, at: datetime, actor: str = "cli"
) -> dict[str, Any]:
    """Everything held on the person ``ref`` names, with a manifest (see the module doc).

    Someone no profile holds (:func:`~segmint.privacy.erased.unlinked_identities`) gets
    the quarantined messages naming ``ref``; the manifest's ``profile_id`` is then None.

    Raises:
        UnknownPersonError: ``ref`` names nobody (the message says so when an erased
            person had that identifier).
        AmbiguousPersonError: ``ref`` names two people.
        MasterKeyError: The workspace seals PII but no master key is configured.
    """
    store = privacy.store
    privacy.require_key("exporting a person")
    unlinked = unlinked_identities(privacy, ref)
    root = None if unlinked else resolve_living(privacy, ref)
    profiles = [] if root is None else person_profiles(store, root)
    document: dict[str, Any] = {
        name: _rows(privacy, store, table, columns, profiles, _ORDER.get(name))
        for name, (table, columns) in SECTIONS.items()
    }
    traits = store.fetchall('SELECT "values" FROM trait_values WHERE profile_id = ?', [root])
    document["traits"] = privacy.unseal_values(decode_traits(traits[0][0])) if traits else {}
    document["quarantine"] = _quarantined(privacy, profiles, set(unlinked) if unlinked else None)
    sections = {
        name: {"rows": _size(value), "sha256": _digest(value)}
        for name, value in sorted(document.items())
    }
    manifest = {
        "profile_id": root,
        "profiles": profiles,
        "exported_at": at.isoformat(),
        "sealed_at_rest": privacy.encrypting,
        "sections": sections,
    }
    rows = {k: v["rows"] for k, v in sections.items()}
    audit.append(store, "privacy.export", actor=actor, at=at, subject=root,
                 details={"sections": rows})  # fmt: skip
    return {"manifest": manifest, **document}


def _rows(
    privacy: Privacy,
    store: Store,
    table: str,
    columns: str,
    profiles: Sequence[str],
    order: str | None,
) -> list[dict[str, Any]]:
    names = [c.strip() for c in columns.split(",")]
    out: list[dict[str, Any]] = []
    for marks, chunk in in_lists(list(profiles)):
        sql = f"SELECT {columns} FROM {table} WHERE profile_id IN ({marks})"  # noqa: S608
        for row in store.fetchall(sql + (f" ORDER BY {order}" if order else ""), list(chunk)):
            out.append({n: _value(privacy, n, v) for n, v in zip(names, row, strict=True)})
    return out


def _value(privacy: Privacy, name: str, value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if is_sealed(value):
        return privacy.unseal(value)  # sends.address
    if name in _JSON and value is not None:
        parsed = orjson.loads(value) if isinstance(value, str | bytes) else value
        if isinstance(parsed, dict):
            parsed = privacy.unseal_values(parsed)
            inner = parsed.get("traits")
            if name == "context" and isinstance(inner, dict):
                parsed = {**parsed, "traits": privacy.unseal_values(inner)}
        return parsed
    return value


def _quarantined(
    privacy: Privacy, profiles: Sequence[str], found: set[tuple[str, str]] | None
) -> list[dict[str, Any]]:
    """The person's quarantined messages (found by their identities), payloads opened.

    ``found``: their identities when no profile holds them (else read from the profiles).
    """
    from dataclasses import asdict

    from segmint.intake.quarantine import about_subjects, list_quarantine

    ids = about_subjects(privacy.store, subjects_of(privacy, profiles, found))
    items = list_quarantine(privacy.store, include_replayed=True, ids=ids) if ids else []
    return [{k: _value(privacy, k, v) for k, v in asdict(i).items()} for i in items]


def _size(value: Any) -> int:
    return len(value) if isinstance(value, list | dict) else 1


def _digest(value: Any) -> str:
    body = orjson.dumps(value, option=orjson.OPT_SORT_KEYS, default=str)
    return hashlib.sha256(body).hexdigest()
