"""Intake's check against erased people: their identifiers come back only on purpose.

An erasure keeps a salted hash of each identifier the person had (``erased_subjects``).
A message carrying one of them (a re-import of an old CSV, a replayed stream) is
quarantined with that reason, its personal values already replaced by ``[erased]``, instead
of silently re-creating the person.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from segmint.intake.quarantine import quarantine_row
from segmint.intake.results import Submission

if TYPE_CHECKING:
    from segmint.privacy.protect import Privacy

REASON = "erased: this person asked to be forgotten (segmint privacy erase); not re-added"


def hold_back_erased(privacy: Privacy, submissions: Sequence[Submission]) -> int:
    """Move messages naming an erased person to quarantine; return how many."""
    rows = privacy.store.fetchall("SELECT hash FROM erased_subjects")
    if not rows:
        return 0
    erased = {r[0] for r in rows}
    held = 0
    names = privacy.names | set(privacy.identifiers) | {"userId"}
    for sub in submissions:
        kept, kept_ids = [], []
        for position, message in enumerate(sub.messages):
            if erased.isdisjoint(privacy.erased_hashes(message)):
                kept.append(message)
                if sub.replay_ids is not None:
                    kept_ids.append(sub.replay_ids[position])
                continue
            payload = redact(message.payload, names)
            sub.quarantine.append(
                quarantine_row(message.received_at, sub.source, payload, REASON, "traits")
            )
            held += 1
        sub.messages[:] = kept
        if sub.replay_ids is not None:
            sub.replay_ids[:] = kept_ids
    return held


def redact(value: Any, names: frozenset[str] | set[str]) -> Any:
    """``value`` with every key in ``names`` (at any depth) replaced by ``[erased]``."""
    if isinstance(value, dict):
        return {k: "[erased]" if k in names else redact(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, names) for v in value]
    return value
