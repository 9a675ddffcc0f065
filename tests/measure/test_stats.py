"""segmint.measure.stats: agreement with GrowthBook's gbstats, hand values, invariants."""

from __future__ import annotations

import math
import warnings

import gbstats.bayesian.tests as gb_bayes
import gbstats.frequentist.tests as gb_freq
import gbstats.models.statistics as gb_stat
import gbstats.utils as gb_utils
import numpy as np
import pytest
import scipy.stats as scipy_stats
from hypothesis import given, settings
from hypothesis import strategies as st

from segmint.measure import stats
from segmint.measure.stats import Sample

TOL = 1e-6


def gb_sample(s: Sample) -> object:
    if s.total_squares is None:
        return gb_stat.ProportionStatistic(n=s.n, sum=s.total)
    return gb_stat.SampleMeanStatistic(n=s.n, sum=s.total, sum_squares=s.total_squares)


def quiet(test: object) -> object:
    """Run a gbstats test: scipy warns about moments gbstats never reads (skew, kurtosis)."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        return test.compute_result()  # type: ignore[attr-defined]


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=TOL, abs_tol=TOL)


@st.composite
def proportions(draw: st.DrawFn) -> tuple[Sample, Sample]:
    n_c = draw(st.integers(20, 200_000))
    n_t = draw(st.integers(20, 200_000))
    rate = draw(st.floats(0.01, 0.6))
    effect = draw(st.floats(0.5, 1.6))
    c = max(1, min(n_c - 1, round(n_c * rate)))
    t = max(1, min(n_t - 1, round(n_t * min(0.99, rate * effect))))
    return Sample(n_c, c), Sample(n_t, t)


@st.composite
def means(draw: st.DrawFn) -> tuple[Sample, Sample]:
    out = []
    for _ in range(2):
        n = draw(st.integers(5, 100_000))
        mean = draw(st.floats(0.5, 200.0))
        cv = draw(st.floats(0.2, 5.0))
        total = mean * n
        total_squares = (cv * mean) ** 2 * (n - 1) + total**2 / n
        out.append(Sample(n, total, total_squares))
    return out[0], out[1]


@settings(max_examples=60, deadline=None)
@given(st.one_of(proportions(), means()))
def test_welch_agrees_with_gbstats_two_sided_ttest(pair: tuple[Sample, Sample]) -> None:
    control, treatment = pair
    ours = stats.welch_test(control, treatment)
    theirs = quiet(gb_freq.TwoSidedTTest(gb_sample(control), gb_sample(treatment)))
    assert ours.error is None
    assert close(ours.lift, theirs.expected)
    assert close(ours.std_error, theirs.uplift.stddev)
    assert close(ours.ci[0], theirs.ci[0]) and close(ours.ci[1], theirs.ci[1])
    assert close(ours.p_value, theirs.p_value)


@settings(max_examples=60, deadline=None)
@given(st.one_of(proportions(), means()))
def test_sequential_agrees_with_gbstats(pair: tuple[Sample, Sample]) -> None:
    control, treatment = pair
    ours = stats.sequential_test(control, treatment)
    # gbstats' e-value overflows where ours, in logs, gives p = 0 as well
    theirs = quiet(gb_freq.SequentialTwoSidedTTest(gb_sample(control), gb_sample(treatment)))
    assert close(ours.lift, theirs.expected)
    assert close(ours.ci[0], theirs.ci[0]) and close(ours.ci[1], theirs.ci[1])
    assert close(ours.p_value, theirs.p_value)


@settings(max_examples=60, deadline=None)
@given(st.one_of(proportions(), means()), st.sampled_from([None, 0.09, 0.5]))
def test_chance_to_win_agrees_with_gbstats(
    pair: tuple[Sample, Sample], prior: float | None
) -> None:
    control, treatment = pair
    ours = stats.chance_to_win(control, treatment, prior_variance=prior)
    config = gb_bayes.EffectBayesianConfig(
        prior_effect=gb_bayes.GaussianPrior(
            mean=0, variance=prior if prior is not None else 1, proper=prior is not None
        )
    )
    theirs = quiet(gb_bayes.EffectBayesianABTest(gb_sample(control), gb_sample(treatment), config))
    assert close(ours.chance_to_win, theirs.chance_to_win)
    assert close(ours.mean, theirs.expected)
    assert close(ours.std, theirs.uplift.stddev)
    assert close(ours.ci[0], theirs.ci[0]) and close(ours.ci[1], theirs.ci[1])
    assert close(ours.risk[0], theirs.risk[0]) and close(ours.risk[1], theirs.risk[1])


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.integers(0, 500_000), min_size=2, max_size=6),
    st.data(),
)
def test_srm_agrees_with_gbstats(counts: list[int], data: st.DataObject) -> None:
    weights = data.draw(
        st.lists(
            st.just(0.0) | st.floats(0.01, 1.0), min_size=len(counts), max_size=len(counts)
        ).filter(lambda w: sum(w) > 0)
    )
    ours = stats.srm(counts, weights)
    assert close(ours.p_value, gb_utils.check_srm(counts, weights))


@settings(max_examples=60, deadline=None)
@given(proportions())
def test_z_test_lift_and_error_agree_with_gbstats_and_p_with_the_normal(
    pair: tuple[Sample, Sample],
) -> None:
    """gbstats tests proportions with t; the lift and its error are the same quantity."""
    control, treatment = pair
    ours = stats.z_test(control, treatment)
    theirs = quiet(gb_freq.TwoSidedTTest(gb_sample(control), gb_sample(treatment)))
    assert close(ours.lift, theirs.expected)
    assert close(ours.std_error, theirs.uplift.stddev)
    z = ours.lift / ours.std_error
    assert close(ours.p_value, 2 * scipy_stats.norm.sf(abs(z)))


def test_special_functions_match_scipy() -> None:
    for dof in (1.5, 3.0, 10.0, 57.3, 1000.0, 1e5, 2e6, 1e9):
        for t in (0.001, 0.5, 1.96, 3.5, 8.0):
            assert close(stats.t_sf(t, dof), scipy_stats.t.sf(t, dof))
            assert close(stats.t_sf(-t, dof), scipy_stats.t.sf(-t, dof))
        for p in (0.6, 0.9, 0.975, 0.995, 0.025):
            assert close(stats.t_ppf(p, dof), scipy_stats.t.ppf(p, dof))
    for k in (1, 2, 5, 40):
        for x in (0.01, 1.0, 7.0, 60.0, 400.0):
            assert close(stats.chi2_sf(x, k), scipy_stats.chi2.sf(x, k))


def test_hand_computed_proportions() -> None:
    """Control 100/1000, treatment 130/1000: lift 30 %."""
    control, treatment = Sample(1000, 100), Sample(1000, 130)
    var = 0.13 * 0.87 / (0.01 * 1000) + 0.09 * 0.13**2 / (0.0001 * 1000)
    result = stats.z_test(control, treatment)
    assert result.lift == pytest.approx(0.3)
    assert result.std_error == pytest.approx(math.sqrt(var))
    assert result.p_value == pytest.approx(2 * stats.norm_sf(0.3 / math.sqrt(var)))
    assert result.ci[0] == pytest.approx(0.3 - 1.959963984540054 * math.sqrt(var))


def test_holm_hand_values() -> None:
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert stats.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert stats.holm([]) == []


@given(st.lists(st.floats(0.0, 1.0), max_size=12))
def test_holm_invariants(p: list[float]) -> None:
    adjusted = stats.holm(p)
    assert all(a >= raw and a <= 1.0 for a, raw in zip(adjusted, p, strict=True))
    order = sorted(range(len(p)), key=lambda i: p[i])
    assert all(adjusted[i] <= adjusted[j] for i, j in zip(order, order[1:], strict=False))
    assert all(a <= min(1.0, len(p) * raw) + 1e-15 for a, raw in zip(adjusted, p, strict=True))


@given(proportions())
def test_interval_contains_lift_and_p_matches_interval(pair: tuple[Sample, Sample]) -> None:
    """p < alpha exactly when the 1 - alpha interval excludes 0 (z and Welch)."""
    control, treatment = pair
    for result in (stats.z_test(control, treatment), stats.welch_test(control, treatment)):
        assert result.ci[0] <= result.lift <= result.ci[1]
        excludes = result.ci[0] > 0 or result.ci[1] < 0
        if abs(result.p_value - stats.ALPHA) > 1e-9:
            assert excludes == (result.p_value < stats.ALPHA)


@given(proportions())
def test_swapping_arms_mirrors_the_chance_to_win(pair: tuple[Sample, Sample]) -> None:
    control, treatment = pair
    same = stats.chance_to_win(control, control)
    assert same.chance_to_win == pytest.approx(0.5)
    a = stats.chance_to_win(control, treatment).chance_to_win
    assert (a > 0.5) == (treatment.mean > control.mean) or treatment.mean == control.mean


@given(proportions())
def test_sequential_is_never_narrower_than_fixed(pair: tuple[Sample, Sample]) -> None:
    control, treatment = pair
    fixed, seq = stats.z_test(control, treatment), stats.sequential_test(control, treatment)
    assert seq.ci[1] - seq.ci[0] >= fixed.ci[1] - fixed.ci[0] - 1e-12


def test_degenerate_inputs_give_a_reason_not_a_number() -> None:
    assert stats.z_test(Sample(100, 0), Sample(100, 5)).error is not None
    assert stats.welch_test(Sample(1, 1), Sample(100, 5)).p_value == 1.0
    flat = stats.chance_to_win(Sample(10, 10), Sample(10, 10))
    assert flat.chance_to_win == 0.5 and flat.error is not None
    assert stats.srm([0, 0], [0.5, 0.5]).ok
    assert not stats.srm([5000, 5600], [0.5, 0.5]).ok


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 5000), st.integers(1, 5000), st.data())
def test_pooled_z_equals_the_chi_squared_of_the_two_by_two_table(
    n_c: int, n_t: int, data: st.DataObject
) -> None:
    c, t = data.draw(st.integers(0, n_c)), data.draw(st.integers(0, n_t))
    ours = stats.pooled_z_test(Sample(n_c, c), Sample(n_t, t))
    if c + t in (0, n_c + n_t):
        assert ours.error is not None
        return
    table = [[c, n_c - c], [t, n_t - t]]
    chi2, p, _dof, _expected = scipy_stats.chi2_contingency(table, correction=False)
    assert close(ours.p_value, p)
    assert ours.lift == pytest.approx(t / n_t - c / n_c)
