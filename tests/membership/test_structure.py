from __future__ import annotations

from collections.abc import Set

import pytest

from segmint.membership.errors import SegmentStructureError, UnknownSegmentError
from segmint.membership.structure import SegmentPlan, SegmentSpec


def plan(*specs: SegmentSpec, reads: dict[str, frozenset[str]] | None = None) -> SegmentPlan:
    return SegmentPlan({s.name: s for s in specs}, reads or {})


def matcher(matching: set[str]):
    def matches(name: str, members: Set[str]) -> bool:
        return name in matching

    return matches


LIFECYCLE = (
    SegmentSpec("vip", "x", group="lifecycle", priority=100),
    SegmentSpec("loyal", "x", group="lifecycle", priority=50),
    SegmentSpec("churned", "x", group="lifecycle", priority=10),
    SegmentSpec("new_customer", None, group="lifecycle", default=True),
)


def test_exclusive_group_keeps_only_the_highest_priority():
    p = plan(*LIFECYCLE)
    assert p.resolve(matcher({"vip", "churned"})) == {"vip"}
    assert p.resolve(matcher({"loyal", "churned"})) == {"loyal"}
    assert p.resolve(matcher({"churned"})) == {"churned"}


def test_default_segment_holds_profiles_matching_nothing_in_the_group():
    p = plan(*LIFECYCLE, SegmentSpec("browser", "x"))
    assert p.resolve(matcher(set())) == {"new_customer"}
    assert p.resolve(matcher({"browser"})) == {"new_customer", "browser"}
    assert p.resolve(matcher({"vip", "browser"})) == {"vip", "browser"}


def test_equal_priorities_break_ties_by_name():
    p = plan(SegmentSpec("b", "x", group="g"), SegmentSpec("a", "x", group="g"))
    assert p.resolve(matcher({"a", "b"})) == {"a"}


def test_child_only_contains_members_of_its_parent():
    p = plan(SegmentSpec("buyers", "x"), SegmentSpec("big_buyers", "x", parent="buyers"))
    assert p.resolve(matcher({"big_buyers"})) == frozenset()
    assert p.resolve(matcher({"big_buyers", "buyers"})) == {"buyers", "big_buyers"}


def test_grandchild_is_bounded_by_the_whole_chain():
    p = plan(
        SegmentSpec("c", "x", parent="b"), SegmentSpec("b", "x", parent="a"), SegmentSpec("a", "x")
    )
    assert p.names.index("a") < p.names.index("b") < p.names.index("c")
    assert p.resolve(matcher({"a", "c"})) == {"a"}
    assert p.resolve(matcher({"a", "b", "c"})) == {"a", "b", "c"}


def test_group_member_with_parent_outside_the_parent_falls_through():
    p = plan(
        SegmentSpec("customers", "x"),
        SegmentSpec("vip", "x", group="g", priority=10, parent="customers"),
        SegmentSpec("other", "x", group="g", priority=1),
        SegmentSpec("rest", None, group="g", default=True, parent="customers"),
    )
    # vip matches but its parent does not hold the profile: the next segment wins
    assert p.resolve(matcher({"vip", "other"})) == {"other"}
    # nothing matches and the default's parent does not hold the profile: no member
    assert p.resolve(matcher(set())) == frozenset()
    assert p.resolve(matcher({"customers"})) == {"customers", "rest"}


def test_in_segment_reads_the_settled_membership_of_the_other_segment():
    seen: list[frozenset[str]] = []

    def matches(name: str, members: Set[str]) -> bool:
        if name == "vip_browsers":
            seen.append(frozenset(members))
            return "vip" in members
        return name in {"vip", "churned"}

    p = plan(
        SegmentSpec("vip_browsers", "in_segment('vip')"),
        *LIFECYCLE,
        reads={"vip_browsers": frozenset({"vip"})},
    )
    assert p.resolve(matches) == {"vip", "vip_browsers"}
    assert seen == [frozenset({"vip"})]


def test_update_re_decides_only_dirty_units_and_their_readers():
    calls: list[str] = []
    matching = {"a"}

    def matches(name: str, members: Set[str]) -> bool:
        calls.append(name)
        if name == "reads_a":
            return "a" in members
        return name in matching

    p = plan(
        SegmentSpec("a", "x"),
        SegmentSpec("b", "x"),
        SegmentSpec("reads_a", "in_segment('a')"),
        reads={"reads_a": frozenset({"a"})},
    )
    before = p.resolve(matches)
    assert before == {"a", "reads_a"}
    calls.clear()
    matching.clear()
    after = p.update(matches, before, {p.unit_of["a"]})
    assert after == frozenset()
    assert sorted(calls) == ["a", "reads_a"]  # b was not evaluated
    calls.clear()
    assert p.update(matches, after, {p.unit_of["b"]}) == frozenset()
    assert calls == ["b"]


def test_cycles_are_refused_with_the_segments_named():
    with pytest.raises(SegmentStructureError, match="cycle: a → b → a"):
        plan(
            SegmentSpec("a", "x"),
            SegmentSpec("b", "x", parent="a"),
            reads={"a": frozenset({"b"})},
        )
    with pytest.raises(SegmentStructureError, match="reads itself"):
        plan(SegmentSpec("a", "x"), reads={"a": frozenset({"a"})})
    with pytest.raises(SegmentStructureError, match="'a' is its own parent") as info:
        plan(SegmentSpec("a", "x", parent="a"))
    assert info.value.segment == "a"


def test_a_group_member_cannot_nest_in_its_own_group():
    with pytest.raises(SegmentStructureError, match="same group"):
        plan(SegmentSpec("a", "x", group="g"), SegmentSpec("b", "x", group="g", parent="a"))


def test_unknown_segment_names_are_errors():
    with pytest.raises(UnknownSegmentError, match="unknown segment 'nope'"):
        plan(SegmentSpec("a", "x"), reads={"a": frozenset({"nope"})})
    with pytest.raises(UnknownSegmentError):
        plan(SegmentSpec("a", "x")).spec("nope")


def test_plan_from_the_example_workspace(workspace):
    p = SegmentPlan.from_workspace(workspace.definition)
    vip = p.spec("vip")
    assert vip.group == "lifecycle" and vip.tags == ("revenue",)
    assert vip.description == "Our best customers."
    lifecycle = p.units[p.unit_of["vip"]]
    assert lifecycle.names == ("vip", "loyal_customer", "churned", "new_customer")
