"""What journeys did: instances per step, sends, skips and delays by reason, exits, conversion.

Every number is a count over ``journey_instances`` and ``journey_history`` (written with
each step), so it is exact and survives restarts. Conversion is the share of entries that
ended through an exit condition (``exit_when``, e.g. ``Order Completed`` ending a cart flow).
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

from segmint.common import did_you_mean
from segmint.config.journeys import JourneyDef
from segmint.journeys.errors import UnknownJourneyError
from segmint.journeys.instances import Instances
from segmint.store import Store
from segmint.workspace import Workspace


def trigger_text(journey: JourneyDef) -> str:
    """The trigger in words (``event Cart Abandoned``, ``enters vip``)."""
    trigger = journey.trigger
    if trigger.event is not None:
        return f"event {trigger.event}" + (f" where {trigger.where}" if trigger.where else "")
    if trigger.segment_entry is not None:
        return f"enters {trigger.segment_entry}"
    return f"leaves {trigger.segment_exit}"


def _outcomes(store: Store, journey: str) -> dict[str, Counter[str]]:
    out: dict[str, Counter[str]] = {}
    for outcome, reason, n in store.fetchall(
        "SELECT outcome, coalesce(reason, ''), count(*) FROM journey_history WHERE journey = ? "
        "GROUP BY 1, 2",
        [journey],
    ):
        out.setdefault(outcome, Counter())[reason] += int(n)
    return out


def _summary(store: Store, name: str, journey: JourneyDef | None) -> dict[str, Any]:
    outcomes = _outcomes(store, name)
    entered = sum(outcomes.get("entered", Counter()).values())
    exits = outcomes.get("exited", Counter())
    active = store.fetchall(
        "SELECT count(*) FROM journey_instances WHERE journey = ? AND status = 'active'", [name]
    )[0][0]
    return {
        "name": name,
        "defined": journey is not None,
        "trigger": trigger_text(journey) if journey is not None else None,
        "steps": len(journey.steps) if journey is not None else None,
        "entered": entered,
        "active": int(active),
        "sent": sum(outcomes.get("sent", Counter()).values()),
        "exited": sum(exits.values()),
        "refused": sum(outcomes.get("refused", Counter()).values()),
        "conversion": round(exits["exit_condition"] / entered, 4) if entered else None,
    }


def list_journeys(workspace: Workspace) -> list[dict[str, Any]]:
    """Every defined journey (and any with instances left), with its counts."""
    store = workspace.store
    defined = workspace.definition.journeys
    seen = {r[0] for r in store.fetchall("SELECT DISTINCT journey FROM journey_instances")}
    return [_summary(store, n, defined.get(n)) for n in sorted(set(defined) | seen)]


def show_journey(workspace: Workspace, name: str) -> dict[str, Any]:
    """One journey: its summary, instances per step, and every outcome by reason.

    Raises:
        UnknownJourneyError: No journey of that name is defined or has instances.
    """
    store = workspace.store
    defined = workspace.definition.journeys
    journey = defined.get(name)
    if journey is None and not store.fetchall(
        "SELECT 1 FROM journey_instances WHERE journey = ? LIMIT 1", [name]
    ):
        hint = did_you_mean(name, defined)
        known = ", ".join(sorted(defined)) or "none defined"
        raise UnknownJourneyError(
            f"unknown journey {name!r} (journeys: {known})" + (f"; {hint}" if hint else "")
        )
    view = _summary(store, name, journey)
    waiting = dict(store.fetchall(
        "SELECT step, count(*) FROM journey_instances WHERE journey = ? AND status = 'active' "
        "GROUP BY step",
        [name],
    ))  # fmt: skip
    names = journey.step_names() if journey is not None else []
    gone = sorted(set(waiting) - set(names))  # instances at a step renamed or removed since
    names = [*names, *gone]
    per_step: dict[str, Counter[str]] = {}
    for step, outcome, n in store.fetchall(
        "SELECT step, outcome, count(*) FROM journey_history WHERE journey = ? GROUP BY 1, 2",
        [name],
    ):
        per_step.setdefault(step or "", Counter())[outcome] += int(n)
    steps = []
    for index, step_name in enumerate(names):
        kind = journey.steps[index].kind if journey is not None and step_name not in gone else None
        counts = per_step.get(step_name, Counter())
        steps.append({"step": step_name, "kind": kind, "active": int(waiting.get(step_name, 0)),
                      **dict(sorted(counts.items()))})  # fmt: skip
    outcomes = _outcomes(store, name)
    view["per_step"] = steps
    for key in ("skipped", "delayed", "exited", "failed", "retry", "refused"):
        view[f"{key}_by_reason"] = dict(sorted(outcomes.get(key, Counter()).items()))
    view["notes"] = _removed_notes(name, journey, {s: int(waiting[s]) for s in gone})
    return view


_ENDS = (
    "the next `segmint journeys run` (or a running server, at once) ends {n} active "
    "instance(s){where} with reason definition_changed"
)


def _removed_notes(name: str, journey: JourneyDef | None, gone: dict[str, int]) -> list[str]:
    """What will happen to instances whose journey or step is no longer defined, and why.

    They end (``definition_changed``) when next looked at: a journey or step renamed in
    ``segmint.yaml`` does not carry them over, and re-entry does not bring them back.
    """
    if not gone:
        return []
    count = sum(gone.values())
    if journey is None:
        ends = _ENDS.format(n=count, where="")
        return [f"journey {name!r} is no longer in segmint.yaml: {ends}; put it back "
                "(under the same name) to keep them"]  # fmt: skip
    steps = ", ".join(f"{s!r} ({n})" for s, n in gone.items())
    ends = _ENDS.format(n=count, where=" waiting there")
    return [f"step(s) {steps} of journey {name!r} are no longer in segmint.yaml: {ends}; "
            "put the step(s) back (under the same names) to keep them"]  # fmt: skip


def profile_journeys(store: Store, profile_id: str) -> list[dict[str, Any]]:
    """A profile's journey instances: step, status, next due instant, exit reason."""
    rows = []
    for inst in Instances(store).of_profiles([profile_id], active=False):
        due: datetime | None = inst.due
        rows.append({
            "journey": inst.journey, "entry": inst.entry, "status": inst.status,
            "step": inst.step, "due": due, "entered_at": inst.entered_at,
            "exit_reason": inst.exit_reason,
        })  # fmt: skip
    return rows
