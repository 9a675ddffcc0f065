"""Segments added, removed, renamed and changed at random: batch and real time stay exact.

Each step changes the workspace's segment definitions (or not), lets time pass, ingests a few
events and brings memberships up to date either with a batch refresh or with a real-time
engine started on the new definitions (as ``serve`` starts: ``catch_up``, then events as
they come). After every step ``reconcile`` must find no difference, on each backend.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.membership.conftest import deploy_step

from segmint.config.model import SegmentDef
from segmint.membership.batch import reconcile
from segmint.membership.changes import all_members, read_changes
from segmint.membership.compiled import CompiledSegments
from segmint.workspace import Workspace

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TRAITS = """
name: lifecycle
traits:
  orders: {count: events, event: Order Completed}
  lifetime_value: {sum: properties.total, event: Order Completed}
  last_purchase_at: {last: timestamp, event: Order Completed}
  opens_30d: {count: events, event: Email Opened, within: 30d}
  days_since_purchase: {expr: "days_since(last_purchase_at)", type: number}
segments: {}
"""
RULES = (
    "orders >= 1",
    "orders >= 2",
    "lifetime_value >= 500",
    "last_purchase_at >= now() - interval '10 days'",  # time alone ends it
    "opens_30d >= 2",  # a window
    "days_since_purchase > 20",  # time alone starts it, through a derived trait
    "performed('Product Viewed', within => '7 days')",  # an implicit trait
)
NAMES = ("s0", "s1", "s2", "s3", "s4")
USERS = ("u0", "u1", "u2")
DERIVED = (
    "events", "profiles", "identities", "identity_conflicts", "profile_merges", "trait_values",
    "trait_state", "memberships", "membership_changes", "schedule",
)  # fmt: skip


@dataclass(frozen=True)
class Seg:
    """A segment of the generated workspace: ``rule`` None is the group's default."""

    rule: str | None
    group: str | None = None
    priority: int = 0

    def definition(self) -> SegmentDef:
        if self.rule is None:
            return SegmentDef(group=self.group, default=True)
        return SegmentDef(rule=self.rule, group=self.group, priority=self.priority)


SEG = st.builds(
    Seg,
    rule=st.sampled_from(RULES),
    group=st.sampled_from([None, "g"]),
    priority=st.sampled_from([0, 10, 50]),
)
DEFAULT = st.just(Seg(None, "g"))
OP = st.one_of(
    st.tuples(st.just("none")),
    st.tuples(st.just("add"), st.sampled_from(NAMES), st.one_of(SEG, SEG, DEFAULT)),
    st.tuples(st.just("remove"), st.sampled_from(NAMES)),
    st.tuples(st.just("rename"), st.sampled_from(NAMES), st.sampled_from(NAMES)),
    st.tuples(st.just("change"), st.sampled_from(NAMES), SEG),
)
EVENT = st.one_of(
    st.tuples(st.just("Order Completed"), st.sampled_from([0, 300, 600])),
    st.tuples(st.just("Email Opened"), st.just(0)),
    st.tuples(st.just("Product Viewed"), st.just(0)),
)
GAP = st.one_of(
    st.sampled_from([timedelta(0), timedelta(days=10), timedelta(days=7)]),
    st.integers(0, 25 * 86400).map(lambda s: timedelta(seconds=s)),
)
STEP = st.tuples(
    OP,
    st.sampled_from(["refresh", "realtime"]),
    GAP,
    st.lists(st.tuples(st.sampled_from(USERS), EVENT, st.integers(0, 3 * 86400)), max_size=3),
)


def apply(segments: dict[str, Seg], op: tuple[Any, ...]) -> dict[str, Seg]:
    """The definitions after ``op`` (an op that would make them invalid changes nothing)."""
    found = dict(segments)
    kind = op[0]
    if kind == "add" and op[1] not in found:
        found[op[1]] = op[2]
    elif kind == "remove":
        found.pop(op[1], None)
    elif kind == "rename" and op[1] in found and op[2] not in found:
        found[op[2]] = found.pop(op[1])
    elif kind == "change" and op[1] in found:
        found[op[1]] = op[2]
    if sum(1 for s in found.values() if s.rule is None) > 1:
        return segments  # one default per group
    return found


_counter = iter(range(10**9))


def track(user: str, event: str, at: datetime, total: int) -> dict[str, Any]:
    return {
        "type": "track", "userId": user, "event": event, "properties": {"total": total},
        "timestamp": at.isoformat(), "messageId": f"lp{next(_counter)}",
    }  # fmt: skip


def run(base: Workspace, steps: list[tuple[Any, ...]]) -> None:
    store = base.store
    for table in DERIVED:  # one store for all examples: start each from nothing
        store.execute(f"DELETE FROM {table}")
    store.execute("DELETE FROM meta WHERE key LIKE 'trait_state.%' OR key LIKE 'membership.%'")
    segments: dict[str, Seg] = {}
    now = T0
    for op, mode, gap, events in steps:
        segments = apply(segments, op)
        definition = base.definition.model_copy(
            update={"segments": {n: s.definition() for n, s in segments.items()}}
        )
        ws = Workspace(path=base.path, definition=definition, _store=store)
        compiled = CompiledSegments(definition)
        now += gap
        messages = [
            track(user, name, now - timedelta(seconds=late), total)
            for user, (name, total), late in events
        ]
        deploy_step(ws, compiled, now, messages, mode)
        assert reconcile(store, compiled, now) == [], (op, mode)
        held = {seg for segs in all_members(store).values() for seg in segs}
        assert held <= set(segments)  # nothing left in a removed segment
    exits = [c for c in read_changes(store) if c.segment not in segments and c.change == "exit"]
    assert all(
        c.cause["source"] in {"definition_removed", "refresh", "event", "time"} for c in exits
    )


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=st.lists(STEP, min_size=2, max_size=6))
def test_definition_changes_keep_batch_and_real_time_exact(steps, tmp_path, store, make_workspace):
    run(make_workspace(tmp_path, TRAITS, store=store), steps)
