"""Start-up: the CLI registers every command without importing the heavy libraries.

Not a timed test (timings live in ``bench/startup.py``): it checks what a fresh interpreter
has imported once the command line is built and ``--version``/``--help`` have run.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = (
    "duckdb", "fastapi", "httpx", "jinja2", "numpy", "pandas", "psycopg", "pyarrow",
    "pydantic", "redis", "sqlglot", "starlette", "uvicorn", "yaml",
)  # fmt: skip

PROBE = """
import contextlib, io, json, sys
from segmint.cli.main import main
out = io.StringIO()
with contextlib.redirect_stdout(out):
    try:
        main({args!r})
    except SystemExit:
        pass
print(json.dumps(sorted({{m.split(".")[0] for m in sys.modules}})))
"""


@pytest.mark.parametrize("args", [["--version"], ["--help"], ["segments", "--help"]])
def test_no_heavy_module_is_imported_to_start(args: list[str]) -> None:
    probe = PROBE.format(args=args)
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    loaded = set(json.loads(done.stdout.splitlines()[-1]))
    assert "segmint" in loaded and "click" in loaded
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))


def test_importtime_of_version_shows_no_heavy_module() -> None:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "segmint", "--version"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    imported = {line.split("|")[-1].strip().split(".")[0] for line in done.stderr.splitlines()}
    assert "segmint" in imported
    assert imported.isdisjoint(HEAVY), sorted(imported & set(HEAVY))
