"""Importing consent from a CSV export (a CRM, a previous email tool).

Columns: ``topic`` (``*`` for all), ``status`` (``granted``/``denied``/``unsubscribed``, or
``true``/``false``/``yes``/``no``), one of ``profile_id``, ``user_id`` or ``email`` naming
the person, and optionally ``occurred_at`` (ISO 8601; the import time when absent, and
never later than it: a statement dated in the future would outrank every later one).

A row whose statement is recorded already (same person, topic, status and ``occurred_at``)
is counted as such and not recorded again, so importing a file twice, or a weekly export
that repeats last week's rows, adds nothing twice.

People are found by :func:`segmint.deliver.subjects.consent_subject` (merges followed, emails
in any case). A row for an email address no profile has yet is recorded for that address and
counts once a profile has it; a row naming nobody else is refused with the reason.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from segmint.clock import parse_instant
from segmint.config.model import ConsentDef
from segmint.deliver.consent import ALL_TOPICS, ConsentStatus, address_forms, check_topic
from segmint.deliver.errors import CampaignError
from segmint.deliver.subjects import (
    ConsentSubject,
    Erased,
    consent_subject,
    record_subject_consent,
)
from segmint.intake.errors import PersonRefError
from segmint.store import Store, utcnow_naive

_STATUS: dict[str, ConsentStatus] = {
    "granted": "granted",
    "true": "granted",
    "yes": "granted",
    "1": "granted",
    "denied": "denied",
    "false": "denied",
    "no": "denied",
    "0": "denied",
    "unsubscribed": "unsubscribed",
}


@dataclass
class ImportResult:
    """What a consent import did: rows recorded, already recorded, and refused (with why)."""

    recorded: int = 0
    already: int = 0
    refused: list[tuple[int, str]] = field(default_factory=list)


PERSON_COLUMNS = ("profile_id", "user_id", "email")
"""The columns that name a row's person (the first one given counts)."""


def import_consents_csv(
    store: Store,
    path: Path,
    consent: ConsentDef,
    *,
    source: str,
    at: datetime,
    erased: Erased | None = None,
) -> ImportResult:
    """Record the consent rows of a CSV file (see the module docstring).

    A row naming someone ``erased`` says so (:func:`consent_subject`) and is refused.

    Raises:
        CampaignError: If the header lacks ``status`` or every column naming a person
            (nothing is recorded: every row would be refused).
    """
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        _check_header(path, reader.fieldnames)
        return import_consents(store, reader, consent, source=source, at=at, erased=erased)


def _check_header(path: Path, found: Sequence[str] | None) -> None:
    columns = [c.strip() for c in found or ()]
    missing = [] if "status" in columns else ["status"]
    if not set(PERSON_COLUMNS) & set(columns):
        missing.insert(0, " or ".join(PERSON_COLUMNS))
    if missing:
        raise CampaignError(
            f"{path}: no {' and no '.join(missing)} column; a consent file has the columns "
            "profile_id|user_id|email, topic, status[, occurred_at] "
            f"(its header: {', '.join(columns) or 'none, the file is empty'})"
        )


def import_consents(
    store: Store,
    rows: Iterable[Mapping[str, str]],
    consent: ConsentDef,
    *,
    source: str,
    at: datetime,
    erased: Erased | None = None,
) -> ImportResult:
    """Record consent rows in one transaction; a bad row is refused, the others go in.

    Args:
        store: The store.
        rows: Mappings with the columns of the module docstring.
        consent: The workspace's consent settings (its topics).
        source: Recorded as each change's source (``import:<file>``).
        at: The time of changes whose row has no ``occurred_at``.
        erased: What to say of a person since erased (their row is refused, their address
            not kept again), as :func:`~segmint.deliver.subjects.consent_subject` takes it.
    """
    result = ImportResult()
    with store.transaction():
        for number, row in enumerate(rows, start=2):  # line 1 is the header
            try:
                subject, topic, status, when = _parse(store, row, consent, at, erased)
            except (CampaignError, PersonRefError, ValueError) as exc:
                result.refused.append((number, str(exc)))
                continue
            if _recorded(store, subject, topic, status, when):
                result.already += 1
                continue
            record_subject_consent(store, subject, topic, status, source=source, at=when)
            result.recorded += 1
    return result


def _parse(
    store: Store, row: Mapping[str, str], consent: ConsentDef, at: datetime, erased: Erased | None
) -> tuple[ConsentSubject, str, ConsentStatus, datetime]:
    topic = (row.get("topic") or ALL_TOPICS).strip()
    check_topic(consent, topic)
    status = _STATUS.get((row.get("status") or "").strip().lower())
    if status is None:
        raise CampaignError(f"status {row.get('status')!r} is not one of {sorted(_STATUS)}")
    when = parse_instant(row["occurred_at"]) if row.get("occurred_at") else at
    if when > at:
        raise CampaignError(
            f"occurred_at {row['occurred_at']!r} is later than the import's time "
            f"({at.isoformat(timespec='seconds')}): a statement dated then would not count "
            "until then and would outrank every one recorded before it meanwhile"
        )
    return _profile(store, row, erased), topic, status, when


def _recorded(
    store: Store, subject: ConsentSubject, topic: str, status: str, when: datetime
) -> bool:
    """Whether this very statement (person, topic, status, instant) is recorded already."""
    if subject.profile_id is not None:
        table, column, keys = "consents", "profile_id", [subject.profile_id]
    else:
        assert subject.address is not None
        table, column, keys = "address_consents", "address", address_forms(store, subject.address)
    marks = ", ".join("?" for _ in keys)
    return bool(store.fetchall(
        f"SELECT 1 FROM {table} WHERE {column} IN ({marks}) AND topic = ? AND status = ? "  # noqa: S608
        "AND occurred_at = ? LIMIT 1",
        [*keys, topic, status, utcnow_naive(when)],
    ))  # fmt: skip


def _profile(store: Store, row: Mapping[str, str], erased: Erased | None) -> ConsentSubject:
    for column in PERSON_COLUMNS:
        value = (row.get(column) or "").strip()
        if value:
            return consent_subject(store, f"{column}:{value}", field=column, erased=erased)
    raise CampaignError("a row needs a profile_id, user_id or email")
