"""Models: CLV fit, propensity training and scoring on 1M profiles (SEGMINT_BENCH_PROFILES).

Phases are timed one by one with the peak resident memory after each. Baselines measured in
this same run: the ``lifetimes`` package's BG/NBD fit on the same (x, t_x, T) data (goal:
segmint's fit within 2x), and one core scoring (goal: >= 200k profiles/s). Scoring here is
the computation of every output; writing score events to the store is the store's append
rate (see bench/store_append.py).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core, before numpy loads its threads

import resource
import time
import warnings
from typing import Any

import numpy as np

from common import report

N = int(os.environ.get("SEGMINT_BENCH_PROFILES", "1000000"))


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def customers(n: int, seed: int = 0) -> tuple[Any, ...]:
    rng = np.random.default_rng(seed)
    lam = rng.gamma(0.25, 1 / 4.4, n)
    p = rng.beta(0.8, 2.4, n)
    T = rng.integers(7, 365, n) / 7.0
    bought = rng.poisson(lam * T)
    x = np.minimum(bought, rng.geometric(p) - 1).astype(float)
    t_x = np.where(x > 0, np.round(T * rng.uniform(0, 1, n) ** (1 / np.maximum(x, 1)) * 7) / 7, 0)
    m = np.where(x > 0, rng.gamma(6.0, 1 / 0.4, n) + rng.gamma(3.0, 5.0, n), 0.0)
    return x, t_x, T, m


def timed(name: str, fn: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    took = time.perf_counter() - start
    print(f"{name}: {took:.2f} s, peak RSS {peak_mb():,.0f} MB")
    return took, out


def main() -> None:
    from segmint.models import propensity
    from segmint.models.clv import ClvModel, fit_bgnbd, fit_gamma_gamma

    x, t_x, T, m = customers(N)
    fit_s, bg = timed("CLV BG/NBD fit (segmint)", lambda: fit_bgnbd(x, t_x, T))
    gg_s, gg = timed("CLV Gamma-Gamma fit (segmint)", lambda: fit_gamma_gamma(x, m))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from lifetimes import BetaGeoFitter

        ref_s, _ = timed("CLV BG/NBD fit (lifetimes)",
                         lambda: BetaGeoFitter().fit(x, t_x, T))  # fmt: skip
    report("models: BG/NBD fit, 1M profiles" if N == 1_000_000 else f"models: BG/NBD fit, {N}",
           fit_s, "s", baseline=ref_s, baseline_name="lifetimes BetaGeoFitter",
           ratio=fit_s / ref_s, goal="<= 2x lifetimes")  # fmt: skip
    model = ClvModel(bg, gg)
    clv_s, _ = timed("CLV scoring (4 outputs)", lambda: (
        bg.expected_purchases(13.0, x, t_x, T), bg.p_alive(x, t_x, T),
        gg.expected_spend(x, m), model.clv(52.0, x, t_x, T, m)))  # fmt: skip
    report("models: CLV scoring", N / clv_s, "profiles/s", goal=">= 200k profiles/s")

    rng = np.random.default_rng(1)
    features = np.column_stack([x, t_x, T, m, rng.normal(size=N), rng.normal(size=N)])
    features[rng.uniform(size=N) < 0.05, 3] = np.nan
    labels = (x + rng.normal(scale=2, size=N) > 1).astype(int)
    train_s, clf = timed("propensity train (calibrated trees)",
                         lambda: propensity.fit(features, labels))  # fmt: skip
    report("models: propensity train", train_s, "s", goal="report")
    score_s, _ = timed("propensity scoring", lambda: propensity.predict(clf, features))
    report("models: propensity scoring", N / score_s, "profiles/s", goal=">= 200k profiles/s")
    report("models: peak memory", peak_mb(), "MB", goal="report")
    store_scoring()
    print(f"(Gamma-Gamma fit {gg_s:.2f} s)")


def store_scoring() -> None:
    """End to end on a DuckDB workspace: read order histories, score CLV, write score events."""
    import tempfile
    from datetime import UTC, datetime, timedelta
    from pathlib import Path

    import orjson
    import pyarrow as pa

    from segmint.models import service
    from segmint.store import EVENT_SCHEMA
    from segmint.workspace import Workspace

    n = int(os.environ.get("SEGMINT_BENCH_STORE_PROFILES", "100000"))
    as_of = datetime(2026, 6, 1, tzinfo=UTC)
    rng = np.random.default_rng(2)
    per = rng.integers(1, 6, n)
    pids = np.repeat([f"p{i}" for i in range(n)], per)
    days = rng.integers(1, 365, len(pids))
    when = [(as_of - timedelta(days=int(d))).replace(tzinfo=None) for d in days]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "ws"
        folder.mkdir()
        (folder / "segmint.yaml").write_text("name: bench\nmodels:\n  clv: {kind: clv}\n")
        ws = Workspace.open(folder)
        cols = {
            "message_id": [f"o{i}" for i in range(len(pids))], "type": ["track"] * len(pids),
            "event": ["Order Completed"] * len(pids), "profile_id": list(pids),
            "user_id": list(pids), "anonymous_id": [None] * len(pids), "timestamp": when,
            "received_at": when, "source": ["bench"] * len(pids),
            "properties": [orjson.dumps({"total": 20 + i % 80}).decode() for i in range(len(pids))],
            "traits": ["{}"] * len(pids), "context": ["{}"] * len(pids),
        }  # fmt: skip
        ws.store.append_events(pa.table(cols, schema=EVENT_SCHEMA))
        service.train(ws, "clv", as_of)
        took, result = timed(f"CLV score + write, {n:,} profiles in DuckDB",
                             lambda: service.score(ws, "clv", as_of))  # fmt: skip
        report("models: CLV score end to end (read, score, write events)", result.profiles / took,
               "profiles/s", goal="report")  # fmt: skip
        ws.close()


if __name__ == "__main__":
    main()
