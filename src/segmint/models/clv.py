"""Customer lifetime value: BG/NBD (purchases, probability alive) and Gamma-Gamma (spend).

Data preparation (see :mod:`segmint.models.data`): at a calibration cut-off ``as_of``, for
each customer with an order, same-day orders are merged into one purchase; ``x`` is the
number of repeat purchase days, ``t_x`` the time from the first to the last purchase day and
``T`` the time from the first purchase day to the cut-off, all in weeks. The spend model
reads the mean value of the repeat purchases (the first is left out, as in Fader, Hardie and
Lee 2005), and only customers with ``x > 0``.

Both are fitted by maximum likelihood with scipy (L-BFGS-B over log-parameters). The
likelihoods are written in log space (``logaddexp`` for the BG/NBD sum of two terms, ``gammaln``
and ``betaln`` throughout), so large frequencies neither overflow nor lose precision.
Identical ``(x, t_x, T)`` rows are fitted once with a weight: stores with many customers
of the same age fit in time proportional to the distinct rows. Scoring is closed form.

Validated against the published CDNOW parameters (``tests/models/test_clv_cdnow.py``):
BG/NBD r=0.243, alpha=4.414, a=0.793, b=2.426; Gamma-Gamma p=6.25, q=3.74, v=15.44.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from segmint.models.errors import NotEnoughDataError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Floats = npt.NDArray[np.float64]

MIN_CUSTOMERS = 30
"""The fewest customers (with an order before the cut-off) a CLV fit accepts."""
MIN_REPEAT = 10
"""The fewest repeat customers (orders on two different days) a CLV fit accepts."""


@dataclass(frozen=True)
class BgNbd:
    """Fitted BG/NBD parameters (time unit: week)."""

    r: float
    alpha: float
    a: float
    b: float

    def p_alive(self, x: Floats, t_x: Floats, T: Floats) -> Floats:  # noqa: N803 (paper's T)
        """The probability that each customer is still alive at ``T``."""
        import numpy as np

        return 1.0 / (1.0 + np.exp(self._log_dropout_odds(x, t_x, T)))

    def expected_purchases(self, t: float, x: Floats, t_x: Floats, T: Floats) -> Floats:  # noqa: N803
        """Expected purchases in the next ``t`` weeks (FHL 2005, equation 10)."""
        import numpy as np
        from scipy.special import hyp2f1

        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        z = t / (alpha + T + t)
        head = (a + b + x - 1) / (a - 1)
        decay = np.exp((r + x) * (np.log(alpha + T) - np.log(alpha + T + t)))
        body = 1.0 - decay * hyp2f1(r + x, b + x, a + b + x - 1, z)
        return np.asarray(head * body / (1.0 + np.exp(self._log_dropout_odds(x, t_x, T))))

    def _log_dropout_odds(self, x: Floats, t_x: Floats, T: Floats) -> Floats:  # noqa: N803
        import numpy as np

        bx = np.maximum(self.b + x - 1, 1e-300)
        odds = (np.log(self.a) - np.log(bx)
                + (self.r + x) * (np.log(self.alpha + T) - np.log(self.alpha + t_x)))  # fmt: skip
        return np.where(x > 0, odds, -np.inf)


@dataclass(frozen=True)
class GammaGamma:
    """Fitted Gamma-Gamma spend parameters."""

    p: float
    q: float
    v: float

    def expected_spend(self, x: Floats, mean_spend: Floats) -> Floats:
        """Expected value of a future purchase (the population mean for ``x = 0``)."""
        import numpy as np

        population = self.p * self.v / (self.q - 1)
        each = self.p * (self.v + x * mean_spend) / (self.p * x + self.q - 1)
        return np.asarray(np.where(x > 0, each, population))


def bgnbd_log_likelihood(
    params: Floats,
    x: Floats,
    t_x: Floats,
    T: Floats,
    weights: Floats,  # noqa: N803
) -> float:
    """The weighted mean BG/NBD log-likelihood at ``(r, alpha, a, b)``."""
    import numpy as np
    from scipy.special import betaln, gammaln

    r, alpha, a, b = params
    head = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    head += betaln(a, b + x) - betaln(a, b)
    stay = -(r + x) * np.log(alpha + T)
    with np.errstate(divide="ignore", invalid="ignore"):
        drop = np.log(a) - np.log(b + x - 1) - (r + x) * np.log(alpha + t_x)
    ll = head + np.where(x > 0, np.logaddexp(stay, np.where(x > 0, drop, -np.inf)), stay)
    return float(np.dot(weights, ll) / weights.sum())


def gamma_gamma_log_likelihood(params: Floats, x: Floats, m: Floats, weights: Floats) -> float:
    """The weighted mean Gamma-Gamma log-likelihood at ``(p, q, v)`` (customers with x > 0)."""
    import numpy as np
    from scipy.special import gammaln

    p, q, v = params
    px = p * x
    ll = (gammaln(px + q) - gammaln(px) - gammaln(q) + q * np.log(v)
          + (px - 1) * np.log(m) + px * np.log(x) - (px + q) * np.log(px / p * m + v))  # fmt: skip
    return float(np.dot(weights, ll) / weights.sum())


def _maximise(loglik: Any, start: int, *data: Floats) -> Floats:
    import numpy as np
    from scipy.optimize import minimize

    def objective(theta: Floats) -> float:
        value = -loglik(np.exp(theta), *data)
        return float(value) if np.isfinite(value) else 1e300

    result = minimize(objective, np.zeros(start), method="L-BFGS-B",
                      options={"maxiter": 2000, "ftol": 1e-13, "gtol": 1e-9})  # fmt: skip
    return np.asarray(np.exp(result.x))


def _distinct(*columns: Floats) -> tuple[list[Floats], Floats]:
    import numpy as np

    stacked = np.column_stack(columns)
    rows, counts = np.unique(stacked, axis=0, return_counts=True)
    return [rows[:, i] for i in range(rows.shape[1])], counts.astype(np.float64)


def fit_bgnbd(x: Floats, t_x: Floats, T: Floats) -> BgNbd:  # noqa: N803
    """Fit BG/NBD by maximum likelihood.

    Raises:
        NotEnoughDataError: With fewer than :data:`MIN_CUSTOMERS` customers or
            :data:`MIN_REPEAT` repeat customers.
    """
    repeat = int((x > 0).sum())
    if len(x) < MIN_CUSTOMERS or repeat < MIN_REPEAT:
        raise NotEnoughDataError(
            f"a CLV model needs at least {MIN_CUSTOMERS} customers with an order before the "
            f"cut-off and {MIN_REPEAT} who ordered on two different days; found {len(x)} "
            f"and {repeat}"
        )
    (dx, dt, dT), weights = _distinct(x, t_x, T)
    r, alpha, a, b = _maximise(bgnbd_log_likelihood, 4, dx, dt, dT, weights)
    return BgNbd(float(r), float(alpha), float(a), float(b))


def fit_gamma_gamma(x: Floats, mean_spend: Floats) -> GammaGamma:
    """Fit Gamma-Gamma on the repeat customers with a positive mean spend."""
    keep = (x > 0) & (mean_spend > 0)
    if int(keep.sum()) < MIN_REPEAT:
        raise NotEnoughDataError(
            f"the spend model needs at least {MIN_REPEAT} repeat customers with a positive "
            f"order value; found {int(keep.sum())}"
        )
    (dx, dm), weights = _distinct(x[keep], mean_spend[keep])
    p, q, v = _maximise(gamma_gamma_log_likelihood, 3, dx, dm, weights)
    return GammaGamma(float(p), float(q), float(v))


@dataclass(frozen=True)
class ClvModel:
    """The two fitted models together."""

    bgnbd: BgNbd
    spend: GammaGamma

    def to_dict(self) -> dict[str, dict[str, float]]:
        """Parameters as JSON-ready numbers."""
        return {"bgnbd": asdict(self.bgnbd), "gamma_gamma": asdict(self.spend)}

    @classmethod
    def from_dict(cls, data: dict[str, dict[str, float]]) -> ClvModel:
        """The inverse of :meth:`to_dict`."""
        return cls(BgNbd(**data["bgnbd"]), GammaGamma(**data["gamma_gamma"]))

    def clv(
        self, weeks: float, x: Floats, t_x: Floats, T: Floats, m: Floats,  # noqa: N803
        yearly_discount: float = 0.0,
    ) -> Floats:  # fmt: skip
        """Lifetime value over ``weeks``, discounted monthly at ``yearly_discount``.

        Expected purchases per month × expected spend (no discount: purchases × spend).
        """
        import numpy as np

        spend = self.spend.expected_spend(x, m)
        if yearly_discount == 0.0:
            return np.asarray(self.bgnbd.expected_purchases(weeks, x, t_x, T) * spend)
        monthly = (1 + yearly_discount) ** (1 / 12) - 1
        steps = np.append(np.arange(52 / 12, weeks, 52 / 12), weeks)
        total = np.zeros_like(x)
        before = np.zeros_like(x)
        for i, t in enumerate(steps, start=1):
            now = self.bgnbd.expected_purchases(float(t), x, t_x, T)
            total += (now - before) / (1 + monthly) ** i
            before = now
        return np.asarray(total * spend)
