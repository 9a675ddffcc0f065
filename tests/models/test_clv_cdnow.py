"""BG/NBD + Gamma-Gamma against the published CDNOW results.

The CDNOW sample (2,357 customers' transactions, 1997-01 to 1998-06) ships in the
``lifetimes`` wheel (MIT); it is read from there, not copied into this repository. The
calibration period ends on 1997-09-30 (39 weeks), as in Fader, Hardie and Lee (2005).
"""

from __future__ import annotations

from datetime import UTC, datetime
from importlib.resources import files

import pytest

from segmint.models.clv import fit_bgnbd, fit_gamma_gamma
from segmint.models.data import order_history
from segmint.models.errors import NotEnoughDataError
from segmint.models.service import clv_inputs
from segmint.store.duckdb import DuckDBStore

from .conftest import add_orders

pytest.importorskip("lifetimes", reason="the ml extra (make install) ships the CDNOW sample")

CUTOFF = datetime(1997, 9, 30, tzinfo=UTC)


def _cdnow() -> list[tuple[str, datetime, float]]:
    text = files("lifetimes").joinpath("datasets/CDNOW_sample.txt").read_text()
    rows = []
    for line in text.splitlines():
        _, customer, day, _, amount = line.split()
        when = datetime.strptime(day, "%Y%m%d").replace(tzinfo=UTC)
        rows.append((f"c{customer}", when, float(amount)))
    return rows


@pytest.fixture(scope="module")
def cdnow(tmp_path_factory: pytest.TempPathFactory):
    store = DuckDBStore(tmp_path_factory.mktemp("cdnow") / "s.duckdb")
    add_orders(store, _cdnow())
    yield store
    store.close()


def test_bgnbd_and_gamma_gamma_recover_the_published_cdnow_parameters(cdnow):
    history = order_history(cdnow, "Order Completed", "properties.total", CUTOFF)
    assert len(history) == 2357
    x, t_x, T, m = clv_inputs(history, CUTOFF)
    assert int((x > 0).sum()) == 946  # repeat buyers in calibration, as published
    bg = fit_bgnbd(x, t_x, T)
    assert (round(bg.r, 3), round(bg.alpha, 3), round(bg.a, 3), round(bg.b, 3)) == (
        0.243,
        4.414,
        0.793,
        2.426,
    )
    gg = fit_gamma_gamma(x, m)
    assert (round(gg.p, 2), round(gg.q, 2)) == (6.25, 3.74)
    assert gg.v == pytest.approx(15.44, abs=0.02)


def test_same_day_orders_are_one_purchase_and_the_first_is_left_out_of_spend(tmp_path):
    store = DuckDBStore(tmp_path / "s.duckdb")
    day = datetime(2026, 1, 1, 9, tzinfo=UTC)
    add_orders(
        store,
        [
            ("p", day, 10.0),
            ("p", day.replace(hour=18), 5.0),
            ("p", datetime(2026, 1, 15, tzinfo=UTC), 30.0),
        ],
    )
    history = order_history(
        store, "Order Completed", "properties.total", datetime(2026, 1, 29, tzinfo=UTC)
    )
    x, t_x, T, m = clv_inputs(history, datetime(2026, 1, 29, tzinfo=UTC))
    assert (x[0], t_x[0], T[0], m[0]) == (1.0, 2.0, 4.0, 30.0)
    assert history.spend[0] == 45.0
    store.close()


def test_large_frequencies_stay_finite():
    import numpy as np

    from segmint.models.clv import BgNbd

    bg = BgNbd(0.243, 4.414, 0.793, 2.426)
    x = np.array([0.0, 500.0, 5000.0])
    t = np.array([0.0, 300.0, 300.0])
    T = np.array([300.0, 300.0, 300.0])
    assert np.isfinite(bg.p_alive(x, t, T)).all()
    assert np.isfinite(bg.expected_purchases(10.0, x, t, T)).all()


def test_too_few_customers_is_refused_with_how_many_are_needed():
    import numpy as np

    with pytest.raises(NotEnoughDataError, match="at least 30 customers.*found 5 and 0"):
        fit_bgnbd(np.zeros(5), np.zeros(5), np.ones(5))
