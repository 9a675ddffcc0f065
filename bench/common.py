"""Helpers shared by benchmarks: timing and the one-line result every benchmark prints.

Each benchmark prints, besides its human-readable lines, one line per figure::

    BENCH {"name": ..., "figure": ..., "unit": ..., "baseline": ..., "ratio": ..., "goal": ...}

``bench/run_all.py`` collects these lines into ``docs/benchmarks.md``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any


def best_of(fn: Callable[[], Any], repeat: int = 3) -> float:
    """Run ``fn`` ``repeat`` times and return the fastest wall time in seconds."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def report(
    name: str,
    figure: float,
    unit: str,
    *,
    baseline: float | None = None,
    baseline_name: str = "",
    ratio: float | None = None,
    goal: str = "",
) -> None:
    """Print one benchmark figure, human-readable and as a ``BENCH`` JSON line."""
    text = f"{name}: {figure:,.2f} {unit}"
    if baseline is not None:
        text += f" | baseline ({baseline_name}) {baseline:,.2f} {unit}"
    if ratio is not None:
        text += f" | ratio {ratio:.2f}"
    if goal:
        text += f" | goal {goal}"
    print(text)
    payload = {
        "name": name,
        "figure": figure,
        "unit": unit,
        "baseline": baseline,
        "baseline_name": baseline_name,
        "ratio": ratio,
        "goal": goal,
    }
    print("BENCH " + json.dumps(payload), flush=True)
