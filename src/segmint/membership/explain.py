"""Why a profile is (or is not) in each segment: its rules' top-level clauses, evaluated.

For ``segmint profile show``: the profile's trait values are computed from its events at
``as_of``; each segment's rule is split into its top-level clauses (the operands of a
top-level ``and``/``or``, else the rule itself) and each clause is evaluated with the
Python compiler. The structure adds its reasons: a parent that does not hold the profile,
a higher-priority segment of the same group that won, a default taking the rest.

Everything shown is at the one instant ``as_of``: membership, rule and clauses. The stored
membership (what the last refresh or the real-time engine wrote) is reported beside it as
``stored``, and a difference is said in the reason, never mixed into the member column.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from segmint.membership.changes import members_of
from segmint.membership.compiled import CompiledSegments
from segmint.rules import SEGMENTS_KEY, And, Expr, Or, compile_python
from segmint.store import Store
from segmint.traits.live import profile_events
from segmint.workspace import Workspace


def clauses(expr: Expr) -> tuple[str, tuple[Expr, ...]]:
    """Split a rule into its connective (``and``, ``or`` or ``rule``) and top-level clauses."""
    if isinstance(expr, And):
        return "and", expr.operands
    if isinstance(expr, Or):
        return "or", expr.operands
    return "rule", (expr,)


def explain_profile(
    store: Store, compiled: CompiledSegments, profile_id: str, as_of: datetime
) -> dict[str, Any]:
    """Explain every segment for one profile at ``as_of``.

    Returns:
        ``{"profile_id", "as_of", "segments": [...]}`` where each entry has ``segment``,
        ``member`` (membership computed from the events at ``as_of``; ``computed`` is the
        same value, kept for older readers), ``stored`` (what the ``memberships`` table
        holds: the last refresh or the real-time engine), ``rule``, ``matches`` (the rule's
        value at ``as_of``: true, false or null), ``connective``, ``clauses``
        (``[{"clause", "value"}]``) and ``reason``.
    """
    engine = compiled.traits
    state = engine.apply_all(engine.new_state(), profile_events(store, profile_id))
    values = engine.values(state, as_of)
    computed = compiled.plan.resolve(_matcher(compiled, values, as_of))
    live = members_of(store, [profile_id])[profile_id]
    row = {**values, SEGMENTS_KEY: computed}
    entries = [
        _entry(compiled, name, row, as_of, name in live, computed) for name in compiled.plan.names
    ]
    for entry in entries:
        if entry["stored"] != entry["member"]:
            said = "yes" if entry["stored"] else "no"
            entry["reason"] += f"; the stored membership (last refresh or real time) says {said}"
    return {"profile_id": profile_id, "as_of": as_of, "segments": entries}


def _matcher(compiled: CompiledSegments, values: Mapping[str, Any], as_of: datetime) -> Any:
    row = dict(values)

    def matches(name: str, members: Any) -> bool:
        row[SEGMENTS_KEY] = members
        evaluate = compiled.segments[name].evaluate
        return evaluate is not None and evaluate(row, as_of) is True

    return matches


def _entry(
    compiled: CompiledSegments,
    name: str,
    row: Mapping[str, Any],
    as_of: datetime,
    stored: bool,
    computed: frozenset[str],
) -> dict[str, Any]:
    seg = compiled.segments[name]
    entry: dict[str, Any] = {
        "segment": name, "member": name in computed, "computed": name in computed,
        "stored": stored, "rule": seg.spec.rule,
        "matches": None, "connective": None, "clauses": [],
    }  # fmt: skip
    if seg.expr is not None and seg.evaluate is not None:
        connective, parts = clauses(seg.expr)
        schema = compiled.schema
        entry["matches"] = seg.evaluate(row, as_of)
        entry["connective"] = connective
        entry["clauses"] = [
            {"clause": str(p), "value": compile_python(p, schema=schema)(row, as_of)} for p in parts
        ]
    entry["reason"] = _reason(compiled, name, entry["matches"], computed)
    return entry


def _reason(
    compiled: CompiledSegments, name: str, matches: bool | None, computed: frozenset[str]
) -> str:
    spec = compiled.plan.spec(name)
    if spec.parent is not None and spec.parent not in computed:
        return f"not in parent segment '{spec.parent}'"
    if spec.default:
        if name in computed:
            return f"matches no other segment of group '{spec.group}'"
        return f"another segment of group '{spec.group}' holds the profile"
    if matches is not True:
        return "the rule is false" if matches is False else "the rule is null (missing traits)"
    if name in computed:
        return "the rule is true"
    winner = next(
        (s for s in computed if compiled.plan.specs[s].group == spec.group and s != name), None
    )
    return f"the rule is true, but '{winner}' ranks higher in group '{spec.group}'"


SEGMENT_COLUMNS = ("segment", "member", "rule", "clauses", "why")
"""The columns of :func:`segment_rows`, for ``segmint profile show``'s segment table."""


def add_segments(
    view: dict[str, Any], store: Store, compiled: CompiledSegments, as_of: datetime
) -> dict[str, Any]:
    """Add ``segments`` (the explanation of :func:`explain_profile`) to a profile view."""
    view["segments"] = explain_profile(store, compiled, view["profile_id"], as_of)["segments"]
    return view


def segment_rows(view: dict[str, Any]) -> list[tuple[str, ...]]:
    """Rows for a table of the ``segments`` that :func:`add_segments` put in ``view``."""
    rows: list[tuple[str, ...]] = []
    for entry in view.get("segments", []):
        parts = [f"{c['clause']} = {_bool(c['value'])}" for c in entry["clauses"]]
        joiner = f"\n{entry['connective']} " if entry["connective"] in ("and", "or") else "\n"
        rows.append(
            (entry["segment"], "yes" if entry["member"] else "no", entry["rule"] or "(default)",
             joiner.join(parts), entry["reason"])
        )  # fmt: skip
    return rows


def _bool(value: Any) -> str:
    return "null" if value is None else str(value).lower()


def add_profile_segments(view: dict[str, Any], workspace: Workspace) -> dict[str, Any]:
    """Add ``segments`` to a ``segmint profile show`` view, at the view's own ``as_of``."""
    return add_segments(
        view, workspace.store, CompiledSegments(workspace.definition), view["as_of"]
    )
