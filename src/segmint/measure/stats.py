"""The statistics of measurement, written once: every comparison segmint reports comes here.

An arm is summarised per metric by a :class:`Sample` (units, sum, sum of squares). A
treatment is compared with the control on the **relative lift** ``(m_t - m_c) / m_c``,
whose variance comes from the delta method::

    var(lift) = v_t / (m_c**2 * n_t) + v_c * m_t**2 / (m_c**4 * n_c)

with ``v`` the per-unit variance: ``p (1 - p)`` for a proportion (open, click, conversion;
each unit 0 or 1), the sample variance (n - 1) for a mean (revenue per recipient). These are
GrowthBook's ``gbstats`` conventions, and the tests hold this module to ``gbstats`` to 1e-6
wherever both compute the same quantity.

Methods, each named in every result (``Comparison.method``):

- ``z``: two-sided z-test on the relative lift, normal interval (proportions).
- ``welch_t``: two-sided Welch t-test, Welch-Satterthwaite degrees of freedom (means, such
  as revenue per recipient; the delta method gives the lift's variance).
- ``sequential``: an always-valid test (the asymptotic confidence sequence of Waudby-Smith
  et al., 2023, as gbstats implements it): its interval and p-value stay valid however
  often the results are looked at, at the cost of wider intervals. Use it when peeking.
- :func:`chance_to_win`: Bayesian, a normal posterior on the lift (flat prior, or a
  normal prior centred on no effect), ``P(lift > 0)``.
- :func:`srm`: sample-ratio mismatch, Pearson's chi-squared on the arms' sizes against
  their weights. A mismatch means the assignment is broken and no result should be read.
- :func:`holm`: Holm's step-down adjustment when several variants face one control.
- ``pooled_z``: the classical pooled test of two equal rates (:func:`pooled_z_test`),
  valid when an arm has no conversions at all; threshold suggestions use it.

Only the standard library is used (``math``): the t and chi-squared tails are the
regularised incomplete beta and gamma functions, evaluated by continued fractions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

ALPHA = 0.05
"""The default significance level (two-sided): 95 % intervals."""
SEQUENTIAL_TUNING = 5000.0
"""The sample size at which the sequential interval is tightest (gbstats' default)."""
SRM_THRESHOLD = 0.001
"""An SRM p-value below this flags the assignment as broken (GrowthBook's default)."""

_EPS = 1e-15
_TINY = 1e-300


# ---- special functions ---------------------------------------------------------------


def norm_sf(z: float) -> float:
    """Return ``P(Z > z)`` for a standard normal ``Z``, accurate in the far tail."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def norm_cdf(z: float) -> float:
    """Return ``P(Z <= z)`` for a standard normal ``Z``."""
    return 0.5 * math.erfc(-z / math.sqrt(2.0))


def norm_ppf(p: float) -> float:
    """Return the standard normal quantile of ``p`` (0 < p < 1)."""
    from statistics import NormalDist

    return NormalDist().inv_cdf(p)


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    h = d
    for m in range(1, 100_000):
        m2 = 2 * m
        for aa in (m * (b - m) * x / ((qam + m2) * (a + m2)),
                   -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):  # fmt: skip
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > _TINY else _TINY)
            c = 1.0 + aa / c
            c = c if abs(c) > _TINY else _TINY
            h *= d * c
        if abs(d * c - 1.0) < _EPS:
            break
    return h


def _lgamma_ratio(big: float, small: float) -> float:
    """Return ``lgamma(big + small) - lgamma(big)`` without cancellation for a large ``big``.

    ``lgamma`` of a million is 1.3e7, so subtracting two of them loses 9 digits; Stirling's
    series of the difference keeps them (used for ``big`` > 1e4, where its error < 1e-16).
    """
    if big < 1e4:
        return math.lgamma(big + small) - math.lgamma(big)
    total = big + small

    def tail(z: float) -> float:
        return 1.0 / (12.0 * z) - 1.0 / (360.0 * z**3) + 1.0 / (1260.0 * z**5)

    return (
        (big - 0.5) * math.log1p(small / big) + small * math.log(total) - small
        + tail(total) - tail(big)
    )  # fmt: skip


def betainc(a: float, b: float, x: float, y: float | None = None) -> float:
    """Return the regularised incomplete beta function ``I_x(a, b)``.

    ``y`` is ``1 - x`` when the caller knows it more precisely than ``1 - x`` would be.
    """
    y = 1.0 - x if y is None else y
    if x <= 0.0:
        return 0.0
    if y <= 0.0:
        return 1.0
    log_front = (
        _lgamma_ratio(max(a, b), min(a, b))
        - math.lgamma(min(a, b))
        + a * math.log(x)
        + b * math.log(y)
    )
    front = math.exp(log_front)
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, y) / b


def t_sf(t: float, dof: float) -> float:
    """Return ``P(T > t)`` for Student's t with ``dof`` degrees of freedom."""
    if dof > 1e7:  # t differs from the normal by < 2e-9 here, less than the fraction's error
        return norm_sf(t)
    tail = 0.5 * betainc(dof / 2.0, 0.5, dof / (dof + t * t), t * t / (dof + t * t))
    return tail if t >= 0 else 1.0 - tail


def t_ppf(p: float, dof: float) -> float:
    """Return the quantile of Student's t at ``p`` (0 < p < 1)."""
    if p == 0.5:
        return 0.0
    if dof > 1e7:
        return norm_ppf(p)
    if p < 0.5:
        return -t_ppf(1.0 - p, dof)
    target = 1.0 - p
    lo, hi = 0.0, max(1.0, norm_ppf(p))
    while t_sf(hi, dof) > target:
        lo, hi = hi, hi * 2.0
    for _ in range(200):  # bisection: t_sf is monotone, 200 halvings exhaust a double
        mid = 0.5 * (lo + hi)
        if t_sf(mid, dof) > target:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-14 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


def _gamma_series(a: float, x: float) -> float:
    term = total = 1.0 / a
    ap = a
    for _ in range(100_000):
        ap += 1.0
        term *= x / ap
        total += term
        if abs(term) < abs(total) * _EPS:
            break
    return total * math.exp(-x + a * math.log(x) - math.lgamma(a))


def _gamma_cf(a: float, x: float) -> float:
    b = x + 1.0 - a
    c, d = 1.0 / _TINY, 1.0 / b
    h = d
    for i in range(1, 100_000):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = 1.0 / (d if abs(d) > _TINY else _TINY)
        c = b + an / c
        c = c if abs(c) > _TINY else _TINY
        h *= d * c
        if abs(d * c - 1.0) < _EPS:
            break
    return math.exp(-x + a * math.log(x) - math.lgamma(a)) * h


def chi2_sf(x: float, dof: float) -> float:
    """Return ``P(X > x)`` for a chi-squared ``X`` with ``dof`` degrees of freedom."""
    if x <= 0.0:
        return 1.0
    if math.isinf(x):
        return 0.0
    a, half = dof / 2.0, x / 2.0
    if half < a + 1.0:
        return 1.0 - _gamma_series(a, half)
    return _gamma_cf(a, half)


# ---- samples and lifts ---------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One arm's summary for one metric.

    Attributes:
        n: Units (recipients) in the arm.
        total: The sum of the metric over the units (conversions, or revenue).
        total_squares: The sum of squares, for a mean; None for a proportion (each unit
            is 0 or 1, so the variance is ``p (1 - p)``).
    """

    n: int
    total: float
    total_squares: float | None = None

    @property
    def mean(self) -> float:
        """The mean per unit (the rate, for a proportion); 0 without units."""
        return self.total / self.n if self.n else 0.0

    @property
    def variance(self) -> float:
        """The per-unit variance: ``p (1 - p)``, or the sample variance (n - 1)."""
        if self.total_squares is None:
            return self.mean * (1.0 - self.mean)
        if self.n <= 1:
            return 0.0
        return (self.total_squares - self.total**2 / self.n) / (self.n - 1)


def lift(control: Sample, treatment: Sample) -> float:
    """Return the relative lift of ``treatment`` over ``control`` (0.1 = 10 % better)."""
    return (treatment.mean - control.mean) / control.mean


def lift_variance(control: Sample, treatment: Sample) -> float:
    """Return the delta-method variance of :func:`lift` (see the module docstring)."""
    mc, mt = control.mean, treatment.mean
    return treatment.variance / (mc**2 * treatment.n) + control.variance * mt**2 / (
        mc**4 * control.n
    )


def welch_dof(control: Sample, treatment: Sample) -> float:
    """Return the Welch-Satterthwaite degrees of freedom of two samples."""
    vc, vt = control.variance / control.n, treatment.variance / treatment.n
    return (vc + vt) ** 2 / (vt**2 / (treatment.n - 1) + vc**2 / (control.n - 1))


def _unusable(control: Sample, treatment: Sample) -> str | None:
    """Return why two samples cannot be compared, or None."""
    if control.n < 2 or treatment.n < 2:
        return "too few units (at least 2 per arm)"
    if control.mean == 0:
        return "the control's value is zero: no relative lift"
    if control.variance <= 0 or treatment.variance <= 0:
        return "no variation in an arm (every unit has the same value)"
    return None


# ---- frequentist ---------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    """A treatment against the control, frequentist.

    Attributes:
        method: ``z``, ``welch_t`` or ``sequential`` (see the module docstring).
        lift: The relative lift (0 when it cannot be computed).
        std_error: The standard error of the lift.
        ci: The two-sided ``1 - alpha`` interval on the lift (always valid for
            ``sequential``).
        p_value: The two-sided p-value of "no lift" (1 when it cannot be computed).
        dof: The degrees of freedom (``welch_t`` only).
        error: Why nothing could be computed, else None.
    """

    method: str
    lift: float
    std_error: float
    ci: tuple[float, float]
    p_value: float
    dof: float | None = None
    error: str | None = None


def _nothing(method: str, error: str) -> Comparison:
    return Comparison(method, 0.0, 0.0, (0.0, 0.0), 1.0, None, error)


def z_test(control: Sample, treatment: Sample, alpha: float = ALPHA) -> Comparison:
    """Compare two proportions (or means) by a two-sided z-test on the relative lift."""
    error = _unusable(control, treatment)
    if error:
        return _nothing("z", error)
    est, se = lift(control, treatment), math.sqrt(lift_variance(control, treatment))
    width = norm_ppf(1.0 - alpha / 2.0) * se
    p = 2.0 * norm_sf(abs(est) / se)
    return Comparison("z", est, se, (est - width, est + width), min(p, 1.0))


def welch_test(control: Sample, treatment: Sample, alpha: float = ALPHA) -> Comparison:
    """Compare two means by Welch's two-sided t-test on the relative lift (delta method)."""
    error = _unusable(control, treatment)
    if error:
        return _nothing("welch_t", error)
    est, se = lift(control, treatment), math.sqrt(lift_variance(control, treatment))
    dof = welch_dof(control, treatment)
    width = t_ppf(1.0 - alpha / 2.0, dof) * se
    p = 2.0 * t_sf(abs(est) / se, dof)
    return Comparison("welch_t", est, se, (est - width, est + width), min(p, 1.0), dof)


def sequential_test(
    control: Sample, treatment: Sample, alpha: float = ALPHA, tuning: float = SEQUENTIAL_TUNING
) -> Comparison:
    """Compare two arms with an always-valid (sequential) interval and p-value.

    The asymptotic confidence sequence of Waudby-Smith et al. (2023), eq. 9 and 155:
    safe to look at after every send. ``tuning`` is the total sample size at which the
    interval is tightest.
    """
    error = _unusable(control, treatment)
    if error:
        return _nothing("sequential", error)
    est, var = lift(control, treatment), lift_variance(control, treatment)
    total = control.n + treatment.n
    rho2 = (-2.0 * math.log(alpha) + math.log(-2.0 * math.log(alpha) + 1.0)) / tuning
    grown = total * rho2 + 1.0
    s2 = var * total
    width = math.sqrt(s2) * math.sqrt(
        2.0 * grown * math.log(math.sqrt(grown) / alpha) / (total**2 * rho2)
    )
    st2 = est**2 * total / var
    log_e = rho2 * st2 / (2.0 * grown) - 0.5 * math.log(grown)
    p = 1.0 if log_e <= 0 else math.exp(-log_e)
    return Comparison("sequential", est, math.sqrt(var), (est - width, est + width), p)


def pooled_z_test(control: Sample, treatment: Sample) -> Comparison:
    """Test two proportions for equal rates with the pooled two-sample z-test.

    Unlike the lift tests it needs no variation within an arm, so a group with no
    conversions at all can be compared (what threshold suggestions meet). ``lift`` is the
    absolute difference of the rates here; the interval is left at (0, 0).
    """
    n = control.n + treatment.n
    if control.n < 1 or treatment.n < 1:
        return _nothing("pooled_z", "too few units (at least 1 per arm)")
    pooled = (control.total + treatment.total) / n
    var = pooled * (1.0 - pooled) * (1.0 / control.n + 1.0 / treatment.n)
    if var <= 0:
        return _nothing("pooled_z", "no variation at all (every unit has the same value)")
    diff = treatment.mean - control.mean
    p = 2.0 * norm_sf(abs(diff) / math.sqrt(var))
    return Comparison("pooled_z", diff, math.sqrt(var), (0.0, 0.0), min(p, 1.0))


# ---- Bayesian ------------------------------------------------------------------------


@dataclass(frozen=True)
class Posterior:
    """The Bayesian reading of a treatment against the control.

    Attributes:
        chance_to_win: ``P(lift > 0)`` under the posterior.
        mean: The posterior mean of the relative lift.
        std: Its posterior standard deviation.
        ci: The central ``1 - alpha`` credible interval.
        risk: Expected loss (relative) of choosing the control, then the treatment.
        error: Why nothing could be computed (then chance_to_win is 0.5), else None.
    """

    chance_to_win: float
    mean: float
    std: float
    ci: tuple[float, float]
    risk: tuple[float, float]
    error: str | None = None


def chance_to_win(
    control: Sample,
    treatment: Sample,
    alpha: float = ALPHA,
    prior_variance: float | None = None,
) -> Posterior:
    """Return the posterior of the relative lift, with the chance the treatment wins.

    The likelihood of the lift is normal (its delta-method estimate and variance); the
    prior is flat (``prior_variance=None``) or normal with mean 0 and the given variance
    (on the relative scale: 0.09 says lifts beyond ±30 % are unlikely).
    """
    error = _unusable(control, treatment)
    if error:
        return Posterior(0.5, 0.0, 0.0, (0.0, 0.0), (0.0, 0.0), error)
    est, var = lift(control, treatment), lift_variance(control, treatment)
    precision = 1.0 / var + (0.0 if prior_variance is None else 1.0 / prior_variance)
    mean = est / var / precision
    std = math.sqrt(1.0 / precision)
    z = norm_ppf(1.0 - alpha / 2.0)
    return Posterior(
        norm_sf(-mean / std), mean, std, (mean - z * std, mean + z * std), _risk(mean, std)
    )


def _risk(mean: float, std: float) -> tuple[float, float]:
    """Expected loss of keeping the control, and of choosing the treatment."""
    a = -mean / std
    pdf = math.exp(-0.5 * a * a) / math.sqrt(2.0 * math.pi)
    above, below = norm_sf(a), norm_cdf(a)
    gain = mean * above + std * pdf  # E[max(lift, 0)]
    loss = -(mean * below - std * pdf)  # E[max(-lift, 0)]
    return (gain, loss)


# ---- sample-ratio mismatch and multiple comparisons ----------------------------------


@dataclass(frozen=True)
class SrmCheck:
    """Sample-ratio mismatch: do the arms' sizes fit their weights?

    Attributes:
        p_value: Pearson's chi-squared test of the sizes against the weights.
        ok: False when ``p_value`` is below the threshold: the assignment is broken.
        threshold: The threshold used.
    """

    p_value: float
    ok: bool
    threshold: float


def srm(
    counts: Sequence[int], weights: Sequence[float], threshold: float = SRM_THRESHOLD
) -> SrmCheck:
    """Test arm sizes against their intended weights (chi-squared, k - 1 dof).

    Arms of weight 0 are left out of the statistic but count in the degrees of freedom, as
    gbstats does.
    """
    total, weight = sum(counts), sum(weights)
    if not total or weight <= 0:
        return SrmCheck(1.0, True, threshold)
    x = 0.0
    for observed, w in zip(counts, weights, strict=True):
        if w > 0:
            expected = w / weight * total
            x += (observed - expected) ** 2 / expected
    p = chi2_sf(x, len(counts) - 1) if len(counts) > 1 else 1.0
    return SrmCheck(p, p >= threshold, threshold)


def holm(p_values: Sequence[float]) -> list[float]:
    """Return Holm's step-down adjusted p-values, in the input's order.

    Sorted ascending, the i-th (0-based) of m is multiplied by ``m - i``, made
    non-decreasing, and capped at 1. Reject where the adjusted value is below alpha.
    """
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted
