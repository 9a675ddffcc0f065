"""Deterministic, sticky, recorded assignment of profiles to experiment arms.

A profile's bucket in an experiment is a number in [0, 1) read from
``sha256("<experiment>:<profile_id>")``; the arms cut [0, 1) in order by their weights.
The same profile always lands in the same arm of the same experiment, on every machine and
every run, and different experiments split independently (the name salts the hash).

The first assignment is recorded in ``experiment_assignments`` and wins from then on: if
the weights change later, profiles already assigned keep their arm (sticky). Merges are
followed: a survivor without an arm of its own takes the arm of a profile merged into it.

The **global holdout** is the bucket of experiment :data:`GLOBAL_HOLDOUT` below the
workspace's ``measure.global_holdout_percent``: those profiles get no marketing at all (the
consent gate skips them with reason ``global_holdout``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from datetime import datetime

from segmint.common import batched
from segmint.config.measure import GLOBAL_HOLDOUT as GLOBAL_HOLDOUT  # its experiment name
from segmint.config.measure import VariantDef
from segmint.intake.identity import merge_roots
from segmint.store import Store, utcnow_naive


def bucket(experiment: str, profile_id: str) -> float:
    """Return the profile's position in [0, 1) for ``experiment`` (uniform, deterministic)."""
    digest = hashlib.sha256(f"{experiment}:{profile_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def arm_at(position: float, variants: Sequence[VariantDef]) -> str:
    """Return the arm whose share of [0, 1), cut in order by weight, holds ``position``."""
    total = sum(v.weight for v in variants)
    edge = 0.0
    for variant in variants:
        edge += variant.weight / total
        if position < edge:
            return variant.name
    return variants[-1].name  # rounding at the top edge


def in_global_holdout(profile_id: str, percent: float) -> bool:
    """Return whether the profile is in the workspace-wide holdout of ``percent`` %."""
    return percent > 0 and bucket(GLOBAL_HOLDOUT, profile_id) < percent / 100.0


def recorded(store: Store, experiment: str, profile_ids: Sequence[str]) -> dict[str, str]:
    """Return the recorded arms of these profiles in ``experiment``.

    A profile without one of its own takes the arm recorded first for a profile merged
    into it (the person keeps the arm they were shown).
    """
    wanted = set(profile_ids)
    rows = store.fetchall(
        "SELECT profile_id, arm FROM experiment_assignments WHERE experiment = ? "
        "ORDER BY assigned_at DESC, profile_id DESC",
        [experiment],
    )  # one read of the experiment: cheaper than IN lists for a campaign's audience
    own = {pid: arm for pid, arm in rows if pid in wanted}
    if len(own) == len(wanted):
        return own
    roots = merge_roots(store)
    inherited = {roots[pid]: arm for pid, arm in rows if pid in roots}  # earliest wins
    return {**{p: inherited[p] for p in wanted if p in inherited}, **own}


def assign(
    store: Store,
    experiment: str,
    variants: Sequence[VariantDef],
    profile_ids: Iterable[str],
    as_of: datetime,
    *,
    record: bool = True,
    winner: str | None = None,
) -> dict[str, str]:
    """Return each profile's arm: the recorded one, else a new one (recorded if ``record``).

    Once the experiment has a ``winner``, profiles not assigned yet get it, unrecorded:
    they are the rest of the audience, not part of the test.

    Args:
        store: Holds ``experiment_assignments``.
        experiment: The experiment's name (salts the hash).
        variants: Its arms, in order.
        profile_ids: The profiles to assign.
        as_of: Stamped on new assignments.
        record: Write new assignments (False for a dry run: same arms, nothing written).
        winner: The experiment's recorded winner, if it has one.
    """
    ids = list(dict.fromkeys(profile_ids))
    arms = recorded(store, experiment, ids)
    if winner is not None:
        return {pid: arms.get(pid, winner) for pid in ids}
    new = [(pid, arm_at(bucket(experiment, pid), variants)) for pid in ids if pid not in arms]
    arms.update(new)
    if record and new:
        at = utcnow_naive(as_of)
        with store.transaction():
            for chunk in batched(new, 400):
                marks = ", ".join("(?, ?, ?, ?)" for _ in chunk)
                params: list[object] = []
                for pid, arm in chunk:
                    params += [experiment, pid, arm, at]
                store.execute(
                    "INSERT INTO experiment_assignments (experiment, profile_id, arm, "
                    f"assigned_at) VALUES {marks} ON CONFLICT DO NOTHING",
                    params,
                )
    return arms
