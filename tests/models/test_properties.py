"""Properties: the SQL order history agrees with a plain reading; the CLV maths holds."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segmint.models.clv import BgNbd, GammaGamma, bgnbd_log_likelihood
from segmint.models.data import order_history

from .conftest import add_orders

START = datetime(2026, 1, 1, tzinfo=UTC)
AT = START + timedelta(days=40)

orders = st.lists(
    st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(0, 50 * 24),
              st.floats(0, 500, allow_nan=False).map(lambda v: round(v, 2))),
    max_size=25,
)  # fmt: skip


def _reference(rows):
    days: dict[str, dict[int, float]] = defaultdict(lambda: defaultdict(float))
    for pid, hours, value in rows:
        when = START + timedelta(hours=hours)
        if when <= AT:
            days[pid][(when.date() - datetime(1970, 1, 1).date()).days] += value
    out = {}
    for pid, spend in days.items():
        first = min(spend)
        repeat = sum(v for d, v in spend.items() if d > first)
        out[pid] = (first, max(spend), len(spend), round(repeat, 6), round(sum(spend.values()), 6))
    return out


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=orders)
def test_order_history_matches_a_plain_reading_on_every_backend(store, rows):
    store.execute("DELETE FROM events")
    add_orders(store, [(p, START + timedelta(hours=h), v) for p, h, v in rows])
    history = order_history(store, "Order Completed", "properties.total", AT)
    got = {
        p: (history.first_day[i], history.last_day[i], history.days[i],
            round(history.repeat_spend[i], 6), round(history.spend[i], 6))
        for i, p in enumerate(history.profile_ids)
    }  # fmt: skip
    assert got == _reference(rows)
    some = history.profile_ids[:1]
    assert order_history(store, "Order Completed", "properties.total", AT, some).profile_ids == some


customers = st.lists(
    st.tuples(st.integers(0, 60), st.floats(0, 1), st.floats(0.1, 80)), min_size=1, max_size=40
)
params = st.tuples(*[st.floats(0.05, 20) for _ in range(4)])


@settings(max_examples=60, deadline=None)
@given(rows=customers, theta=params)
def test_bgnbd_invariants(rows, theta):
    x = np.array([float(r[0]) for r in rows])
    T = np.array([r[2] for r in rows])
    t_x = np.where(x > 0, T * np.array([r[1] for r in rows]), 0.0)
    bg = BgNbd(*theta)
    alive = bg.p_alive(x, t_x, T)
    assert ((alive >= 0) & (alive <= 1)).all()
    assert (alive[x == 0] == 1).all()
    if bg.a > 1:  # E[X(t)] needs a > 1
        near, far = bg.expected_purchases(4.0, x, t_x, T), bg.expected_purchases(52.0, x, t_x, T)
        assert (near >= 0).all() and (far >= near - 1e-9).all()
    # fitting distinct rows with weights is the same likelihood as fitting every row
    stacked = np.column_stack([x, t_x, T])
    distinct, counts = np.unique(stacked, axis=0, return_counts=True)
    plain = bgnbd_log_likelihood(np.array(theta), x, t_x, T, np.ones(len(x)))
    weighted = bgnbd_log_likelihood(np.array(theta), *distinct.T, counts.astype(float))
    assert np.isclose(plain, weighted, rtol=1e-9, atol=1e-9)


@given(x=st.integers(0, 50), m=st.floats(1, 1000))
def test_expected_spend_shrinks_towards_the_population_mean(x, m):
    gg = GammaGamma(6.25, 3.74, 15.44)
    spend = float(gg.expected_spend(np.array([float(x)]), np.array([m]))[0])
    population = 6.25 * 15.44 / 2.74
    if x == 0:
        assert spend == population
    else:
        assert min(population, m) - 1e-9 <= spend <= max(population, m) + 1e-9
