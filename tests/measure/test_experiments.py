"""Experiments: sticky assignment that partitions the audience, and exact reports."""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segmint.config.measure import ExperimentDef, VariantDef
from segmint.config.model import WorkspaceDef
from segmint.measure import stats
from segmint.measure.assign import arm_at, assign, bucket
from segmint.measure.errors import MeasureError, UnknownExperimentError
from segmint.measure.experiments import experiment_report
from segmint.store import Store, utcnow_naive
from segmint.workspace import Workspace

from .conftest import T0, Shop

D = timedelta(days=1)
EXAMPLES = itertools.count()


def variants(*weights: float, holdout: int | None = None) -> tuple[VariantDef, ...]:
    return tuple(
        VariantDef(name=f"arm{i}", weight=w, holdout=i == holdout) for i, w in enumerate(weights)
    )


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from segmint.store.duckdb import DuckDBStore

    store = DuckDBStore(tmp_path_factory.mktemp("a") / "s.duckdb")
    yield store
    store.close()


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.text("abcdef0123456789", min_size=1, max_size=12), max_size=60, unique=True),
    st.lists(st.floats(0.1, 10.0), min_size=2, max_size=5),
    st.lists(st.floats(0.1, 10.0), min_size=2, max_size=5),
)
def test_arms_partition_the_audience_and_stick(
    shared_store: Store, ids: list[str], w1: list[float], w2: list[float]
) -> None:
    store, exp = shared_store, f"e{next(EXAMPLES)}"  # a new experiment per example
    first = assign(store, exp, variants(*w1), ids, T0)
    assert set(first) == set(ids)
    assert set(first.values()) <= {f"arm{i}" for i in range(len(w1))}
    assert all(first[p] == arm_at(bucket(exp, p), variants(*w1)) for p in ids)
    # weights changed later: the recorded arms stay; newcomers follow the new weights
    again = assign(store, exp, variants(*w2), [*ids, "newcomer"], T0 + D)
    assert {p: again[p] for p in ids} == first
    stored = store.fetchall("SELECT count(*), count(DISTINCT profile_id) FROM "
                            "experiment_assignments WHERE experiment = ?", [exp])[0]  # fmt: skip
    assert stored == (len(ids) + 1, len(ids) + 1)


def test_buckets_are_uniform_enough_for_srm() -> None:
    arms = [arm_at(bucket("exp", f"p{i}"), variants(1, 1, 2)) for i in range(20_000)]
    counts = [arms.count(f"arm{i}") for i in range(3)]
    assert stats.srm(counts, [1, 1, 2]).ok


def record(store: Store, experiment: str, arms: dict[str, str], at: object) -> None:
    when = utcnow_naive(at)  # type: ignore[arg-type]
    store.executemany("INSERT INTO experiment_assignments VALUES (?, ?, ?, ?)",
                      [(experiment, pid, arm, when) for pid, arm in arms.items()])  # fmt: skip


def definition(ws: Workspace, exp: ExperimentDef) -> WorkspaceDef:
    return ws.definition.model_copy(update={"experiments": {"exp": exp}})


def test_report_counts_by_hand(ws: Workspace) -> None:
    shop = Shop(ws)
    people = {u: shop.person(u) for u in ("a1", "a2", "a3", "a4", "b1", "b2", "b3", "b4")}
    record(ws.store, "exp", {p: ("control" if u[0] == "a" else "b") for u, p in people.items()},
           T0)  # fmt: skip
    shop.opened("spring", "a1", T0 + D)
    shop.opened("spring", "a2", T0 + D, machine=True)  # a machine: not an open
    for u in ("b1", "b2", "b3"):
        shop.opened("spring", u, T0 + D)
    shop.opened("summer", "a3", T0 + D)  # another campaign
    shop.clicked("spring", "b1", T0 + D)
    shop.ordered("a1", T0 + 2 * D, 30)
    shop.ordered("a1", T0 + 3 * D, 10)  # two orders, one converter, revenue 40
    shop.ordered("b1", T0 + 2 * D, 80)
    shop.ordered("b2", T0 + 9 * D, 80)  # outside the 5-day window
    shop.ordered("b3", T0 - D, 80)  # before assignment
    exp = ExperimentDef(campaign="spring", metric="open",
                        variants=(VariantDef(name="control"), VariantDef(name="b")))  # fmt: skip
    report = experiment_report(ws.store, definition(ws, exp), "exp", T0 + 30 * D)
    control, b = report.arms
    assert (control.n, control.opened, control.clicked, control.converted) == (4, 1, 0, 1)
    assert (b.n, b.opened, b.clicked, b.converted) == (4, 3, 1, 1)
    assert (control.revenue, control.revenue_squares, b.revenue) == (40.0, 1600.0, 80.0)
    expected = stats.z_test(stats.Sample(4, 1), stats.Sample(4, 3))
    got = report.comparisons["b"]
    assert got["lift"] == pytest.approx(2.0) == expected.lift
    assert got["p_value"] == expected.p_value and got["p_value_holm"] == expected.p_value
    assert report.srm.ok
    assert "no significant difference" in report.conclusion

    revenue = experiment_report(
        ws.store, definition(ws, exp.model_copy(update={"metric": "revenue"})), "exp",
        T0 + 30 * D,
    )  # fmt: skip
    assert revenue.method == "welch_t"


def test_sequential_experiments_use_the_always_valid_test(ws: Workspace) -> None:
    shop = Shop(ws)
    people = {u: shop.person(u) for u in ("a1", "a2", "a3", "b1", "b2", "b3")}
    record(ws.store, "exp", {p: ("control" if u[0] == "a" else "b") for u, p in people.items()},
           T0)  # fmt: skip
    for u in ("a1", "b1", "b2"):
        shop.opened("spring", u, T0 + D)
    exp = ExperimentDef(campaign="spring", metric="open", sequential=True,
                        variants=(VariantDef(name="control"), VariantDef(name="b")))  # fmt: skip
    report = experiment_report(ws.store, definition(ws, exp), "exp", T0 + 2 * D)
    assert report.method == "sequential" and report.to_dict()["method"] == "sequential"
    expected = stats.sequential_test(stats.Sample(3, 1), stats.Sample(3, 2))
    assert report.comparisons["b"]["p_value"] == expected.p_value
    assert report.comparisons["b"]["ci"] == list(expected.ci)


def test_mismatched_arms_withhold_the_verdict(ws: Workspace) -> None:
    arms = {f"p{i}": "control" for i in range(600)} | {f"q{i}": "b" for i in range(400)}
    record(ws.store, "exp", arms, T0)
    exp = ExperimentDef(campaign="spring",
                        variants=(VariantDef(name="control"), VariantDef(name="b")))  # fmt: skip
    report = experiment_report(ws.store, definition(ws, exp), "exp", T0 + D)
    assert not report.srm.ok and report.srm.p_value < 1e-9
    assert report.conclusion.startswith("Sample ratio mismatch")
    assert report.to_dict()["srm"]["ok"] is False


def test_holm_over_several_arms(ws: Workspace) -> None:
    arms = {f"c{i}": "control" for i in range(300)}
    arms |= {f"x{i}": "x" for i in range(300)} | {f"y{i}": "y" for i in range(300)}
    record(ws.store, "exp", arms, T0)
    exp = ExperimentDef(campaign="spring", variants=(
        VariantDef(name="control"), VariantDef(name="x"), VariantDef(name="y")))  # fmt: skip
    report = experiment_report(ws.store, definition(ws, exp), "exp", T0 + D)
    raw = [report.comparisons[a]["p_value"] for a in ("x", "y")]
    holm = [report.comparisons[a]["p_value_holm"] for a in ("x", "y")]
    assert holm == stats.holm(raw)
    assert all(c["error"] for c in report.comparisons.values())  # nobody opened: rate 0


def test_unknown_experiment_and_missing_global_holdout(ws: Workspace) -> None:
    exp = ExperimentDef(campaign="spring",
                        variants=(VariantDef(name="control"), VariantDef(name="b")))  # fmt: skip
    with pytest.raises(UnknownExperimentError, match="did you mean 'subject_test'"):
        experiment_report(ws.store, ws.definition.model_copy(
            update={"experiments": {"subject_test": exp}}), "subjct_test", T0)  # fmt: skip
    with pytest.raises(MeasureError, match="global_holdout_percent"):
        experiment_report(ws.store, ws.definition, "global_holdout", T0)


def test_global_holdout_report_compares_conversion(ws: Workspace) -> None:
    from segmint.measure.assign import in_global_holdout

    shop = Shop(ws)
    users = [f"u{i}" for i in range(60)]
    for i, u in enumerate(users):
        if i % 3 == 0:
            shop.ordered(u, T0 + D, 10)
        else:
            shop.person(u)
    measure = ws.definition.measure.model_copy(update={"global_holdout_percent": 20.0})
    defn = ws.definition.model_copy(update={"measure": measure})
    report = experiment_report(ws.store, defn, "global_holdout", T0 + 2 * D)
    held, marketed = report.arms
    pids = shop.ids
    assert held.n == sum(in_global_holdout(pids[u], 20.0) for u in users)
    assert held.n + marketed.n == 60
    assert held.converted + marketed.converted == 20


def test_pick_winner_needs_the_sample_a_clean_split_and_significance() -> None:
    from datetime import UTC, datetime

    from segmint.measure.experiments import Arm, ExperimentReport, judge, pick_winner

    def judged(*arms: tuple[str, int, int, bool]) -> ExperimentReport:
        built = [Arm(n, 1.0, h, n=size, opened=o) for n, size, o, h in arms]
        srm = stats.srm([a.n for a in built], [1.0] * len(built))
        at = datetime(2026, 1, 1, tzinfo=UTC)
        report = ExperimentReport("e", "c", "open", "z", 0.05, at, built, srm)
        return judge(report)

    clear = judged(("control", 400, 40, False), ("b", 400, 120, False), ("c", 400, 60, False))
    assert pick_winner(clear, 100) == "b"  # the largest significant lift
    assert pick_winner(clear, 401) is None  # too few people per arm yet
    close = judged(("control", 400, 40, False), ("b", 400, 44, False))
    assert pick_winner(close, 100) is None  # no significant difference
    worse = judged(("control", 400, 120, False), ("b", 400, 40, False))
    assert pick_winner(worse, 100) == "control"  # the control beat every other arm
    skewed = judged(("control", 400, 40, False), ("b", 200, 100, False))
    assert not skewed.srm.ok and pick_winner(skewed, 100) is None  # broken assignment
