"""How long the ``segmint`` command takes to start: ``--version`` and ``--help``.

Baseline: a bare ``python -c pass`` measured in the same run, so the ratio is the CLI's own
start-up cost over the interpreter's. Goal: under 0.3 s (the commands import their heavy
modules, pydantic, sqlglot, DuckDB, pyarrow, jinja2, only when they run).
"""

from __future__ import annotations

import subprocess
import sys
from functools import partial

from common import best_of, report


def _run(*args: str) -> None:
    subprocess.run([sys.executable, *args], check=True, capture_output=True)


def main() -> None:
    bare = best_of(lambda: _run("-c", "pass"), repeat=7)
    for flag in ("--version", "--help"):
        seconds = best_of(partial(_run, "-m", "segmint", flag), repeat=7)
        report(
            f"segmint {flag} start-up",
            seconds * 1000,
            "ms",
            baseline=bare * 1000,
            baseline_name="python -c pass",
            ratio=seconds / bare,
            goal="< 300 ms",
        )


if __name__ == "__main__":
    main()
