"""Helpers shared by benchmarks: timing and the one-line result every benchmark prints.

Each benchmark prints, besides its human-readable lines, one line per figure::

    BENCH {"name": ..., "figure": ..., "unit": ..., "baseline": ..., "ratio": ..., "goal": ...}

``bench/run_all.py`` collects these lines into ``docs/benchmarks.md``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

PG_URL = os.environ.get("SEGMINT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
"""The PostgreSQL server benchmarks make their schemas on (as the tests do)."""


def pg_schema(prefix: str, label: str) -> tuple[str, str] | None:
    """A new schema on :data:`PG_URL`: its name and a URL whose connections use it.

    None (after printing that ``label`` is not measured) when PostgreSQL is unreachable.
    Drop it with :func:`segmint.store.postgres.drop_schema`.
    """
    import uuid

    import psycopg

    schema = f"{prefix}_{uuid.uuid4().hex[:8]}"
    try:
        with psycopg.connect(PG_URL, autocommit=True, connect_timeout=3) as con:
            con.execute(f'CREATE SCHEMA "{schema}"')
    except psycopg.OperationalError as exc:
        print(f"{label}: PostgreSQL unreachable at {PG_URL}, not measured ({exc})")
        return None
    sep = "&" if "?" in PG_URL else "?"
    return schema, f"{PG_URL}{sep}options=-csearch_path%3D{schema}"


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


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_serving(cmd: list[str], port: int, tries: int = 600) -> subprocess.Popen[bytes]:
    """Start ``cmd`` (a ``segmint serve``) and wait until its ``/health`` answers 200."""
    import httpx

    proc = subprocess.Popen(cmd)
    for _ in range(tries):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("server did not start")
